"""The PostgreSQL store's own promises: migrations at open, one-line errors that never show the
password, bounded lock waits, and no over-grant however many pools (processes) race.

The behaviour both engines share is tested on both by the other store test modules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.store import (
    JobState,
    LeaseLost,
    Limits,
    QuotaRefused,
    Reservation,
    Store,
    StoreError,
    open_store,
)
from bot.store.schema import latest
from bot.store.urls import Target, describe_url
from tests.support.old_schema import POSTGRES as MIGRATIONS
from tests.support.old_schema import VERSION_TABLE as _VERSION_TABLE
from tests.support.store import (
    START,
    Clock,
    PgServer,
    eventually,
    open_url,
)

SCHEMA_VERSION = latest()

G, U, ADMIN = 111, 501, 9
H = 222  # another guild
T = TypeVar("T")


async def fetch(database_url: str, sql: str, *args: object) -> list[tuple]:
    con = await asyncpg.connect(database_url)
    try:
        return [tuple(r) for r in await con.fetch(sql, *args)]
    finally:
        await con.close()


async def start_error(database_url: str, **kwargs: object) -> str:
    with pytest.raises(StoreError) as info:
        await open_store(database_url, **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text and text.strip() == text and text
    return text


def with_password(database_url: str, password: str) -> str:
    parts = urlsplit(database_url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def racing(n: int, call: Callable[[int], Awaitable[T]]) -> list[T | BaseException]:
    """Run `call(0..n-1)` released at the same moment, each as its own task."""
    go = asyncio.Event()

    async def one(i: int) -> T:
        await go.wait()
        return await call(i)

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0)
    go.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


# ---- migrations ----


async def test_a_fresh_database_is_migrated_once(pg_server: PgServer) -> None:
    database_url = await pg_server.create(migrated=False)
    try:
        store = await open_store(database_url, clock=Clock())
        await store.reserve(G, U, 2)
        await store.close()
        store = await open_store(database_url, clock=Clock())  # reopening migrates nothing
        try:
            assert (await store.quota_status(G, U)).held == 2
        finally:
            await store.close()
        versions = await fetch(database_url, "SELECT version FROM schema_migrations")
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    finally:
        await pg_server.drop(database_url)


async def test_processes_starting_together_migrate_once(pg_server: PgServer) -> None:
    database_url = await pg_server.create(migrated=False)
    try:
        stores = await asyncio.gather(*(open_store(database_url) for _ in range(4)))
        for store in stores:
            await store.close()
        assert await fetch(database_url, "SELECT count(*) FROM schema_migrations") == [
            (SCHEMA_VERSION,)
        ]
    finally:
        await pg_server.drop(database_url)


async def test_newer_schema_is_refused(pg_url: str) -> None:
    await fetch(pg_url, "INSERT INTO schema_migrations (version) VALUES ($1)", SCHEMA_VERSION + 5)
    text = await start_error(pg_url)
    assert f"schema version {SCHEMA_VERSION + 5}" in text and "newer wanbot" in text
    assert (SCHEMA_VERSION + 5,) in await fetch(pg_url, "SELECT version FROM schema_migrations")


async def test_upgrading_a_version_1_database_counts_what_it_already_spent(
    pg_server: PgServer,
) -> None:
    """bot_days starts from the servers' spending, so the bot-wide cap holds on the upgrade's day."""
    database_url = await pg_server.create(migrated=False)
    try:
        con = await asyncpg.connect(database_url)
        try:
            await con.execute(_VERSION_TABLE)
            for statement in MIGRATIONS[0]:
                await con.execute(statement)
            await con.execute("INSERT INTO schema_migrations (version) VALUES (1)")
            for scope, used, held in ((G, 3, 1), (H, 1, 0)):
                await con.execute(
                    "INSERT INTO scope_days (scope, day, used, held) VALUES ($1, $2, $3, $4)",
                    scope, START.date(), used, held,
                )  # fmt: skip
        finally:
            await con.close()
        store = await open_store(database_url, clock=Clock(), limits=Limits(global_daily=6))
        try:
            assert await fetch(database_url, "SELECT day, used, held FROM bot_days") == [
                (START.date(), 4, 1)
            ]
            assert (await store.quota_status(G, U)).remaining == 1
        finally:
            await store.close()
    finally:
        await pg_server.drop(database_url)


async def test_read_only_open_needs_a_migrated_database_and_creates_nothing(
    pg_server: PgServer,
) -> None:
    """`python -m bot usage` before the bot ever ran: one line, and the database left empty."""
    database_url = await pg_server.create(migrated=False)
    try:
        text = await start_error(database_url, read_only=True)
        assert "no wanbot tables yet: start the bot once first" in text
        assert await fetch(database_url, "SELECT to_regclass('schema_migrations')") == [(None,)]
    finally:
        await pg_server.drop(database_url)


# ---- start-up failures: one line, never the password ----


async def test_wrong_password(pg_url: str) -> None:
    bad = with_password(pg_url, "hunter2-wrong")
    text = await start_error(bad)
    assert "refused the login of user" in text and "DATABASE_URL" in text
    assert "hunter2" not in text


async def test_missing_database(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    missing = urlunsplit(parts._replace(path="/no_such_wanbot_db"))
    text = await start_error(missing)
    assert "no_such_wanbot_db" in text and "does not exist" in text
    assert parts.password not in text


async def test_unreachable_server_fails_quickly() -> None:
    started = time.monotonic()
    text = await start_error("postgresql://bot:hunter2@127.0.0.1:1/wanbot")
    assert time.monotonic() - started < 10
    assert "Cannot reach the PostgreSQL database wanbot on 127.0.0.1:1" in text
    assert "hunter2" not in text


def test_urls_are_shown_without_credentials() -> None:
    target = Target.parse("postgres://bot:s%40cret@db.example:6543/wanbot")
    assert (target.host, target.database, target.user, target.password) == (
        "db.example:6543",
        "wanbot",
        "bot",
        "s@cret",
    )
    assert target.scrub("failed: s@cret and s%40cret\nagain") == "failed: *** and *** again"
    assert describe_url("postgresql://bot:pw@h/db") == "PostgreSQL database db on h"
    assert describe_url("sqlite:///wanbot.db") == "sqlite:///wanbot.db"
    assert Target.parse("postgresql://h/db?password=qs").password == "qs"


async def test_a_closed_store_says_so(pg_url: str) -> None:
    store = await open_store(pg_url)
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        await store.reserve(G, U, 1)


async def test_exclusive_changes_nothing_on_postgres(pg_url: str) -> None:
    first = await open_store(pg_url, exclusive=True)
    second = await open_store(pg_url, exclusive=True)  # several processes are what it is for
    await first.close()
    await second.close()


# ---- locks ----


async def hold_scope_day(pg_url: str) -> asyncpg.Connection:
    """A connection holding the lock every reservation of scope G on START's day takes first."""
    holder = await asyncpg.connect(pg_url)
    await holder.execute("BEGIN")
    await holder.execute(
        "INSERT INTO scope_days (scope, day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        G,
        START.date(),
    )
    await holder.execute(
        "SELECT 1 FROM scope_days WHERE scope = $1 AND day = $2 FOR UPDATE", G, START.date()
    )
    return holder


