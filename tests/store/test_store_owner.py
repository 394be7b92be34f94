"""The owner's bounds in the store, on both engines (a real sqlite file, a real PostgreSQL
database): the bot-wide cap, the server ceiling, role limits, DMs, the pause, refusals counted by
reason, usage reports, and the read-only open.

Every bound is checked inside `reserve`'s own transaction; the races here use two stores (two
connections or pools, as two processes would) on one database. The sqlite-only tests at the end
cover its file: the upgrade from version 1 and reading while another writer holds the lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.store import CeilingExceeded, JobState, Limits, QuotaRefused, Store, StoreError
from bot.store.models import BOT_SCOPE
from bot.store.quota import OWNER_ALLOWANCE
from cogs.utils.quota_words import ceiling_text, refusal_text
from tests.support.old_schema import SQLITE as OLD_SQLITE
from tests.support.store import (
    MIDNIGHT,
    Clock,
    Database,
    open_url,
    rows,
    url,
)

G, H = 111, 222  # two guild scopes
U, V, W = 501, 502, 503
ADMIN, OWNER = 9, 8
ARTIST, MOD = 7001, 7002  # role ids


async def open_with(
    where: Database | Path,
    clock: Clock,
    *,
    default: int = 10,
    read_only: bool = False,
    **limits: int | None,
) -> Store:
    return await open_url(
        where.url if isinstance(where, Database) else url(where),
        clock,
        default_daily_limit=default,
        limits=Limits(**limits),
        read_only=read_only,
    )


async def refused(store: Store, scope: int, user: int, images: int, **kw: object) -> QuotaRefused:
    with pytest.raises(QuotaRefused) as info:
        await store.reserve(scope, user, images, **kw)  # type: ignore[arg-type]
    return info.value


async def test_the_owners_own_scope_has_no_member_limit_nor_server_ceiling(
    database: Database,
) -> None:
    """`python -m bot edit` reserves in the owner's scope (BOT_SCOPE): no member allowance and no
    server ceiling bound it there (the owner pays anyway), while the bot-wide cap still does and
    a server's members stay under the ceiling."""
    clock = Clock()
    store = await open_with(database, clock, default=3, server_ceiling=5, global_daily=20)
    try:
        await store.reserve(BOT_SCOPE, OWNER, 8)
        status = await store.quota_status(BOT_SCOPE, OWNER)
        assert (status.limit, status.held) == (OWNER_ALLOWANCE, 8)
        assert (await refused(store, G, U, 4)).reason == "daily_limit"
        await store.reserve(G, U, 3)
        assert (await refused(store, G, V, 3)).reason == "server_cap"  # 5 a day in a server
        assert (await refused(store, BOT_SCOPE, OWNER, 13)).reason == "global_cap"
    finally:
        await store.close()


async def test_roles_count_only_in_servers_never_in_dms(database: Database) -> None:
    """A role limit is a server's: in DMs (scope 0) the member's roles match nothing, even a
    limit written under scope 0 for one of their role ids; the DM allowance applies."""
    clock = Clock()
    store = await open_with(database, clock, default=10, dm_daily=3)
    try:
        await store.set_role_limit(0, ADMIN, ARTIST, 8)
        status = await store.quota_status(0, U, roles=(ARTIST,))
        assert (status.limit, status.limit_source, status.limit_role) == (3, "dm", None)
        assert (await refused(store, 0, U, 4, roles=(ARTIST,))).reason == "daily_limit"
    finally:
        await store.close()


