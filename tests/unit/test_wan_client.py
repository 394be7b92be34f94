"""WanClient against the DashScope emulator over loopback: every task state, error path and retry."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from bot.sandbox import Emulator, FaultRule
from bot.wan import CreateOutcomeUnknown, TaskResult, TaskStatus, WanClient, WanError
from bot.wan.errors import error_from_response
from tests.support.wan import (
    KEY,
    edit,
    emulator_config,
    eventually,
    loopback_server,
    make_client,
    requests_to,
)

CREATE = "/services/aigc/image2image/image-synthesis"


# ---- task states --------------------------------------------------------------------------------


async def test_succeeded_with_progress_updates(emu: Emulator, client: WanClient) -> None:
    req = edit("add a hat", n=2, negative_prompt="blurry", seed=7, prompt_extend=True)
    emu.hold("running")  # the task stays RUNNING until a poll has seen it so
    created = await client.create_task(req)
    assert created.status is TaskStatus.PENDING and created.request_id
    seen: list[TaskStatus] = []

    async def on_update(update: TaskResult) -> None:
        seen.append(update.status)
        if update.status is TaskStatus.RUNNING:
            emu.release("running")

    result = await client.wait(created.task_id, on_update=on_update)
    assert result.status is TaskStatus.SUCCEEDED
    assert seen[-2:] == [TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    assert len(result.urls) == 2 and result.image_count == 2
    assert result.metrics == {"TOTAL": 2, "SUCCEEDED": 2, "FAILED": 0}
    assert result.actual_prompt is not None and result.actual_prompt.startswith("add a hat")
    assert result.results[0].orig_prompt == "add a hat"
    assert result.scheduled_time is not None and result.end_time is not None
    assert result.submit_time is not None and result.submit_time <= result.scheduled_time
    assert 0.15 < (result.end_time - result.scheduled_time).total_seconds() < 1.0
    # What went over the wire: n explicit, negative_prompt in input, the async header honoured.
    sent = emu.tasks[created.task_id].request
    assert sent["model"] == "wan2.5-i2i-preview"
    assert sent["parameters"] == {"n": 2, "seed": 7, "prompt_extend": True}
    assert sent["input"]["negative_prompt"] == "blurry"
    pngs = await client.download_results(result)
    assert [p[:8] for p in pngs] == [b"\x89PNG\r\n\x1a\n"] * 2


async def test_n_is_always_sent(emu: Emulator, client: WanClient) -> None:
    created = await client.create_task(edit())
    assert emu.tasks[created.task_id].request["parameters"] == {"n": 1}


async def test_pending_then_cancelled() -> None:
    async with Emulator(emulator_config(max_running=1)) as emu:
        emu.add_fault(FaultRule(op="task", running_seconds=30))
        async with make_client(emu.base_url) as client:
            first = await client.create_task(edit())
            second = await client.create_task(edit())
            await emu.wait_for(lambda: emu.tasks[first.task_id].status == "RUNNING")
            running = await client.get_task(first.task_id)
            assert running.status is TaskStatus.RUNNING
            assert running.metrics == {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 0}
            assert running.scheduled_time is not None and running.end_time is None
            pending = await client.get_task(second.task_id)
            assert pending.status is TaskStatus.PENDING and pending.scheduled_time is None
            waiting = asyncio.create_task(client.wait(second.task_id))
            cancelled = await client.cancel_task(second.task_id)
            assert cancelled is not None and cancelled.status is TaskStatus.CANCELED
            final = await asyncio.wait_for(waiting, 5)
            assert final.status is TaskStatus.CANCELED
            # Only PENDING tasks can be cancelled.
            with pytest.raises(WanError) as info:
                await client.cancel_task(first.task_id)
            assert info.value.code == "UnsupportedOperation" and info.value.http_status == 400
            assert not info.value.retryable


async def test_partial_failure(emu: Emulator, client: WanClient) -> None:
    emu.add_fault(FaultRule(op="task", partial_failures=1))
    result = await client.wait((await client.create_task(edit(n=3))).task_id)
    assert result.status is TaskStatus.SUCCEEDED
    assert [r.ok for r in result.results].count(False) == 1
    assert len(result.urls) == 2 and result.image_count == 2
    failed = next(r for r in result.results if not r.ok)
    assert failed.code == "InternalError.Timeout" and failed.url is None
    assert result.metrics == {"TOTAL": 3, "SUCCEEDED": 2, "FAILED": 1}
    assert len(await client.download_results(result)) == 2


async def test_failed_task_carries_a_wan_error(emu: Emulator, client: WanClient) -> None:
    emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed", task_message="flagged"))
    result = await client.wait((await client.create_task(edit())).task_id)
    assert result.status is TaskStatus.FAILED and result.urls == [] and result.image_count == 0
    assert result.code == "DataInspectionFailed" and result.message == "flagged"
    err = result.error
    assert err is not None and err.code == "DataInspectionFailed" and not err.retryable
    assert "content filter" in err.user_message


async def test_unknown_task(client: WanClient) -> None:
    task_id = str(uuid.uuid4())
    assert (await client.get_task(task_id)).status is TaskStatus.UNKNOWN
    result = await client.wait(task_id, timeout=5)
    assert result.status is TaskStatus.UNKNOWN and result.task_id == task_id


async def test_wait_timeout_leaves_the_task_alone(emu: Emulator, client: WanClient) -> None:
    emu.add_fault(FaultRule(op="task", running_seconds=30))
    created = await client.create_task(edit())
    with pytest.raises(WanError) as info:
        await client.wait(created.task_id, timeout=0.3)
    assert info.value.code == "WaitTimeout" and info.value.retryable
    assert emu.tasks[created.task_id].status in ("PENDING", "RUNNING")


async def test_two_waiters_on_one_task_share_the_polls(emu: Emulator, client: WanClient) -> None:
    created = await client.create_task(edit())
    a, b = await asyncio.gather(client.wait(created.task_id), client.wait(created.task_id))
    assert a.status is b.status is TaskStatus.SUCCEEDED
    assert a.urls == b.urls


async def test_list_tasks_reads_the_window_in_beijing_time_page_by_page(
    emu: Emulator, client: WanClient
) -> None:
    """`list_tasks(start, end)` finds the tasks created in the window and only those: its bounds
    are sent as Beijing time (an 8-hour slip would miss them), every page is read, each page is
    one query through the query limiter, and a listing longer than `max_pages` says so."""
    before = datetime.now(UTC)
    ids = [(await client.create_task(edit())).task_id for _ in range(3)]
    await client.wait(ids[0])
    after = datetime.now(UTC)
    gets_before = len(requests_to(emu, "GET", "/tasks"))
    listing = await client.list_tasks(before, after, page_size=2)
    assert listing.complete and listing.total == 3
    assert sorted(t.task_id for t in listing.tasks) == sorted(ids)
    assert {t.model for t in listing.tasks} == {"wan2.5-i2i-preview"}
    assert all(t.created_at is not None and before <= t.created_at <= after for t in listing.tasks)
    assert {t.task_id: t.status for t in listing.tasks}[ids[0]] is TaskStatus.SUCCEEDED
    lists = [r for r in requests_to(emu, "GET", "/tasks")[gets_before:] if r[2].endswith("/tasks")]
    assert len(lists) == 2  # two pages of two
    earlier = await client.list_tasks(before - timedelta(hours=2), before - timedelta(seconds=2))
    assert earlier.tasks == [] and earlier.complete
    short = await client.list_tasks(before, after, page_size=1, max_pages=2)
    assert not short.complete and len(short.tasks) == 2
    with pytest.raises(ValueError):
        await client.list_tasks(before - timedelta(hours=25), after)


async def test_list_pages_take_tokens_from_the_shared_query_gate(emu: Emulator) -> None:
    """The list endpoint is a query: every page waits for the account's shared query budget (the
    gate other processes draw from too), like a poll."""
    taken: list[float] = []

    async def gate() -> None:
        taken.append(time.monotonic())

    async with make_client(emu.base_url, query_gate=gate) as client:
        start = datetime.now(UTC)
        for _ in range(2):
            await client.create_task(edit())
        taken.clear()
        await client.list_tasks(start, datetime.now(UTC), page_size=1)
    assert len(taken) == 2


async def test_on_update_errors_do_not_stop_the_wait(client: WanClient) -> None:
    def broken(update: TaskResult) -> None:
        raise RuntimeError("display failed")

    result = await client.wait((await client.create_task(edit())).task_id, on_update=broken)
    assert result.status is TaskStatus.SUCCEEDED


# ---- errors -------------------------------------------------------------------------------------


async def test_bad_key_is_not_retried_and_never_shown(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-987654321"
    async with make_client(emu.base_url, key=wrong) as client:
        assert wrong not in repr(client)
        with pytest.raises(WanError) as info:
            await client.create_task(edit())
        err = info.value
        assert (err.code, err.http_status, err.retryable) == ("InvalidApiKey", 401, False)
        assert err.request_id
        assert len(requests_to(emu, "POST", CREATE)) == 1
        with pytest.raises(WanError) as info:
            await client.check_key()
        assert info.value.code == "InvalidApiKey"
    for text in (str(err), repr(err), err.user_message, err.message, caplog.text):
        assert wrong not in text
    assert emu.created_count == 0


async def test_key_of_the_other_region_is_refused() -> None:
    other = "sk-beijing-key-000"
    async with Emulator(emulator_config(other_region_keys={other}, api_keys=set())) as emu:
        async with make_client(emu.base_url, key=other) as client:
            with pytest.raises(WanError) as info:
                await client.check_key()
            assert info.value.code == "InvalidApiKey"
        async with make_client(emu.base_url) as client:
            await client.check_key()  # a good key passes...
        assert emu.created_count == 0  # ...and nothing was created, so nothing was spent


async def test_missing_async_header_answer_parses(emu: Emulator) -> None:
    """Our client always sends the header; this checks the 403 it would get otherwise parses."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            emu.base_url + CREATE,
            json={"model": "wan2.5-i2i-preview", "input": {"prompt": "x", "images": ["x"]}},
            headers={"Authorization": f"Bearer {KEY}"},
        ) as resp:
            status, headers, body = resp.status, resp.headers, await resp.read()
    err = error_from_response(status, headers, body, secret=KEY)
    assert (err.code, err.http_status, err.retryable) == ("AccessDenied", 403, False)
    assert "synchronous" in err.message and err.request_id
    assert "admin" in err.user_message