async def test_a_lock_held_past_the_busy_timeout_is_a_store_error(pg_url: str) -> None:
    store = await open_url(pg_url, Clock(), busy_timeout=0.3)
    holder = await hold_scope_day(pg_url)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"locked for more than 0\.3 s"):
            await asyncio.wait_for(store.reserve(G, U, 1), timeout=10)
        assert time.monotonic() - started < 5
        await holder.execute("ROLLBACK")
        assert (await store.reserve(G, U, 1)).images == 1  # recovers once released
    finally:
        await holder.close()
        await store.close()


async def test_a_cancelled_reserve_holds_nothing(pg_url: str) -> None:
    store = await open_url(pg_url, Clock(), busy_timeout=10)
    holder = await hold_scope_day(pg_url)
    try:
        waiting = asyncio.create_task(store.reserve(G, U, 4))

        async def blocked() -> bool:
            found = await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
            return bool(found)

        await eventually(blocked)
        waiting.cancel()
        await holder.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await waiting

        # The reserve went through after its caller left, and was given back.
        async def settled_down() -> bool:
            got = await fetch(pg_url, "SELECT images, status FROM reservations")
            return got == [(4, "released")]

        await eventually(settled_down)
        status = await store.quota_status(G, U)
        assert (status.held, status.remaining) == (0, 10)
    finally:
        await holder.close()
        await store.close()


