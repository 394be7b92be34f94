"""WanError texts and flags, and parsing of the documented response examples (wan-api.md §2-3, §5)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bot.wan import CreateOutcomeUnknown, TaskStatus, WanError, user_message_for
from bot.wan.errors import USER_MESSAGES, is_retryable
from bot.wan.models import WAN_TZ, parse_created, parse_task, parse_time
from bot.wan.retry import Backoff, parse_retry_after, policy

# Every code in wan-api.md §5 (and §7's upload error), with its HTTP status.
SECTION_5 = [
    (400, "InvalidParameter"),
    (400, "InvalidParameter.DataInspection"),
    (400, "DataInspectionFailed"),
    (400, "data_inspection_failed"),
    (400, "IPInfringementSuspect"),
    (400, "BadRequest.EmptyInput"),
    (400, "BadRequest.EmptyParameters"),
    (400, "BadRequest.EmptyModel"),
    (400, "BadRequest.IllegalInput"),
    (400, "InvalidURL"),
    (400, "InvalidURL.ConnectionRefused"),
    (400, "InvalidURL.Timeout"),
    (400, "InvalidImage.FileFormat"),
    (400, "InvalidImageFormat"),
    (400, "InvalidFile.Size"),
    (400, "InvalidFile.Resolution"),
    (400, "Arrearage"),
    (400, "UnsupportedOperation"),
    (400, "invalid_parameter_error"),
    (401, "InvalidApiKey"),
    (401, "invalid_api_key"),
    (401, "NOT AUTHORIZED"),
    (403, "AccessDenied"),
    (403, "AccessDenied.Unpurchased"),
    (403, "Model.AccessDenied"),
    (403, "Workspace.AccessDenied"),
    (403, "AllocationQuota.FreeTierOnly"),
    (404, "ModelNotFound"),
    (404, "model_not_found"),
    (404, "WorkSpaceNotFound"),
    (404, "NotFound"),
    (408, "RequestTimeOut"),
    (500, "RequestTimeOut"),
    (413, "BadRequest.TooLarge"),
    (429, "Throttling"),
    (429, "Throttling.RateQuota"),
    (429, "Throttling.BurstRate"),
    (429, "Throttling.AllocationQuota"),
    (429, "Throttling.Concurrency"),
    (500, "InternalError"),
    (500, "InternalError.Algo"),
    (500, "InternalError.Timeout"),
    (500, "InternalError.Upload"),
    (500, "InternalError.FileUpload"),
    (500, "SystemError"),
    (500, "ModelServiceFailed"),
    (408, "WaitTaskTimeout"),
]
RETRYABLE = {
    "InvalidURL.Timeout",
    "RequestTimeOut",
    "Throttling",
    "Throttling.RateQuota",
    "Throttling.BurstRate",
    "Throttling.AllocationQuota",
    "Throttling.Concurrency",
    "InternalError",
    "InternalError.Algo",
    "InternalError.Timeout",
    "InternalError.Upload",
    "InternalError.FileUpload",
    "SystemError",
    "ModelServiceFailed",
}
KEY = "sk-secret-0123456789abcdef"


@pytest.mark.parametrize(("status", "code"), SECTION_5)
def test_every_documented_code_has_its_own_user_message(status: int, code: str) -> None:
    family = code.split(".", 1)[0]
    assert code in USER_MESSAGES or family in USER_MESSAGES, code
    err = WanError(code, f"server text with {KEY}?", http_status=status)
    text = err.user_message
    assert text and len(text) < 200 and text.endswith(".")
    assert KEY not in text and "sk-" not in text
    # The user text is ours, never the server's message.
    assert "server text" not in text


@pytest.mark.parametrize(
    ("status", "code"), [(s, c) for s, c in SECTION_5 if c != "WaitTaskTimeout"]
)
def test_retryable_flag_follows_the_table(status: int, code: str) -> None:
    assert WanError(code, http_status=status).retryable is (code in RETRYABLE), code


def test_a_408_is_retried_whatever_its_code() -> None:
    """`WaitTaskTimeout` is made by the SDK, never by the server; a 408 reaching us still means
    "timed out", which is safe to try again, so the status decides."""
    assert WanError("WaitTaskTimeout", http_status=408).retryable is True
    assert WanError("WaitTaskTimeout").retryable is False  # without the status: not a known code


def test_fallbacks_for_codes_nobody_documented() -> None:
    assert user_message_for("Throttling.Something") == USER_MESSAGES["Throttling"]
    assert "admin" in user_message_for("Weird", 403)
    assert user_message_for("Weird", 503) == USER_MESSAGES["InternalError"]
    assert user_message_for("Weird", 418).startswith("Wan could not use")
    assert user_message_for("Weird") == USER_MESSAGES["Unknown"]
    assert WanError("", "x").code == "Unknown"


def test_create_outcome_unknown_is_a_wan_error_that_is_not_retried() -> None:
    err = CreateOutcomeUnknown("reset")
    assert isinstance(err, WanError)
    assert err.code == "CreateOutcomeUnknown" and err.retryable is False
    assert "not sent again" in err.user_message
    assert repr(err).startswith("CreateOutcomeUnknown(code='CreateOutcomeUnknown'")
    assert (err.message, str(err), err.http_status) == (
        "reset",
        "CreateOutcomeUnknown: reset",
        None,
    )
    assert str(CreateOutcomeUnknown()) == "CreateOutcomeUnknown"
    # Even with a status that would make any other error retryable, a create is never sent again.
    after_503 = CreateOutcomeUnknown("gateway", http_status=503)
    assert (after_503.http_status, after_503.retryable) == (503, False)
    assert WanError("Whatever", http_status=503).retryable is True


def test_task_status() -> None:
    assert [s.is_final for s in TaskStatus] == [False, False, True, True, True, True, False]
    assert TaskStatus.parse("running") is TaskStatus.RUNNING
    # Issue 12: an undocumented status is not final (polled on); no status at all is UNKNOWN.
    assert TaskStatus.parse("WEIRD") is TaskStatus.UNRECOGNISED
    assert TaskStatus.parse(None) is TaskStatus.UNKNOWN


# The documented examples (wan-api.md §2-3, seed document), verbatim in shape.
SUCCEEDED = {
    "request_id": "d1f2a1be-xxxx",
    "output": {
        "task_id": "7f4836cd-xxxx",
        "task_status": "SUCCEEDED",
        "submit_time": "2025-09-23 22:14:10.800",
        "scheduled_time": "2025-09-23 22:14:10.825",
        "end_time": "2025-09-23 22:15:23.456",
        "results": [
            {"orig_prompt": "a cat", "actual_prompt": "a fluffy cat", "url": "https://x/a.png"}
        ],
        "task_metrics": {"TOTAL": 1, "FAILED": 0, "SUCCEEDED": 1},
    },
    "usage": {"image_count": 1},
}
PARTIAL = {
    "request_id": "85eaba38-xxxx",
    "output": {
        "task_id": "86ecf553-xxxx",
        "task_status": "SUCCEEDED",
        "results": [
            {"url": "https://x/a1.png"},
            {"code": "InternalError.Timeout", "message": "An internal error has occured"},
        ],
        "task_metrics": {"TOTAL": 2, "SUCCEEDED": 1, "FAILED": 1},
    },
    "usage": {"image_count": 1},
}
FAILED = {
    "request_id": "e5d70b02-xxxx",
    "output": {
        "task_id": "86ecf553-xxxx",
        "task_status": "FAILED",
        "code": "InvalidParameter",
        "message": "The size is not match the allowed size",
        "task_metrics": {"TOTAL": 4, "SUCCEEDED": 0, "FAILED": 4},
    },
}


def test_parse_succeeded_example() -> None:
    r = parse_task(SUCCEEDED)
    assert r.status is TaskStatus.SUCCEEDED and r.task_id == "7f4836cd-xxxx"
    assert r.urls == ["https://x/a.png"] and r.image_count == 1
    assert r.actual_prompt == "a fluffy cat" and r.results[0].orig_prompt == "a cat"
    assert r.metrics == {"TOTAL": 1, "FAILED": 0, "SUCCEEDED": 1}
    assert r.request_id == "d1f2a1be-xxxx" and r.error is None
    assert r.scheduled_time == datetime(2025, 9, 23, 22, 14, 10, 825000, tzinfo=WAN_TZ)
    assert r.end_time is not None and r.submit_time is not None
    assert (r.end_time - r.scheduled_time).total_seconds() == pytest.approx(72.631)


def test_parse_partial_failure_example() -> None:
    r = parse_task(PARTIAL)
    assert r.status is TaskStatus.SUCCEEDED
    assert [x.ok for x in r.results] == [True, False]
    assert r.urls == ["https://x/a1.png"] and r.image_count == 1
    assert r.results[1].code == "InternalError.Timeout"
    assert r.actual_prompt is None and r.scheduled_time is None


def test_parse_failed_example() -> None:
    r = parse_task(FAILED)
    assert r.status is TaskStatus.FAILED and r.urls == [] and r.image_count == 0
    err = r.error
    assert err is not None and err.code == "InvalidParameter" and not err.retryable
    assert err.request_id == "e5d70b02-xxxx"
    assert "size" in err.message


def test_parse_unknown_and_created() -> None:
    r = parse_task({"request_id": "r", "output": {"task_id": "t", "task_status": "UNKNOWN"}})
    assert r.status is TaskStatus.UNKNOWN and r.metrics is None and r.results == []
    c = parse_created({"output": {"task_status": "PENDING", "task_id": "t1"}, "request_id": "r1"})
    assert (c.task_id, c.status, c.request_id) == ("t1", TaskStatus.PENDING, "r1")
    with pytest.raises(WanError) as info:
        parse_created({"request_id": "r1"})
    assert info.value.code == "BadResponse"


def test_parse_time() -> None:
    assert parse_time("2025-10-23 16:18:16") == datetime(2025, 10, 23, 16, 18, 16, tzinfo=WAN_TZ)
    assert parse_time("nonsense") is None and parse_time(None) is None


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    b = Backoff(base=0.5, cap=4.0)
    delays = [b.delay(attempt) for attempt in range(12) for _ in range(20)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not fixed steps
    assert max(b.delay(0) for _ in range(50)) <= 0.5
    assert b.delay(0, retry_after=3.0) >= 3.0
    assert b.delay(0, retry_after=3600.0) == b.max_retry_after
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    "code",
    [
        "CreateOutcomeUnknown",
        "NetworkError",
        "WaitTimeout",
        "ResultExpired",
        "ResultTooLarge",
        "DownloadFailed",
        "BadResponse",
        "UploadFailed",
        "ClientClosed",
    ],
)
def test_client_made_codes_have_user_messages(code: str) -> None:
    assert code in USER_MESSAGES and WanError(code).user_message == USER_MESSAGES[code]


def test_a_dashscope_error_body_gives_its_code_message_and_request_id() -> None:
    """Promise: the user and the log see Wan's own code and words (`message`, or `msg`)."""
    from bot.wan.errors import error_from_response

    body = b'{"code": "Throttling", "message": "Requests throttled", "request_id": "r-1"}'
    err = error_from_response(429, {"Retry-After": "3"}, body)
    assert (err.code, err.message, err.request_id, err.http_status) == (
        "Throttling",
        "Requests throttled",
        "r-1",
        429,
    )
    assert (err.retryable, err.retry_after) == (True, 3.0)
    old_style = error_from_response(400, {}, b'{"code": "InvalidParameter", "msg": "bad size"}')
    assert (old_style.code, old_style.message, old_style.request_id) == (
        "InvalidParameter",
        "bad size",
        None,
    )
    both = error_from_response(400, {}, b'{"code": "X", "message": "first", "msg": "second"}')
    assert both.message == "first"