async def test_validation_error_is_not_retried(emu: Emulator, client: WanClient) -> None:
    with pytest.raises(WanError) as info:
        await client.create_task(edit(n=5))
    err = info.value
    assert (err.code, err.http_status, err.retryable) == ("InvalidParameter", 400, False)
    assert len(requests_to(emu, "POST", CREATE)) == 1 and emu.created_count == 0
    with pytest.raises(WanError):
        await client.create_task(edit(size="10*10"))
    assert emu.created_count == 0


@pytest.mark.parametrize(
    ("status", "code"), [(429, "Throttling.RateQuota"), (500, "InternalError")]
)
async def test_create_retries_answered_errors(
    emu: Emulator, client: WanClient, status: int, code: str
) -> None:
    emu.add_fault(FaultRule(op="create", status=status, code=code, times=2))
    created = await client.create_task(edit())
    assert [r[3] for r in requests_to(emu, "POST", CREATE)] == [status, status, 200]
    assert emu.created_count == 1 and list(emu.tasks) == [created.task_id]


async def test_create_gives_up_after_its_attempts(emu: Emulator) -> None:
    """At most `create_attempts` POSTs for one create, however many 5xx come back."""
    emu.add_fault(FaultRule(op="create", status=503, code="ServiceUnavailable", times=10))
    async with make_client(emu.base_url, create_attempts=3, max_retries=8) as client:
        with pytest.raises(WanError) as info:
            await client.create_task(edit())
    assert info.value.http_status == 503 and info.value.retryable
    assert len(requests_to(emu, "POST", CREATE)) == 3 and emu.created_count == 0