# ---- races between pools: each store is a pool, as each process has ----


async def many_stores(pg_url: str, n: int, **kwargs: object) -> list[Store]:
    return list(
        await asyncio.gather(*(open_url(pg_url, Clock(), **kwargs) for _ in range(n)))  # type: ignore[arg-type]
    )


async def close_all(stores: list[Store]) -> None:
    await asyncio.gather(*(s.close() for s in stores))


async def test_the_last_images_of_a_member_go_to_exactly_one_pool_each(pg_url: str) -> None:
    stores = await many_stores(pg_url, 8)
    try:
        await stores[0].set_user_limit(G, ADMIN, U, 3)
        await stores[0].grant_extra(G, ADMIN, U, 2)
        for round_ in range(4):
            # 5 images left (3 daily + 2 extra), 16 asks of one from 8 pools at once.
            results = await racing(16, lambda i: stores[i % 8].reserve(G, U, 1))
            granted = [r for r in results if isinstance(r, Reservation)]
            assert len(granted) == 5, round_
            assert all(isinstance(r, Reservation | QuotaRefused) for r in results), results
            assert sum(r.from_extra for r in granted) == 2
            status = await stores[1].quota_status(G, U)
            assert (status.held, status.extra, status.remaining) == (5, 0, 0)
            # Give everything back, from as many pools, for the next round.
            await racing(len(granted), lambda i, g=granted: stores[i % 8].release(g[i].id))
            assert (await stores[2].quota_status(G, U)).remaining == 5
    finally:
        await close_all(stores)


async def test_the_last_images_under_a_server_cap_never_over_grant(pg_url: str) -> None:
    stores = await many_stores(pg_url, 8)
    try:
        await stores[0].set_server_cap(G, ADMIN, 30)
        used = await stores[0].reserve(G, U, 10)
        await stores[0].settle(used.id, 10)
        # 20 left under the cap, 40 members asking for 1-2 each from 8 pools at once.
        results = await racing(40, lambda i: stores[i % 8].reserve(G, 2000 + i, 1 + i % 2))
        granted = sum(r.images for r in results if isinstance(r, Reservation))
        refused = [r for r in results if isinstance(r, QuotaRefused)]
        assert granted == 20  # exactly the cap: no overrun, and nothing refused that fitted
        assert refused and all(r.reason == "server_cap" for r in refused)
        totals = await stores[3].server_totals(G)
        assert (totals.used, totals.held, totals.cap_remaining) == (10, 20, 0)
    finally:
        await close_all(stores)


async def test_admin_changes_racing_reservations_keep_the_books(pg_url: str) -> None:
    stores = await many_stores(pg_url, 6)
    try:
        await stores[0].set_user_limit(G, ADMIN, U, 2)
        await stores[0].grant_extra(G, ADMIN, U, 20)

        async def step(i: int) -> object:
            store = stores[i % 6]
            if i % 5 == 0:
                return await store.grant_extra(G, ADMIN, U, -3)  # taking back races spending
            return await store.reserve(G, U, 1)

        results = await racing(60, step)
        for r in results:
            assert isinstance(r, Reservation | QuotaRefused | tuple), r
        granted = [r for r in results if isinstance(r, Reservation)]
        taken_back = sum(old - new for old, new in (r for r in results if isinstance(r, tuple)))
        status = await stores[1].quota_status(G, U)
        assert status.held == len(granted)
        # Every extra image is accounted for: held by a reservation, taken back, or still there.
        assert status.extra == 20 - taken_back - sum(r.from_extra for r in granted)
        audits = await stores[2].audit_log(G, limit=100)
        assert len([a for a in audits if a.action == "grant_extra"]) == 1 + 12
    finally:
        await close_all(stores)