def test_an_answer_without_a_code_is_named_by_its_status() -> None:
    """Promise: a proxy's body-less 5xx is retried as ServiceUnavailable; a 4xx nobody names is
    Unknown (not retried); the caller's own default code wins over the status table."""
    from bot.wan.errors import error_from_response

    assert error_from_response(500, {}, b"").code == "ServiceUnavailable"
    assert error_from_response(500, {}, b"").retryable is True
    assert error_from_response(503, {}, b"<html>busy</html>").code == "ServiceUnavailable"
    assert error_from_response(499, {}, b"").code == "Unknown"
    assert error_from_response(413, {}, b"").code == "BadRequest.TooLarge"
    assert error_from_response(413, {}, b"", default_code="Mine").code == "Mine"
    assert error_from_response(502, {}, b"", default_code="Mine").code == "Mine"
    assert error_from_response(400, {}, b'{"code": "", "message": "m"}').code == "Unknown"


def test_the_message_falls_back_to_oss_xml_then_the_body_then_the_status() -> None:
    """Promise: whatever answered, the error says something true about it."""
    from bot.wan.errors import error_from_response

    xml = b"<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>"
    assert error_from_response(403, {}, xml).message == "AccessDenied: Request has expired."
    assert error_from_response(502, {}, b"Bad gateway").message == "Bad gateway"
    assert error_from_response(502, {}, b'["not", "a", "dict"]').message == '["not", "a", "dict"]'
    assert error_from_response(502, {}, b"x" * 300).message == "x" * 200
    assert error_from_response(504, {}, b"").message == "HTTP 504"
    # Not UTF-8 (a proxy's page in another encoding): still read, never a crash.
    assert error_from_response(502, {}, b"caf\xe9 ferm\xe9").message == "caf\ufffd ferm\ufffd"
    # Only the first 2,000 bytes are searched for OSS's XML.
    late = b"<Code>Late</Code><Message>m</Message>"
    assert error_from_response(502, {}, b" " * (2000 - len(late)) + late).message == "Late: m"
    beyond = b" " * (2001 - len(late)) + late
    assert error_from_response(502, {}, beyond).message == " " * 200
    assert error_from_response(401, {}, b"key sk-secret leaked", secret="sk-secret").message == (
        "key sk-*** leaked"
    )


