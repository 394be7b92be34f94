"""The shared quota rules and argument checks as plain functions, at their edges.

`bot/store/quota.py` and `bot/store/checks.py` are what both engines apply; the sqlite store tests
reach most of them through a real database, but a few are only reached through PostgreSQL
(`check_limit`). These tests pin the boundaries there (found by `bench/mutation.py`), so a test
machine without PostgreSQL guards them too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.store import QuotaRefused
from bot.store.admin import SERVER_CAP
from bot.store.checks import MAX_LIMIT, check_int, check_limit, check_time, job_changes, new_job
from bot.store.errors import CeilingExceeded
from bot.store.models import JobState
from bot.store.quota import (
    Snapshot,
    charge_split,
    check_ceiling,
    refused,
    status,
)
from cogs.utils.quota_words import ceiling_text

DAY = date(2026, 3, 1)


def snapshot(**changes: object) -> Snapshot:
    """A member with 10 a day, 3 used, 2 held, 4 extra images, in a server without a cap."""
    values: dict[str, object] = dict(
        user_limit=None,
        server_default=None,
        global_default=10,
        blocked=False,
        extra=4,
        used=3,
        held=2,
        cap=None,
        server_used=0,
        server_held=0,
    )
    values.update(changes)
    return Snapshot(**values)  # type: ignore[arg-type]


def grant_or_refuse(
    snap: Snapshot, images: int, *, scope: int, day: date, extra_held: int
) -> tuple[int, int]:
    """What the ledger decides for one reservation: (from the daily allowance, from extra
    images), or the `QuotaRefused` raised."""
    reason = snap.refusal(images)
    if reason is not None:
        raise refused(snap, reason, images=images, scope=scope, day=day, extra_held=extra_held)
    return snap.split(images)


def test_grant_takes_the_daily_allowance_first_then_extra_images() -> None:
    """Promise: extra images (which never expire) are spent only after the day's allowance."""
    assert grant_or_refuse(snapshot(), 5, scope=1, day=DAY, extra_held=0) == (5, 0)
    assert grant_or_refuse(snapshot(), 7, scope=1, day=DAY, extra_held=0) == (5, 2)
    assert grant_or_refuse(snapshot(), 9, scope=1, day=DAY, extra_held=0) == (5, 4)


def test_grant_refuses_one_image_more_than_is_left() -> None:
    """Promise: nobody gets more than their allowance plus their extra images (PostgreSQL's path)."""
    with pytest.raises(QuotaRefused) as info:
        grant_or_refuse(snapshot(), 10, scope=7, day=DAY, extra_held=1)
    refusal = info.value
    assert (refusal.reason, refusal.remaining, refusal.requested) == ("daily_limit", 9, 10)
    assert (refusal.scope, refusal.held, refusal.limit) == (7, 3, 10)
    assert refusal.resets_at == datetime(2026, 3, 2, tzinfo=UTC)


def test_grant_names_the_server_cap_when_it_is_the_tighter_bound() -> None:
    """Promise: a server's cap bounds what its members reserve, and the refusal says so."""
    snap = snapshot(cap=6, server_used=4, server_held=1)
    assert grant_or_refuse(snap, 1, scope=1, day=DAY, extra_held=0) == (1, 0)
    with pytest.raises(QuotaRefused) as info:
        grant_or_refuse(snap, 2, scope=1, day=DAY, extra_held=0)
    assert (info.value.reason, info.value.cap, info.value.remaining) == ("server_cap", 6, 1)


def test_a_refusal_names_the_tightest_of_the_bounds_it_breaks() -> None:
    """Promise: a refusal tells the member which limit stopped them: of every bound the request
    is over (their own 9, the server's 2, the bot-wide 3), the one with least left, whatever its
    name; of equals, the first (own, server, bot-wide). What fits every bound exactly passes."""
    snap = snapshot(cap=10, server_used=8, bot_cap=5, bot_used=2)
    assert snap.refusal(10) == "server_cap"
    assert snap.refusal(2) is None
    assert snapshot(cap=10, server_used=7, bot_cap=5, bot_used=2).refusal(4) == "server_cap"
    assert snapshot(cap=10, server_used=2, bot_cap=5, bot_used=4).refusal(9) == "global_cap"
    assert snapshot(cap=10, server_used=1).refusal(10) == "daily_limit"


def test_the_status_names_the_role_only_when_the_limit_is_the_roles() -> None:
    """`/wanquota status` says "from role X" only when that role's limit is the one in force,
    not when the member's own limit overrides it."""
    from_role = snapshot(role_limit=4, role_id=77)
    own = snapshot(role_limit=4, role_id=77, user_limit=6)
    shown = [status(s, day=DAY, extra_used=0, extra_held=0) for s in (from_role, own)]
    assert [(q.limit, q.limit_source, q.limit_role) for q in shown] == [
        (4, "role", 77),
        (6, "user", None),
    ]