async def test_the_last_images_of_the_bot_wide_cap_never_over_grant(pg_url: str) -> None:
    """Pools racing from four servers for the bot-wide cap's last images get exactly the cap, and
    every refusal is counted once, whichever pool it came from."""
    stores = await many_stores(pg_url, 8, limits=Limits(global_daily=30))
    try:
        used = await stores[0].reserve(H, U, 6)
        await stores[0].settle(used.id, 6)
        scopes = (G, H, 333, 444)
        for round_ in range(3):
            # 24 left under the cap, 48 members in 4 servers asking for 1 each from 8 pools.
            results = await racing(48, lambda i: stores[i % 8].reserve(scopes[i % 4], 4000 + i, 1))
            granted = [r for r in results if isinstance(r, Reservation)]
            refused = [r for r in results if isinstance(r, QuotaRefused)]
            assert len(granted) == 24, round_  # exactly the cap: no overrun, nothing lost
            assert len(refused) == 24 and all(r.reason == "global_cap" for r in refused)
            assert await fetch(pg_url, "SELECT used, held FROM bot_days") == [(6, 24)]
            status = await stores[1].quota_status(333, 9999)
            assert (status.remaining, status.limited_by) == (0, "global_cap")
            await racing(len(granted), lambda i, g=granted: stores[i % 8].release(g[i].id))
        counted = await fetch(
            pg_url,
            "SELECT sum(requests), sum(images) FROM refusal_days WHERE reason = 'global_cap'",
        )
        assert counted == [(72, 72)]
    finally:
        await close_all(stores)


async def test_reserving_and_settling_in_many_scopes_and_days_never_deadlocks(pg_url: str) -> None:
    """Reservations, settles and releases of two days in four scopes, from six pools at once:
    every one finishes (no deadlock: the fixed lock order) and bot_days is the sum of scope_days."""
    clock = Clock()
    stores = list(
        await asyncio.gather(
            *(open_url(pg_url, clock, limits=Limits(global_daily=500)) for _ in range(6))
        )
    )
    try:
        scopes = (G, H, 333, 444)
        yesterday = [await stores[0].reserve(scopes[i % 4], 5000 + i, 1 + i % 3) for i in range(24)]
        clock.advance(days=1)

        async def step(i: int) -> object:
            store = stores[i % 6]
            if i < 24:  # close yesterday's while today's are taken
                old = yesterday[i].id
                return await (store.settle(old, 1) if i % 2 else store.release(old))
            return await store.reserve(scopes[i % 4], 6000 + i, 1 + i % 3)

        results = await racing(72, step)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        per_day = await fetch(
            pg_url,
            "SELECT day, sum(used), sum(held) FROM scope_days GROUP BY day ORDER BY day",
        )
        assert await fetch(pg_url, "SELECT day, used, held FROM bot_days ORDER BY day") == [
            (day, int(used), int(held)) for day, used, held in per_day
        ]
        assert per_day[0][2] == 0 and per_day[1][2] > 0  # yesterday all closed, today held
    finally:
        await close_all(stores)


async def test_the_bot_day_is_locked_across_scopes(pg_url: str) -> None:
    """Every reservation of a day waits on its bot_days row (the bot-wide cap's lock), whatever
    its scope: held elsewhere, a reservation in another server times out as a StoreError."""
    store = await open_url(pg_url, Clock(), busy_timeout=0.3)
    holder = await asyncpg.connect(pg_url)
    try:
        await holder.execute("BEGIN")
        await holder.execute("INSERT INTO bot_days (day) VALUES ($1)", START.date())
        with pytest.raises(StoreError, match=r"locked for more than 0\.3 s"):
            await asyncio.wait_for(store.reserve(H, U, 1), timeout=10)
        await holder.execute("ROLLBACK")
        assert (await store.reserve(H, U, 1)).images == 1
        assert await fetch(pg_url, "SELECT used, held FROM bot_days") == [(0, 1)]
    finally:
        await holder.close()
        await store.close()


async def test_two_processes_finishing_one_job_charge_once(pg_url: str) -> None:
    stores = await many_stores(pg_url, 2)
    try:
        for _ in range(10):
            reservation = await stores[0].reserve(G, U, 1)
            job = await stores[0].create_job(
                scope=G, channel_id=1, user_id=U, source="slash", prompt="x",
                reservation_id=reservation.id, state=JobState.QUEUED,
            )  # fmt: skip
            outcomes = await racing(
                2,
                lambda i, job_id=job.id: stores[i].finish_job(
                    job_id, JobState.DONE if i else JobState.FAILED, generated=i
                ),
            )
            assert sorted(outcomes) == [False, True]  # type: ignore[type-var]
        status = await stores[1].quota_status(G, U)
        assert status.held == 0
        charged = await fetch(pg_url, "SELECT sum(charged) FROM reservations")
        assert status.used == charged[0][0]
    finally:
        await close_all(stores)