class _TopOfRange(random.Random):
    """A stdlib Random whose `uniform` answers the top of the range, so a test sees the ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    """Promise: retries spread out exponentially (base * 2**attempt) and never wait past the cap."""
    b = Backoff(base=0.5, cap=20.0, rng=_TopOfRange())
    assert [b.delay(attempt) for attempt in (-1, 0, 1, 2, 3, 5, 6)] == [
        0.5,
        0.5,
        1.0,
        2.0,
        4.0,
        16.0,
        20.0,
    ]
    assert b.delay(1, retry_after=7.0) == 7.0
    assert b.delay(5, retry_after=7.0) == 16.0


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    """Promise: the server's Retry-After is honoured exactly, whether seconds or a date."""
    now = datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(" 4 ") == 4.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 02 Dec 2026 00:00:10 GMT", now) == 10.0
    # "-0000" makes a naive datetime: it is read as UTC.
    assert parse_retry_after("Wed, 02 Dec 2026 00:00:10 -0000", now) == 10.0
    assert parse_retry_after("Wed, 02 Dec 2026 01:00:10 +0100", now) == 10.0
    assert parse_retry_after("Tue, 01 Dec 2026 23:59:00 GMT", now) == 0.0


def test_throttling_subcodes_and_5xx_are_retried_but_not_a_bad_parameter() -> None:
    """Promise: Wan's throttling (any `Throttling.*`) and server errors are retried; a request Wan
    called invalid is not sent again, whatever its status."""
    assert is_retryable("Throttling.SomethingNew", 400) is True
    assert is_retryable("Throttling.Other", None) is True
    assert is_retryable("NotThrottling.X", None) is False
    assert is_retryable("SomethingNew", 503) is True
    assert is_retryable("SomethingNew", 400) is False
    assert is_retryable("InvalidParameter.Size", 503) is False
    assert is_retryable("InvalidParameter", 500) is False