def test_grant_refuses_a_blocked_member_whatever_they_ask() -> None:
    """Promise: a blocked member reserves nothing, and the refusal has no reset time."""
    with pytest.raises(QuotaRefused) as info:
        grant_or_refuse(snapshot(blocked=True), 1, scope=1, day=DAY, extra_held=0)
    assert (info.value.reason, info.value.resets_at) == ("blocked", None)


def test_settling_charges_the_daily_part_first_and_never_more_than_was_held() -> None:
    """Promise: a job is charged only for what Wan generated, at most what it reserved."""
    assert charge_split(4, 2, 4) == (2, 2)
    assert charge_split(4, 2, 3) == (2, 1)
    assert charge_split(4, 2, 1) == (1, 0)
    assert charge_split(4, 2, 9) == (2, 2)
    assert charge_split(4, 2, -1) == (0, 0)


def test_limits_accept_none_and_the_whole_range_and_nothing_outside() -> None:
    """Promise: an admin's limit is None (cleared) or 0..MAX_LIMIT; anything else touches nothing."""
    assert check_limit("limit", None) is None
    assert check_limit("limit", 0) == 0
    assert check_limit("limit", MAX_LIMIT) == MAX_LIMIT
    for bad in (-1, MAX_LIMIT + 1, True, 2.0, "3"):
        with pytest.raises(ValueError, match="limit must be a whole number from 0 to 1000000"):
            check_limit("limit", bad)  # type: ignore[arg-type]
    assert check_int("images", 1, 1, 4) == 1
    assert check_int("images", 4, 1, 4) == 4
    for bad in (0, 5):
        with pytest.raises(ValueError, match="images must be a whole number from 1 to 4, got"):
            check_int("images", bad, 1, 4)


def test_a_value_over_the_owners_ceiling_is_refused_with_what_it_was() -> None:
    """Promise: an admin can't set a limit above WAN_SERVER_DAILY_LIMIT; the refusal names both."""
    with pytest.raises(CeilingExceeded) as info:
        check_ceiling(SERVER_CAP, 51, 50)
    assert (info.value.what, info.value.value, info.value.ceiling) == (SERVER_CAP, 51, 50)
    text = ceiling_text(info.value)
    assert "the server's daily cap can't be 51" in text and "at most 50" in text
    check_ceiling(SERVER_CAP, 50, 50)
    check_ceiling("the server cap", None, 50)
    check_ceiling("the server cap", 10**6, None)


def test_a_new_job_is_checked_and_its_empty_collections_filled() -> None:
    """Promise: a job row is never created finished, without a source, or with a naive token
    expiry; the store says which rule was broken."""
    base = {"state": "queued", "source": "slash"}
    filled = new_job(base)
    assert filled["state"] is JobState.QUEUED
    assert (filled["options"], filled["inputs"], filled["result_message_ids"], filled["extra"]) == (
        {},
        [],
        [],
        {},
    )
    assert new_job({**base, "result_message_ids": [5]})["result_message_ids"] == [5]
    with pytest.raises(ValueError, match=r"^a job is created unfinished; end it with finish_job$"):
        new_job({**base, "state": "done"})
    with pytest.raises(ValueError, match=r"^source must name where the request came from$"):
        new_job({**base, "source": ""})
    with pytest.raises(ValueError, match=r"^token_expires_at must be a timezone-aware datetime$"):
        new_job({**base, "token_expires_at": datetime(2026, 3, 1)})
    with pytest.raises(ValueError, match=r"^token_expires_at must be a timezone-aware datetime$"):
        new_job({**base, "token_expires_at": "2026-03-01"})


def test_job_changes_name_what_they_refuse() -> None:
    """Promise: update_job refuses unknown fields, final states, None collections and naive
    times, each with a message naming the field."""
    with pytest.raises(ValueError, match=r"^update_job cannot set bogus, id$"):
        job_changes({"id": 1, "bogus": 2})
    with pytest.raises(ValueError, match=r"^final states are set by finish_job, which also"):
        job_changes({"state": "failed"})
    with pytest.raises(ValueError, match=r"^inputs cannot be None$"):
        job_changes({"inputs": None})
    with pytest.raises(ValueError, match=r"^finished_at must be a timezone-aware datetime$"):
        job_changes({"finished_at": datetime(2026, 3, 1)})
    assert job_changes({"state": "running"}) == {"state": JobState.RUNNING}
    check_time("finished_at", None)
    check_time("finished_at", datetime(2026, 3, 1, tzinfo=UTC))