async def test_a_start_leaves_a_live_process_its_fresh_hold(pg_url: str) -> None:
    """Promise: a process starting while another is between reserving and storing its job (two
    transactions) does not release that hold, so the job is charged when it ends."""
    clock = Clock()
    running = await open_url(pg_url, clock)
    starting = await open_url(pg_url, clock)
    try:
        hold = await running.reserve(G, U, 2)
        clock.advance(seconds=5)
        assert await starting.release_orphaned_reservations() == 0  # as a start calls it
        job = await running.create_job(
            scope=G, channel_id=7, user_id=U, source="slash", prompt="p", reservation_id=hold.id
        )
        await running.update_job(job.id, state=JobState.DELIVERING)
        assert await running.finish_job(job.id, JobState.DONE, generated=2)
        assert (await running.quota_status(G, U)).used == 2
        assert await fetch(pg_url, "SELECT status, charged FROM reservations") == [("settled", 2)]
        # A crash's leftover, once older than the margin, is still taken back at a start.
        await running.reserve(G, U, 1)
        clock.advance(minutes=11)
        assert await starting.release_orphaned_reservations() == 1
    finally:
        await close_all([running, starting])


async def test_a_named_lock_held_past_lock_timeout_is_waited_for(pg_url: str) -> None:
    """Promise: processes starting together while one syncs the commands slowly (its call lasting
    longer than `lock_timeout`) wait for it instead of failing their start."""
    stores = await many_stores(pg_url, 3, busy_timeout=0.2)
    order: list[str] = []
    holding = asyncio.Event()

    async def slow_sync() -> None:
        async with stores[0].exclusive("command-sync"):
            holding.set()
            order.append("first in")
            await asyncio.sleep(1.0)  # a sync five times longer than lock_timeout
            order.append("first out")

    async def next_start(i: int) -> None:
        await holding.wait()
        async with stores[i].exclusive("command-sync"):
            order.append(f"{i} in")
            order.append(f"{i} out")

    try:
        await asyncio.wait_for(asyncio.gather(slow_sync(), next_start(1), next_start(2)), 30)
        assert order[:2] == ["first in", "first out"]
        # One holder at a time: each "in" is followed by its own "out".
        assert sorted(order[2:4]) == ["1 in", "1 out"] or sorted(order[2:4]) == ["2 in", "2 out"]
        assert len(order) == 6
    finally:
        await close_all(stores)


async def test_orphans_released_once_by_processes_starting_together(pg_url: str) -> None:
    store = await open_url(pg_url, Clock())
    for user in range(12):
        await store.reserve(G, 3000 + user, 1)
    await store.close()
    stores = await many_stores(pg_url, 3)
    try:
        counts = await racing(3, lambda i: stores[i].release_orphaned_reservations(timedelta(0)))
        assert sum(counts) == 12  # type: ignore[arg-type]
        assert (await stores[0].server_totals(G)).held == 0
        assert await fetch(pg_url, "SELECT count(*) FROM reservations WHERE status = 'held'") == [
            (0,)
        ]
    finally:
        await close_all(stores)