async def test_creates_are_paced_to_the_submit_limit() -> None:
    # The emulator enforces the account's 5 creates per second; a burst of 8 must not meet a 429.
    async with Emulator(emulator_config()) as emu, make_client(emu.base_url) as client:
        created = await asyncio.gather(*(client.create_task(edit()) for _ in range(8)))
        statuses = [r[3] for r in requests_to(emu, "POST", CREATE)]
    assert len({c.task_id for c in created}) == 8
    assert statuses == [200] * 8


async def test_dropped_create_is_never_resent(emu: Emulator, client: WanClient) -> None:
    emu.add_fault(FaultRule(op="create", drop=True))
    with pytest.raises(CreateOutcomeUnknown) as info:
        await client.create_task(edit())
    assert info.value.code == "CreateOutcomeUnknown" and not info.value.retryable
    # The task was made, exactly once, and the client did not try again.
    assert emu.created_count == 1
    assert len(requests_to(emu, "POST", CREATE)) == 1


async def test_get_retries_5xx_and_429(emu: Emulator, client: WanClient) -> None:
    created = await client.create_task(edit())
    emu.add_fault(FaultRule(op="get", status=500, code="InternalError", times=2))
    emu.add_fault(FaultRule(op="get", status=429, code="Throttling.RateQuota", times=1))
    result = await client.get_task(created.task_id)
    assert result.task_id == created.task_id
    statuses = [r[3] for r in requests_to(emu, "GET", f"/tasks/{created.task_id}")]
    assert statuses == [500, 500, 429, 200]