async def run_policy(
    failures: list[Exception], *, attempts: int, seed: int = 3
) -> tuple[str | Exception, int, list[float], list[tuple[str, float]]]:
    """Run a call that raises `failures` in turn (then answers "ok") under the client's policy;
    return its outcome, how often it was called, the sleeps and what `on_retry` was told."""
    slept: list[float] = []
    told: list[tuple[str, float]] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def call() -> str:
        nonlocal calls
        calls += 1
        if calls <= len(failures):
            raise failures[calls - 1]
        return "ok"

    retry = policy(
        attempts=attempts,
        backoff=Backoff(base=1.0, cap=8.0, rng=random.Random(seed)),
        retry_if=lambda err: (
            isinstance(err, OSError) or (isinstance(err, WanError) and err.retryable)
        ),
        sleep=sleep,
        what="test call",
        on_retry=lambda err, delay: told.append((getattr(err, "code", "?"), delay)),
    )
    try:
        outcome: str | Exception = await retry(call)
    except (WanError, OSError) as err:
        outcome = err
    return outcome, calls, slept, told


async def test_the_retry_policy_waits_its_backoff_and_the_servers_retry_after() -> None:
    """Promise: a throttled or failing call is retried with growing, jittered waits, and never
    sooner than the server asked (Retry-After): hammering DashScope would only prolong a 429. The
    caller hears of each retry with the wait it will take (the job says "retrying")."""
    throttled = WanError("Throttling", "slow down", http_status=429, retry_after=5.0)
    busy = WanError("InternalError", "busy", http_status=500)
    outcome, calls, slept, told = await run_policy([busy, throttled], attempts=4)
    assert (outcome, calls) == ("ok", 3)
    # The same waits a fresh Backoff with the same seed draws: attempt 0's ceiling, then attempt
    # 1's, with the Retry-After as the floor of the second.
    replay = Backoff(base=1.0, cap=8.0, rng=random.Random(3))
    expected = [replay.delay(0), replay.delay(1, 5.0)]
    assert slept == expected and slept[1] >= 5.0 and slept[0] <= 1.0
    assert told == [("InternalError", expected[0]), ("Throttling", expected[1])]
    # Without a Retry-After, each wait is drawn below a ceiling that doubles from one try to the
    # next: 1 s, 2 s, 4 s.
    outcome, calls, slept, _ = await run_policy([busy, busy, busy], attempts=4)
    replay = Backoff(base=1.0, cap=8.0, rng=random.Random(3))
    assert (outcome, calls) == ("ok", 4)
    assert slept == [replay.delay(0), replay.delay(1), replay.delay(2)]