async def test_bot_wide_cap_spans_servers_and_dms_and_resets_at_midnight(
    database: Database,
) -> None:
    """The bot-wide cap counts every scope together, holds included, and names itself."""
    clock = Clock()
    store = await open_with(database, clock, global_daily=5, dm_daily=3)
    try:
        first = await store.reserve(G, U, 2)
        await store.reserve(H, V, 2)
        await store.reserve(0, W, 1)  # DMs count too
        refusal = await refused(store, G, V, 1)
        assert (refusal.reason, refusal.remaining, refusal.cap) == ("global_cap", 0, 5)
        assert refusal.resets_at == MIDNIGHT
        assert "bot's daily limit for everyone (5 images) is used up" in refusal_text(refusal)
        status = await store.quota_status(G, V)
        assert (status.remaining, status.limited_by) == (0, "global_cap")
        # A settled job that made fewer images gives the rest back to everyone.
        await store.settle(first.id, 1)
        assert (await store.reserve(H, W, 1)).images == 1
        clock.advance(hours=12)
        status = await store.quota_status(G, V)
        assert (status.remaining, status.limited_by) == (5, "global_cap")  # a new day, all 5
    finally:
        await store.close()


async def test_fifty_members_in_two_servers_racing_get_exactly_the_cap(database: Database) -> None:
    """50 concurrent requests from 50 members through two connections: never one image over."""
    clock = Clock()
    one = await open_with(database, clock, global_daily=37)
    two = await open_with(database, clock, global_daily=37)
    try:

        async def ask(i: int) -> int:
            store = one if i % 2 else two
            try:
                return (await store.reserve(G if i < 25 else H, 1000 + i, 1 + i % 2)).images
            except QuotaRefused as refusal:
                assert refusal.reason == "global_cap"
                return 0

        granted = await asyncio.gather(*(ask(i) for i in range(50)))
        assert sum(granted) <= 37
        assert sum(granted) >= 36  # only a 2-image request may find 1 left
        assert await database.rows("SELECT held FROM bot_days") == [(sum(granted),)]
        report = await one.usage_report(None, days=1)
        refused_images = sum(1 + n % 2 for n, got in enumerate(granted) if got == 0)
        assert report.today.refused == {"global_cap": refused_images}
    finally:
        await one.close()
        await two.close()


async def test_server_ceiling_bounds_reservations_and_admin_changes(database: Database) -> None:
    """WAN_SERVER_DAILY_LIMIT caps a server with no cap of its own; admins can't go above it."""
    store = await open_with(database, Clock(), server_ceiling=4)
    try:
        totals = await store.server_totals(G)
        assert (totals.cap, totals.ceiling, totals.cap_in_force, totals.cap_remaining) == (
            None,
            4,
            4,
            4,
        )
        await store.reserve(G, U, 3)
        refusal = await refused(store, G, V, 2)
        assert (refusal.reason, refusal.remaining, refusal.cap) == ("server_cap", 1, 4)
        assert "(4 images, set by the bot's owner) has 1 image left" in refusal_text(refusal)
        for change in (
            store.set_server_cap(G, ADMIN, 5),
            store.set_server_default(G, ADMIN, 5),
            store.set_user_limit(G, ADMIN, U, 5),
            store.set_role_limit(G, ADMIN, ARTIST, 5),
            store.grant_extra(G, ADMIN, U, 5),
        ):
            with pytest.raises(CeilingExceeded) as info:
                await change
            assert info.value.ceiling == 4 and "at most 4 images" in ceiling_text(info.value)
        assert await store.audit_log(G) == []  # nothing changed, nothing audited
        assert await database.rows("SELECT count(*) FROM role_limits") == [(0,)]
        assert await database.rows("SELECT count(*) FROM members") == [(0,)]  # not even a row
        # Lower is fine, and then the server's own cap is the one named.
        assert await store.set_server_cap(G, ADMIN, 3) == (None, 3)
        refusal = await refused(store, G, V, 1)
        assert refusal.cap == 3 and "set by the bot's owner" not in refusal_text(refusal)
        assert await store.grant_extra(G, ADMIN, U, 4) == (0, 4)
        assert await store.grant_extra(G, ADMIN, U, -10) == (4, 0)  # taking back always works
        # The ceiling is for servers: DMs have their own limit.
        assert (await store.reserve(0, U, 5)).images == 5
    finally:
        await store.close()


