"""Quota rules on a real database (sqlite and PostgreSQL): allowance, holds, settling, extra images, cap, blocks, days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.store import NotFound, QuotaRefused, Store
from cogs.utils.quota_words import refusal_text
from tests.support.store import (
    MIDNIGHT,
    Clock,
    Database,
    open_url,
)

G = 111  # a guild scope
U, V = 501, 502  # members


async def refused(store: Store, scope: int, user: int, images: int) -> QuotaRefused:
    with pytest.raises(QuotaRefused) as info:
        await store.reserve(scope, user, images)
    return info.value


# ---- allowance ----


async def test_global_default_allows_exactly_the_limit(store: Store) -> None:
    first = await store.reserve(G, U, 6)
    second = await store.reserve(G, U, 4)
    assert (first.images, second.images, first.from_extra) == (6, 4, 0)
    # The hold says whose it is and where: settling and the orphan sweep act on these.
    assert (first.scope, first.user, second.scope, second.user) == (G, U, G, U)
    refusal = await refused(store, G, U, 1)
    assert (refusal.reason, refusal.remaining, refusal.requested) == ("daily_limit", 0, 1)
    assert refusal.resets_at == MIDNIGHT
    status = await store.quota_status(G, U)
    assert (status.limit, status.limit_source, status.held, status.remaining) == (
        10,
        "global",
        10,
        0,
    )


async def test_user_limit_beats_server_default_beats_global(store: Store) -> None:
    assert (await store.quota_status(G, U)).limit_source == "global"
    await store.set_server_default(G, 1, 3)
    status = await store.quota_status(G, U)
    assert (status.limit, status.limit_source) == (3, "server")
    await store.set_user_limit(G, 1, U, 7)
    status = await store.quota_status(G, U)
    assert (status.limit, status.limit_source, status.remaining) == (7, "user", 7)
    assert (await store.quota_status(G, V)).limit == 3  # others keep the server default
    await store.set_user_limit(G, 1, U, None)
    assert (await store.quota_status(G, U)).limit_source == "server"
    await store.set_server_default(G, 1, None)
    assert (await store.quota_status(G, U)).limit == 10


async def test_refusal_is_all_or_nothing_and_counts_holds(store: Store, database: Database) -> None:
    await store.reserve(G, U, 6)  # held, not yet settled: counts as spent
    refusal = await refused(store, G, U, 5)
    assert (refusal.remaining, refusal.requested, refusal.held) == (4, 5, 6)
    text = refusal_text(refusal)
    assert "4 images left today" in text and "needs 5" in text
    assert f"<t:{int(MIDNIGHT.timestamp())}:R>" in text
    assert (await store.quota_status(G, U)).held == 6  # the refusal held nothing
    assert len(await database.rows("SELECT id FROM reservations")) == 1


async def test_refusal_text_when_used_up(store: Store) -> None:
    r = await store.reserve(G, U, 10)
    await store.settle(r.id, 10)
    refusal = await refused(store, G, U, 4)
    assert refusal_text(refusal) == (
        "You've used your 10 images for today. Your allowance resets "
        f"<t:{int(MIDNIGHT.timestamp())}:R>."
    )


async def test_scopes_are_separate_and_dms_are_scope_zero(store: Store) -> None:
    await store.reserve(G, U, 10)
    dm = await store.reserve(0, U, 10)  # DMs have their own allowance
    assert dm.scope == 0
    assert (await refused(store, 0, U, 1)).reason == "daily_limit"
    await store.block_user(0, 1, U)
    assert refusal_text(await refused(store, 0, U, 1)) == "You're blocked from using Wan in DMs."
    assert (await store.quota_status(G, U)).blocked is False


@pytest.mark.parametrize("images", [0, -1])
async def test_reserve_needs_a_positive_count(store: Store, images: int) -> None:
    with pytest.raises(ValueError):
        await store.reserve(G, U, images)


# ---- settle and release ----


async def test_settle_charges_what_was_generated_and_returns_the_rest(store: Store) -> None:
    r = await store.reserve(G, U, 4)
    assert await store.settle(r.id, 3) == 3
    status = await store.quota_status(G, U)
    assert (status.used, status.held, status.remaining) == (3, 0, 7)
    totals = await store.server_totals(G)
    assert (totals.used, totals.held, totals.users) == (3, 0, 1)


async def test_settle_never_charges_more_than_was_held(store: Store) -> None:
    r = await store.reserve(G, U, 2)
    assert await store.settle(r.id, 5) == 2
    assert (await store.quota_status(G, U)).used == 2


async def test_settling_twice_or_after_release_is_a_no_op(store: Store, database: Database) -> None:
    r = await store.reserve(G, U, 4)
    assert await store.settle(r.id, 4) == 4
    assert await store.settle(r.id, 4) == 0
    await store.release(r.id)  # already settled: nothing returned
    assert (await store.quota_status(G, U)).used == 4
    other = await store.reserve(G, U, 3)
    await store.release(other.id)
    assert await store.settle(other.id, 3) == 0
    status = await store.quota_status(G, U)
    assert (status.used, status.held, status.remaining) == (4, 0, 6)
    assert await database.rows("SELECT id, status, charged FROM reservations ORDER BY id") == [
        (r.id, "settled", 4),
        (other.id, "released", 0),
    ]


async def test_unknown_reservation_and_bad_counts(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.settle(999, 1)
    with pytest.raises(NotFound):
        await store.release(999)
    r = await store.reserve(G, U, 1)
    with pytest.raises(ValueError):
        await store.settle(r.id, -1)


# ---- extra images ----


async def test_extra_images_are_spent_only_after_the_daily_allowance(store: Store) -> None:
    await store.set_user_limit(G, 1, U, 2)
    await store.grant_extra(G, 1, U, 3)
    small = await store.reserve(G, U, 1)
    assert small.from_extra == 0  # allowance first
    big = await store.reserve(G, U, 3)
    assert big.from_extra == 2
    status = await store.quota_status(G, U)
    assert (status.extra, status.held, status.remaining) == (1, 4, 1)
    # 2 of the 3 generated: the daily part (1) is charged first, 1 extra spent, 1 extra comes back.
    assert await store.settle(big.id, 2) == 2
    await store.settle(small.id, 1)
    status = await store.quota_status(G, U)
    assert (status.used, status.used_extra, status.extra, status.remaining) == (3, 1, 2, 2)


async def test_release_gives_extra_images_back(store: Store) -> None:
    await store.set_user_limit(G, 1, U, 1)
    await store.grant_extra(G, 1, U, 5)
    r = await store.reserve(G, U, 6)
    assert (r.from_extra, (await store.quota_status(G, U)).extra) == (5, 0)
    await store.release(r.id)
    status = await store.quota_status(G, U)
    assert (status.extra, status.remaining, status.used) == (5, 6, 0)


async def test_extra_images_never_expire(store: Store, clock: Clock) -> None:
    await store.set_user_limit(G, 1, U, 1)
    await store.grant_extra(G, 1, U, 2)
    r = await store.reserve(G, U, 2)
    await store.settle(r.id, 2)  # 1 daily + 1 extra
    clock.advance(days=30)
    status = await store.quota_status(G, U)
    assert (status.used, status.extra, status.remaining) == (0, 1, 2)


async def test_extra_images_work_when_the_server_default_is_zero(store: Store) -> None:
    # A server default of 0 means "no daily images here", not a block: granted extras still work.
    await store.set_server_default(G, 1, 0)
    refusal = await refused(store, G, U, 1)
    assert refusal.reason == "daily_limit"
    assert refusal_text(refusal).startswith("You have no daily images in this server.")
    await store.grant_extra(G, 1, U, 2)
    assert (await store.reserve(G, U, 2)).from_extra == 2


# ---- server cap ----


async def test_server_cap_bounds_everyone_together(store: Store) -> None:
    await store.set_server_cap(G, 1, 5)
    await store.reserve(G, U, 4)
    refusal = await refused(store, G, V, 2)
    assert (refusal.reason, refusal.remaining, refusal.cap) == ("server_cap", 1, 5)
    assert refusal_text(refusal).startswith(
        "The daily limit for this server (5 images) has 1 image left"
    )
    assert (await store.quota_status(G, V)).remaining == 1  # bounded by the cap
    await store.reserve(G, V, 1)
    assert (await refused(store, G, V, 1)).reason == "server_cap"
    totals = await store.server_totals(G)
    assert (totals.held, totals.cap, totals.cap_remaining, totals.users) == (5, 5, 0, 2)


async def test_server_cap_counts_extra_images(store: Store) -> None:
    await store.set_user_limit(G, 1, U, 1)
    await store.grant_extra(G, 1, U, 10)
    await store.set_server_cap(G, 1, 3)
    assert (await store.reserve(G, U, 3)).from_extra == 2
    assert (await refused(store, G, U, 1)).reason == "server_cap"


async def test_user_limit_reported_when_it_binds_before_the_cap(store: Store) -> None:
    await store.set_server_cap(G, 1, 50)
    await store.set_user_limit(G, 1, U, 2)
    refusal = await refused(store, G, U, 3)
    assert (refusal.reason, refusal.remaining) == ("daily_limit", 2)


async def test_server_cap_zero_or_none_turns_it_off(store: Store) -> None:
    await store.set_server_cap(G, 1, 1)
    assert await store.set_server_cap(G, 1, 0) == (1, None)
    await store.reserve(G, U, 10)
    assert (await store.server_totals(G)).cap is None


# ---- blocking ----


async def test_blocked_user_is_refused_without_a_reset_time(store: Store) -> None:
    held = await store.reserve(G, U, 2)
    await store.block_user(G, 1, U)
    refusal = await refused(store, G, U, 1)
    assert (refusal.reason, refusal.resets_at, refusal.remaining) == ("blocked", None, 0)
    assert refusal_text(refusal) == "You're blocked from using Wan in this server."
    status = await store.quota_status(G, U)
    assert (status.blocked, status.remaining) == (True, 0)
    assert await store.settle(held.id, 2) == 2  # a job already running still settles
    await store.unblock_user(G, 1, U)
    assert (await store.reserve(G, U, 8)).images == 8


async def test_user_limit_zero_is_a_block_even_with_extra_images(store: Store) -> None:
    await store.grant_extra(G, 1, U, 5)
    await store.set_user_limit(G, 1, U, 0)
    assert (await refused(store, G, U, 1)).reason == "blocked"
    assert (await store.quota_status(G, U)).blocked is True


# ---- days ----


async def test_allowance_resets_at_utc_midnight(store: Store, clock: Clock) -> None:
    r = await store.reserve(G, U, 10)
    await store.settle(r.id, 10)
    clock.now = datetime(2025, 11, 24, 23, 59, 59, tzinfo=UTC)
    assert (await refused(store, G, U, 1)).resets_at == MIDNIGHT
    clock.now = MIDNIGHT
    status = await store.quota_status(G, U)
    assert (status.used, status.remaining, status.resets_at.day) == (0, 10, 26)
    assert (await store.reserve(G, U, 10)).day.isoformat() == "2025-11-25"


async def test_reserved_on_one_day_settled_the_next_charges_the_first(
    store: Store, clock: Clock
) -> None:
    clock.now = datetime(2025, 11, 24, 23, 58, tzinfo=UTC)
    r = await store.reserve(G, U, 4)
    released = await store.reserve(G, U, 3)
    clock.now = datetime(2025, 11, 25, 0, 2, tzinfo=UTC)
    assert (await store.quota_status(G, U)).held == 0  # today has no holds
    assert await store.settle(r.id, 4) == 4
    await store.release(released.id)
    today = await store.quota_status(G, U)
    assert (today.used, today.remaining) == (0, 10)
    assert (await store.server_totals(G)).used == 0
    clock.now = datetime(2025, 11, 24, 23, 59, tzinfo=UTC)  # look back at the first day
    first = await store.quota_status(G, U)
    assert (first.used, first.held) == (4, 0)
    assert (await store.server_totals(G)).used == 4


async def test_clock_must_be_timezone_aware(database: Database) -> None:
    store = await open_url(database.url, Clock(datetime(2025, 1, 1)))
    try:
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.reserve(G, U, 1)
    finally:
        await store.close()


async def test_a_hold_no_job_owns_is_released_whole_and_only_once(
    store: Store, database: Database, clock: Clock
) -> None:
    """Promise: images held by a request that died before its job row existed come back (nothing
    charged); a hold a job owns, or a younger one, stays."""
    orphan = await store.reserve(G, U, 3)
    clock.advance(seconds=60)
    young = await store.reserve(G, U, 2)
    assert await store.release_orphaned_reservations(older_than=timedelta(seconds=30)) == 1
    status = await store.quota_status(G, U)
    assert (status.used, status.held, status.remaining) == (0, 2, 8)
    assert await database.rows(
        "SELECT status, charged, closed_at IS NOT NULL FROM reservations WHERE id = ?", orphan.id
    ) == [("released", 0, 1)]
    assert await store.release_orphaned_reservations(older_than=timedelta(seconds=30)) == 0
    # The young one, now at any age.
    assert await store.release_orphaned_reservations(timedelta(0)) == 1
    assert (await store.quota_status(G, U)).held == 0
    assert young.images == 2