async def test_wait_rides_out_poll_errors(emu: Emulator, client: WanClient) -> None:
    created = await client.create_task(edit())
    emu.add_fault(FaultRule(op="get", status=503, code="ServiceUnavailable", times=3))
    result = await client.wait(created.task_id, timeout=10)
    assert result.status is TaskStatus.SUCCEEDED
    assert [r[3] for r in requests_to(emu, "GET", "/tasks/")][:3] == [503, 503, 503]


async def test_wait_stops_on_a_refused_key(emu: Emulator, client: WanClient) -> None:
    created = await client.create_task(edit())
    emu.add_fault(FaultRule(op="get", status=401, code="InvalidApiKey"))
    with pytest.raises(WanError) as info:
        await client.wait(created.task_id, timeout=10)
    assert info.value.code == "InvalidApiKey"


async def test_retry_after_is_honoured() -> None:
    calls: list[float] = []

    async def task(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return web.json_response(
                {"code": "Throttling", "message": "slow down", "request_id": "r1"},
                status=429,
                headers={"Retry-After": "0.3"},
            )
        return web.json_response(
            {"request_id": "r2", "output": {"task_id": "t", "task_status": "UNKNOWN"}}
        )

    async with loopback_server({("GET", "/api/v1/tasks/{id}"): task}) as origin:
        async with make_client(origin + "/api/v1") as client:
            assert (await client.get_task("t")).status is TaskStatus.UNKNOWN
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.29


# ---- timeouts and broken connections ------------------------------------------------------------


async def test_timeouts() -> None:
    """A server that never answers: a create may have gone through (never resent); a query is
    retried and then reported as a retryable timeout."""
    hits: dict[str, int] = {"create": 0, "get": 0}
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        hits["create" if request.method == "POST" else "get"] += 1
        await release.wait()
        return web.Response()

    routes = {("POST", "/api/v1" + CREATE): stall, ("GET", "/api/v1/tasks/{id}"): stall}
    async with loopback_server(routes) as origin:
        async with make_client(origin + "/api/v1", request_timeout=0.2, max_retries=2) as client:
            with pytest.raises(CreateOutcomeUnknown):
                await client.create_task(edit())
            with pytest.raises(WanError) as info:
                await client.get_task("t")
        release.set()  # let the server shut down without waiting for its stalled handlers
    assert info.value.code == "RequestTimeOut" and info.value.retryable
    assert hits == {"create": 1, "get": 3}


async def test_unreachable_server_is_safe_to_retry() -> None:
    """Connection refused: nothing was sent, so create may retry; it ends as a NetworkError."""
    async with loopback_server({}) as origin:
        pass  # closed again: the port now refuses connections
    async with make_client(origin + "/api/v1", max_retries=2) as client:
        with pytest.raises(WanError) as info:
            await client.create_task(edit())
    assert type(info.value) is WanError
    assert info.value.code == "NetworkError" and info.value.retryable


# ---- downloads ----------------------------------------------------------------------------------


async def test_download_retries_then_expires() -> None:
    async with Emulator(emulator_config()) as emu:
        async with make_client(emu.base_url) as client:
            result = await client.wait((await client.create_task(edit(n=2))).task_id)
            emu.add_fault(FaultRule(op="download", status=500, code="InternalError", times=2))
            first, second = await client.download_results(result)
            assert first[:4] == second[:4] == b"\x89PNG" and first != second
            with pytest.raises(WanError) as info:
                await client.download(result.urls[0], max_bytes=100)
            assert info.value.code == "ResultTooLarge"
            # Results of a task published from now on expire at once: no race with a short TTL.
            emu.config.result_ttl_seconds = 0.0
            expired = await client.wait((await client.create_task(edit())).task_id)
            before = len(requests_to(emu, "GET", "/results/"))
            with pytest.raises(WanError) as info:
                await client.download(expired.urls[0])
            assert info.value.code == "ResultExpired" and not info.value.retryable
            assert "24 hours" in info.value.user_message
            assert len(requests_to(emu, "GET", "/results/")) == before + 1


async def test_downloads_send_no_credentials() -> None:
    seen: list[str | None] = []

    async def result(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"\x89PNG fake", content_type="image/png")

    async with loopback_server({("GET", "/r.png"): result}) as origin:
        async with make_client(origin + "/api/v1") as client:
            assert await client.download(origin + "/r.png") == b"\x89PNG fake"
    assert seen == [None]


async def test_each_create_uses_a_fresh_connection() -> None:
    """A reset on a stale pooled connection would look like a lost answer; creates avoid the pool.
    And a 200 whose body cannot be read means a task exists that we cannot name: outcome unknown."""
    peers: list[object] = []

    async def create(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        if len(peers) == 3:
            return web.Response(text="<html>proxy</html>", content_type="text/html")
        return web.json_response(
            {"request_id": "r", "output": {"task_id": f"t{len(peers)}", "task_status": "PENDING"}}
        )

    async with loopback_server({("POST", "/api/v1" + CREATE): create}) as origin:
        async with make_client(origin + "/api/v1") as client:
            first = await client.create_task(edit())
            second = await client.create_task(edit())
            with pytest.raises(CreateOutcomeUnknown):
                await client.create_task(edit())
    assert (first.task_id, second.task_id) == ("t1", "t2")
    assert len(set(peers)) == 3


async def test_closing_the_client_releases_waiters(emu: Emulator) -> None:
    emu.add_fault(FaultRule(op="task", running_seconds=30))
    client = make_client(emu.base_url)
    await client.start()
    created = await client.create_task(edit())
    waiting = asyncio.create_task(client.wait(created.task_id))
    await eventually(lambda: len(requests_to(emu, "GET", "/tasks/")) >= 1)
    await client.close()
    with pytest.raises(WanError) as info:
        await asyncio.wait_for(waiting, 2)
    assert info.value.code == "ClientClosed"
    with pytest.raises(WanError):
        await client.wait(created.task_id)


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>"])
async def test_create_5xx_without_dashscope_body_is_not_resent(body: bytes) -> None:
    """Guards: a 5xx without DashScope's error body may come from a proxy after Wan made the task:
    it is an unknown outcome, sent once, never retried."""
    posts = 0

    async def gateway(request: web.Request) -> web.Response:
        nonlocal posts
        posts += 1
        await request.read()
        return web.Response(status=500, body=body)

    async with loopback_server({("POST", "/api/v1" + CREATE): gateway}) as origin:
        async with make_client(origin + "/api/v1") as client:
            with pytest.raises(CreateOutcomeUnknown):
                await client.create_task(edit())
    assert posts == 1


async def test_create_5xx_with_dashscope_body_is_retried() -> None:
    """Guards: a 5xx carrying DashScope's `{code, message, request_id}` proves no task was made."""
    posts = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal posts
        posts += 1
        await request.read()
        if posts == 1:
            return web.json_response(
                {"code": "InternalError", "message": "oops", "request_id": "r1"}, status=502
            )
        return web.json_response(
            {"request_id": "r2", "output": {"task_id": "t1", "task_status": "PENDING"}}
        )

    async with loopback_server({("POST", "/api/v1" + CREATE): flaky}) as origin:
        async with make_client(origin + "/api/v1") as client:
            created = await client.create_task(edit())
    assert created.task_id == "t1" and posts == 2