async def test_role_limits_rank_between_own_limit_and_server_default(database: Database) -> None:
    """Own limit wins; among roles the highest; the server default for the rest."""
    store = await open_with(database, Clock())
    try:
        await store.set_server_default(G, ADMIN, 1)
        assert await store.set_role_limit(G, ADMIN, ARTIST, 4) == (None, 4)
        await store.set_role_limit(G, ADMIN, MOD, 2)
        status = await store.quota_status(G, U, roles=[MOD, ARTIST, G])
        assert (status.limit, status.limit_source, status.limit_role) == (4, "role", ARTIST)
        status = await store.quota_status(G, U, roles=[MOD])
        assert (status.limit, status.limit_role) == (2, MOD)
        assert (await store.quota_status(G, U)).limit_source == "server"
        assert (await store.quota_status(H, U, roles=[ARTIST])).limit == 10  # another server
        await store.reserve(G, U, 4, roles=[ARTIST, MOD])
        refusal = await refused(store, G, U, 1, roles=[ARTIST])
        assert (
            refusal.reason == "daily_limit"
            and "your 4 images (your role's limit)" in refusal_text(refusal)
        )
        # Without the role (taken away since), the server default applies: nothing left.
        assert (await store.quota_status(G, U)).remaining == 0
        await store.set_user_limit(G, ADMIN, U, 6)
        status = await store.quota_status(G, U, roles=[ARTIST])
        assert (status.limit, status.limit_source, status.remaining) == (6, "user", 2)
        assert await store.role_limits(G) == {ARTIST: 4, MOD: 2}
        assert await store.set_role_limit(G, ADMIN, MOD, None) == (2, None)
        assert await store.role_limits(G) == {ARTIST: 4}
        (entry, *_) = await store.audit_log(G)
        assert (entry.action, entry.target, entry.old, entry.new) == (
            "set_role_limit",
            MOD,
            2,
            None,
        )
    finally:
        await store.close()


async def test_dm_limit_and_dms_off(database: Database) -> None:
    """DMs get WAN_DM_DAILY_LIMIT each; 0 refuses every DM request, counted as dm_off."""
    clock = Clock()
    store = await open_with(database, clock, dm_daily=2)
    try:
        status = await store.quota_status(0, U)
        assert (status.limit, status.limit_source) == (2, "dm")
        await store.reserve(0, U, 2)
        refusal = await refused(store, 0, U, 1)
        assert refusal.reason == "daily_limit" and "limit for DMs with the bot" in refusal_text(
            refusal
        )
    finally:
        await store.close()
    store = await open_with(database, clock, dm_daily=0)
    try:
        refusal = await refused(store, 0, V, 1)
        assert (refusal.reason, refusal.resets_at) == ("dm_off", None)
        assert "turned off image edits in DMs" in refusal_text(refusal)
        assert (await store.quota_status(0, V)).remaining == 0
        assert (await store.reserve(G, V, 1)).images == 1  # servers are untouched
        report = await store.usage_report(0, days=1)
        assert report.today.refused == {"daily_limit": 1, "dm_off": 1}
    finally:
        await store.close()


async def test_pause_and_the_run_time_cap_survive_a_restart(database: Database) -> None:
    """The owner's switches live in the database: a new process sees them."""
    clock = Clock()
    store = await open_with(database, clock, global_daily=100)
    held = await store.reserve(G, U, 1)
    assert await store.set_paused(OWNER, True) == (False, True)
    assert await store.set_global_cap(OWNER, 3) == (100, 3)
    await store.close()

    store = await open_with(database, clock, global_daily=100)
    try:
        state = await store.bot_state()
        assert (state.paused, state.global_cap, state.global_cap_overridden) == (True, 3, True)
        refusal = await refused(store, G, V, 1)
        assert (refusal.reason, refusal.resets_at) == ("paused", None)
        assert "paused" in refusal_text(refusal)
        status = await store.quota_status(G, V)
        assert (status.paused, status.remaining, status.limited_by) == (True, 0, "paused")
        assert await store.settle(held.id, 1) == 1  # a job in flight still settles
        await store.set_paused(OWNER, False)
        await store.reserve(G, V, 2)
        assert (await refused(store, G, W, 1)).reason == "global_cap"
        assert await store.set_global_cap(OWNER, 0) == (3, None)  # 0: no cap at all
        assert (await store.reserve(G, W, 1)).images == 1
        assert await store.set_global_cap(OWNER, None) == (None, 100)  # back to the setting
        assert (await store.bot_state()).global_cap_overridden is False
        actions = [e.action for e in await store.audit_log(-1)]
        assert actions == ["set_global_cap"] * 2 + ["resume", "set_global_cap", "pause"]
    finally:
        await store.close()