async def test_the_retry_policy_gives_up_with_the_last_error_itself() -> None:
    """After `attempts` tries the last error is raised as it was (its code and user text reach
    the member), not wrapped; an error the policy does not retry is raised at once; and no
    setting below one try skips the call."""
    errors = [WanError("InternalError", f"busy {n}", http_status=500) for n in range(3)]
    outcome, calls, slept, told = await run_policy(errors, attempts=3)
    assert outcome is errors[2] and calls == 3 and len(slept) == len(told) == 2
    refused = WanError("InvalidParameter", "bad size", http_status=400)
    outcome, calls, slept, told = await run_policy([refused], attempts=5)
    assert outcome is refused and calls == 1 and slept == [] and told == []
    outcome, calls, _, _ = await run_policy([], attempts=0)
    assert (outcome, calls) == ("ok", 1)
    outcome, calls, _, _ = await run_policy(errors[:1], attempts=0)
    assert outcome is errors[0] and calls == 1


async def test_the_retry_policy_also_retries_an_error_without_a_retry_after() -> None:
    """A retried error need not be a WanError (a connection refused is an OSError): without a
    server's Retry-After it waits its own backoff."""
    outcome, calls, slept, told = await run_policy([ConnectionRefusedError()], attempts=2)
    assert (outcome, calls) == ("ok", 2)
    assert slept == [Backoff(base=1.0, cap=8.0, rng=random.Random(3)).delay(0)]
    assert told[0][1] == slept[0]