async def test_a_task_answered_after_the_lease_moved_is_recorded_for_the_new_owner(
    pg_url: str,
) -> None:
    """Promise: a process whose create was answered after it lost the job's lease records the task
    id for the job's new owner (never over an id, never on an ended job), leaving its lease alone."""
    first, second = await many_stores(pg_url, 2)
    try:
        a, b = first.job_queue(max_slots=5, ttl=60.0), second.job_queue(max_slots=5, ttl=60.0)
        jobs = []
        for _ in range(2):
            hold = await first.reserve(G, U, 1)
            jobs.append(
                await first.create_job(
                    scope=G,
                    channel_id=7,
                    user_id=U,
                    source="slash",
                    prompt="p",
                    reservation_id=hold.id,
                    state=JobState.QUEUED,
                )
            )
        old = {}
        for job in jobs:
            assert await a.pop() == (job.id, a.lease(job.id))
            old[job.id] = a.lease(job.id)
            await first.update_job(job.id, state=JobState.SUBMITTED, lease=old[job.id])
        # `a` stalls past its leases while its creates are on their way; `b` takes both over.
        await fetch(pg_url, "UPDATE jobs SET lease_expires_at = clock_timestamp() RETURNING id")
        assert sorted(c[0] for c in await b.take_over()) == [j.id for j in jobs]
        kept, ended = jobs
        with pytest.raises(LeaseLost):
            await first.set_task_id(kept.id, "task-kept", lease=old[kept.id])
        assert await first.record_task(kept.id, "task-kept")
        assert not await first.record_task(kept.id, "task-again")
        new = b.lease(kept.id)
        assert new is not None
        rows = await fetch(
            pg_url,
            "SELECT task_id, state, lease_owner, lease_epoch FROM jobs WHERE id = $1",
            kept.id,
        )
        assert rows == [("task-kept", "submitted", new.owner, new.epoch)]
        # The new owner follows it with its lease; the other job it ended first stays ended.
        await second.update_job(kept.id, state=JobState.RUNNING, lease=new)
        await second.finish_job(
            ended.id, JobState.FAILED, error_code="CreateOutcomeUnknown", lease=b.lease(ended.id)
        )
        assert not await first.record_task(ended.id, "task-ended")
        stored = await second.get_job(ended.id)
        assert stored is not None and (stored.task_id, stored.state) == (None, JobState.FAILED)
    finally:
        await close_all([first, second])


async def test_only_the_live_lease_writes_an_unfinished_job(pg_url: str) -> None:
    """Promise: a job leased to one process is written by that lease alone. The process that lost
    it (a stale epoch) and a write carrying no lease are refused (`LeaseLost`) and charge nothing;
    the owner's finish goes through, and a finished job's record needs no lease."""
    first, second = await many_stores(pg_url, 2)
    try:
        a, b = first.job_queue(max_slots=5, ttl=60.0), second.job_queue(max_slots=5, ttl=60.0)
        hold = await first.reserve(G, U, 2)
        job = await first.create_job(
            scope=G, channel_id=7, user_id=U, source="slash", prompt="p",
            reservation_id=hold.id, state=JobState.QUEUED, extra={"upload_limit": 8},
        )  # fmt: skip
        assert await a.pop() == (job.id, a.lease(job.id))
        old = a.lease(job.id)
        assert old is not None
        unleased = (
            lambda s: s.update_job(job.id, extra={"result_channel_id": 1}),
            lambda s: s.set_task_id(job.id, "task-unleased"),
            lambda s: s.finish_job(job.id, JobState.FAILED),
        )
        for write in unleased:  # from another process, while `a` holds the job
            with pytest.raises(LeaseLost):
                await write(second)
        await first.update_job(job.id, state=JobState.SUBMITTED, lease=old)
        # `a` stalls past its lease; `b` takes the job over (a new epoch).
        await fetch(pg_url, "UPDATE jobs SET lease_expires_at = clock_timestamp() RETURNING id")
        assert [c[0] for c in await b.take_over()] == [job.id]
        new = b.lease(job.id)
        assert new is not None and new.epoch == old.epoch + 1
        with pytest.raises(LeaseLost):
            await first.update_job(job.id, state=JobState.RUNNING, lease=old)
        with pytest.raises(LeaseLost):
            await first.finish_job(job.id, JobState.DONE, generated=2, lease=old)
        for write in unleased:  # the stale process again, its lease forgotten
            with pytest.raises(LeaseLost):
                await write(first)
        stored = await second.get_job(job.id)
        assert stored is not None and stored.task_id is None and stored.extra == {"upload_limit": 8}
        assert (await second.quota_status(G, U)).held == 2  # nothing settled or released
        assert await second.finish_job(
            job.id, JobState.DONE, generated=2, extra={"result_channel_id": 70}, lease=new
        )
        status = await second.quota_status(G, U)
        assert (status.used, status.held) == (2, 0)
        # Finished: its lease is gone, and a later record (a claimed result) is written without one.
        await first.update_job(job.id, extra={"upload_limit": 8, "result_channel_id": 71})
        stored = await second.get_job(job.id)
        assert stored is not None and stored.state == JobState.DONE
        assert stored.extra == {"upload_limit": 8, "result_channel_id": 71}
    finally:
        await close_all([first, second])