async def test_usage_report_counts_billed_images_refusals_and_top_members(
    database: Database,
) -> None:
    """Cost comes from what Wan billed per job, per day; the days before today are kept."""
    clock = Clock()
    store = await open_with(database, clock, default=3)
    try:

        async def job(scope: int, user: int, images: int, billed: int | None) -> None:
            reservation = await store.reserve(scope, user, images)
            row = await store.create_job(
                scope=scope,
                channel_id=1,
                user_id=user,
                source="slash",
                prompt="p",
                reservation_id=reservation.id,
                state=JobState.QUEUED,
            )
            if billed is not None:
                await store.update_job(row.id, billed=billed)
            await store.finish_job(
                row.id, JobState.DONE if billed else JobState.FAILED, generated=billed or 0
            )

        await job(G, U, 2, 2)
        clock.advance(days=1)
        await job(G, U, 3, 3)
        await job(G, V, 1, 1)
        await job(H, W, 2, None)  # failed: nothing billed
        await refused(store, G, V, 3)
        report = await store.usage_report(G, days=7)
        assert len(report.days) == 7 and report.days[-1].day == clock.now.date()
        assert [(d.charged, d.billed) for d in report.days[-2:]] == [(2, 2), (4, 4)]
        assert report.today.refused == {"daily_limit": 3}
        assert report.top_members == [(G, U, 3), (G, V, 1)]
        everyone = await store.usage_report(None, days=2)
        assert [(d.charged, d.billed) for d in everyone.days] == [(2, 2), (4, 4)]
        assert everyone.servers == [(G, 4, 4), (H, 0, 0)]
        assert everyone.refused_by_scope == {G: {"daily_limit": 3}}
        assert (everyone.global_used, everyone.global_held) == (4, 0)
    finally:
        await store.close()


async def test_a_refusal_is_counted_and_leaves_no_other_trace(database: Database) -> None:
    """A refused request commits its count and nothing else: no member, day or server row, so the
    server's totals and the report's servers stay as they were."""
    clock = Clock()
    store = await open_with(database, clock, global_daily=2)
    try:
        await store.reserve(G, U, 2)
        refusal = await refused(store, H, V, 1)
        assert refusal.reason == "global_cap"
        await store.block_user(H, ADMIN, W)
        assert (await refused(store, H, W, 3)).reason == "blocked"
        assert await database.rows(
            "SELECT scope, reason, requests, images FROM refusal_days ORDER BY reason"
        ) == [(H, "blocked", 1, 3), (H, "global_cap", 1, 1)]
        assert await database.rows("SELECT count(*) FROM member_days WHERE scope = ?", H) == [(0,)]
        assert await database.rows("SELECT count(*) FROM scope_days WHERE scope = ?", H) == [(0,)]
        assert (await store.server_totals(H)).users == 0
        report = await store.usage_report(None, days=1)
        assert report.servers == [(G, 0, 0)]
        assert report.refused_by_scope == {H: {"global_cap": 1, "blocked": 3}}
        assert (report.global_used, report.global_held) == (0, 2)
    finally:
        await store.close()


async def test_what_wan_billed_is_kept_apart_from_the_charge(database: Database) -> None:
    """`finish_job(billed=...)` records the bill; `server_totals` shows today's billed images and
    those that never reached the member; a finish without `billed` keeps `update_job`'s."""
    clock = Clock()
    store = await open_with(database, clock)
    try:

        async def job(images: int) -> int:
            reservation = await store.reserve(G, U, images)
            made = await store.create_job(
                scope=G, channel_id=1, user_id=U, source="slash", prompt="p",
                reservation_id=reservation.id, state=JobState.QUEUED,
            )  # fmt: skip
            return made.id

        first = await job(4)
        await store.finish_job(first, JobState.DONE, generated=1, billed=4)  # 3 lost on the way
        second = await job(2)
        await store.update_job(second, billed=2)
        await store.finish_job(second, JobState.DONE, generated=2)
        assert [(await store.get_job(j)).billed for j in (first, second)] == [4, 2]  # type: ignore[union-attr]
        third = await job(1)
        await store.finish_job(third, JobState.FAILED)
        assert (await store.get_job(third)).billed is None  # type: ignore[union-attr]
        totals = await store.server_totals(G)
        # The server's day counts what Wan billed (the owner's caps bound the bill); the member
        # was charged for the 3 delivered.
        assert (totals.used, totals.billed, totals.undelivered) == (6, 6, 3)
        assert (await store.quota_status(G, U)).used == 3
        assert (await store.server_totals(H)).billed == 0
        with pytest.raises(ValueError):
            await store.finish_job(third, JobState.DONE, billed=-1)
        clock.advance(days=1)
        totals = await store.server_totals(G)
        assert (totals.used, totals.billed, totals.undelivered) == (0, 0, 0)
    finally:
        await store.close()


async def test_read_only_open_reads_and_refuses_every_write(database: Database) -> None:
    """`python -m bot usage` reads what the bot wrote and can't change a thing."""
    clock = Clock()
    writer = await open_with(database, clock, global_daily=9)
    try:
        await writer.reserve(G, U, 2)
        reader = await open_with(database, clock, read_only=True, global_daily=9)
        try:
            report = await reader.usage_report(None, days=1)
            assert (report.global_held, report.global_cap) == (2, 9)
            assert (await reader.quota_status(G, U)).held == 2
            for write in (
                reader.set_paused(OWNER, True),
                reader.reserve(G, V, 1),
                reader.set_meta("k", "v"),
            ):
                with pytest.raises(StoreError):
                    await write
        finally:
            await reader.close()
        assert (await writer.bot_state()).paused is False
        assert await writer.get_meta("k") is None
        assert (await writer.quota_status(G, V)).held == 0
    finally:
        await writer.close()


# ---- sqlite only: its file ----


async def test_read_only_open_reads_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    """`python -m bot usage` must work while the bot runs: no write lock, no migration."""
    db = tmp_path / "w.db"
    clock = Clock()
    with pytest.raises(StoreError, match="start the bot once"):
        await open_with(db, clock, read_only=True)
    writer = await open_with(db, clock)
    await writer.reserve(G, U, 2)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another writer mid-transaction
    try:
        reader = await open_with(db, clock, read_only=True)
        try:
            report = await reader.usage_report(None, days=1)
            assert report.global_held == 2
            with pytest.raises(StoreError):
                await reader.set_paused(OWNER, True)
        finally:
            await reader.close()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        await writer.close()


async def test_upgrading_a_version_1_database_counts_what_it_already_spent(tmp_path: Path) -> None:
    """bot_days starts from the servers' spending, so the cap holds on the day of the upgrade."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in OLD_SQLITE[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    day = Clock().now.date().isoformat()
    conn.execute("INSERT INTO scope_days (scope, day, used, held) VALUES (?, ?, 3, 1)", (G, day))
    conn.execute("INSERT INTO scope_days (scope, day, used, held) VALUES (?, ?, 1, 0)", (H, day))
    conn.close()
    store = await open_with(db, Clock(), global_daily=6)
    try:
        assert rows(db, "SELECT day, used, held FROM bot_days") == [(day, 4, 1)]
        assert (await store.quota_status(G, U)).remaining == 1
    finally:
        await store.close()
