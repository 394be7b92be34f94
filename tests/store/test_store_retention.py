"""Retention on both engines: what is older than WANBOT_RETENTION_DAYS goes, in batches, while the
usage reports over those days keep their totals; unfinished jobs and today's ledger stay; 0 days
keeps everything; a job ends without its interaction token; one process purges a day."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from bot.jobs.retention import DailyPurge
from bot.store import Job, JobState, Store
from tests.support.store import START, Clock, Database, eventually, open_url

G, H = 111, 222
U, V = 501, 502
TABLES = ("jobs", "reservations", "job_results", "member_days", "audit")


async def job(store: Store, scope: int, user: int, images: int, **fields: Any) -> Job:
    reservation = await store.reserve(scope, user, images)
    values: dict[str, Any] = {
        "scope": scope,
        "channel_id": 20,
        "user_id": user,
        "source": "slash",
        "prompt": "a red boat",
        "options": {"count": images},
        "state": JobState.QUEUED,
        "reservation_id": reservation.id,
        **fields,
    }
    return await store.create_job(**values)


async def done(store: Store, made: Job, delivered: int, billed: int, messages: list[int]) -> None:
    await store.finish_job(
        made.id, JobState.DONE, generated=delivered, billed=billed, result_message_ids=messages
    )


async def counts(database: Database) -> dict[str, int]:
    return {t: (await database.rows(f"SELECT count(*) FROM {t}"))[0][0] for t in TABLES}


async def old_history(store: Store, clock: Clock) -> dict[str, int]:
    """Two days of work long ago, in two servers, of every kind of ending; the ids kept."""
    await store.set_user_limit(G, 9, U, 8)  # audited
    edit = await job(store, G, U, 2, options={"count": 2, "kind": "edit"})
    await done(store, edit, 2, 2, [7001, 7002])
    imagine = await job(store, G, V, 3, options={"count": 3, "kind": "imagine"})
    await done(store, imagine, 3, 3, [7003])
    # Billed, reached no one: the member pays nothing, the owner's bill counts it.
    lost = await job(store, H, U, 1)
    await store.finish_job(lost.id, JobState.FAILED, generated=0, billed=1)
    cancelled = await job(store, H, V, 1)
    await store.finish_job(cancelled.id, JobState.CANCELLED)
    # Never finished (its hold stays), and a job that never held a reservation.
    stuck = await job(store, G, V, 1)
    unreserved = await store.create_job(
        scope=G, channel_id=20, user_id=U, source="slash", prompt="p", state=JobState.QUEUED
    )
    await store.finish_job(unreserved.id, JobState.FAILED)
    clock.advance(days=1)
    parent = await job(store, G, U, 1)
    await done(store, parent, 1, 1, [7004])
    for _ in range(3):
        more = await job(store, H, V, 1, options={"count": 1, "kind": "imagine"})
        await done(store, more, 1, 1, [])
    return {"stuck": stuck.id, "parent": parent.id}


async def test_old_rows_go_in_batches_and_the_reports_keep_their_totals(
    database: Database, clock: Clock
) -> None:
    store = await open_url(database.url, clock, default_daily_limit=50)
    try:
        kept = await old_history(store, clock)
        # 100 days on, a job made from the old parent's result, finished within the horizon.
        clock.advance(days=100)
        child = await job(store, G, U, 1, parent_job_id=kept["parent"], parent_index=0)
        await done(store, child, 1, 1, [7005])
        # A month past the horizon; a job today.
        clock.advance(days=30)
        await store.set_user_limit(G, 9, U, 6)
        today = await job(store, G, U, 2)
        await done(store, today, 2, 2, [7006])
        before = [await store.usage_report(s, days=140) for s in (None, G, H)]
        busiest = await store.busiest_scopes(days=140)
        status = await store.quota_status(G, U)
        assert sum(d.billed for d in before[0].days) == 13

        purged = await store.purge(90, batch=2)

        assert purged is not None
        # Gone: the old edit, imagine, lost, cancelled, and the three of the next day, with their
        # reservations; the job without one; the old member days but the one with a hold; the
        # old audit row.
        assert (purged.reservations, purged.jobs, purged.member_days, purged.audit) == (7, 8, 5, 1)
        # 2 rows a transaction, until one finds nothing: 4 + 1 for the reservations, 1 + 1 for
        # the lone job, 3 + 1 for the member days, 1 + 1 for the audit.
        assert purged.batches == 13
        after = [await store.usage_report(s, days=140) for s in (None, G, H)]
        assert [r.days for r in after] == [r.days for r in before]
        first = next(d for d in after[0].days if d.day == START.date())
        assert (first.charged, first.billed, first.billed_by_kind) == (5, 6, {"imagine": 3})
        assert await store.busiest_scopes(days=140) == busiest
        assert await store.quota_status(G, U) == status
        left = await database.rows("SELECT id FROM jobs ORDER BY id")
        assert [r[0] for r in left] == [kept["stuck"], kept["parent"], child.id, today.id]
        assert await counts(database) == {
            "jobs": 4,
            "reservations": 4,
            "job_results": 3,  # the parent's, the child's, today's
            "member_days": 3,  # the stuck job's held day, the child's day, today
            "audit": 1,
        }
        # The server and bot-wide day totals (the caps' ledger) are all still there.
        assert (await database.rows("SELECT count(*) FROM scope_days"))[0][0] == 6
        assert (await database.rows("SELECT count(*) FROM bot_days"))[0][0] == 4
        # Done for today, by whoever did it.
        assert await store.purge(90) is None
        clock.advance(days=1)
        again = await store.purge(90)
        assert again is not None and again.jobs == again.reservations == 0
    finally:
        await store.close()


async def test_a_parent_goes_once_its_children_have(database: Database, clock: Clock) -> None:
    store = await open_url(database.url, clock)
    try:
        parent = await job(store, G, U, 1)
        await done(store, parent, 1, 1, [1])
        child = await job(store, G, U, 1, parent_job_id=parent.id, parent_index=0)
        await done(store, child, 1, 1, [2])
        clock.advance(days=91)
        purged = await store.purge(90)
        assert purged is not None and purged.jobs == 2
        assert await counts(database) == dict.fromkeys(TABLES, 0)
    finally:
        await store.close()


async def test_zero_days_keeps_everything(database: Database, clock: Clock) -> None:
    store = await open_url(database.url, clock, default_daily_limit=50)
    try:
        await old_history(store, clock)
        clock.advance(days=3650)
        before = await counts(database)
        assert await store.purge(0) is None
        assert await counts(database) == before
    finally:
        await store.close()


async def test_one_process_purges_a_day(database: Database, clock: Clock) -> None:
    first = await open_url(database.url, clock, default_daily_limit=50)
    second = await open_url(database.url, clock, default_daily_limit=50)
    try:
        await old_history(first, clock)
        clock.advance(days=200)
        outcomes = await asyncio.gather(first.purge(30, batch=1), second.purge(30, batch=1))
        assert sorted(o is None for o in outcomes) == [False, True]
        assert (await counts(database))["reservations"] == 1  # the stuck job's
    finally:
        await first.close()
        await second.close()


async def test_a_job_ends_without_its_interaction_token(store: Store, database: Database) -> None:
    expires = START + timedelta(minutes=15)
    made = await job(
        store, G, U, 1, application_id=5, interaction_token="secret", token_expires_at=expires
    )
    assert (await store.get_job(made.id)).interaction_token == "secret"  # type: ignore[union-attr]
    await store.finish_job(made.id, JobState.CANCELLED)
    ended = await store.get_job(made.id)
    assert ended is not None and ended.interaction_token is None
    assert ended.token_expires_at == expires
    rows = await database.rows("SELECT count(*) FROM jobs WHERE interaction_token IS NOT NULL")
    assert rows[0][0] == 0


@contextlib.asynccontextmanager
async def locked(database: Database) -> AsyncIterator[None]:
    """Another program holds the database (sqlite: the whole file; PostgreSQL: the `meta` table)."""
    if database.path is not None:
        other = sqlite3.connect(database.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    con = await asyncpg.connect(database.url)
    try:
        async with con.transaction():
            await con.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await con.close()


async def test_the_daily_purge_outlives_a_database_it_cannot_write(
    database: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The purge loop meets a database another program holds: it says so once however often it
    fails, keeps trying, and purges once the database is free again."""
    caplog.set_level(logging.INFO, logger="bot.jobs.retention")
    store = await open_url(database.url, clock, default_daily_limit=50, busy_timeout=0.1)
    purger = DailyPurge(store, 90, first_after=0, every=0.01)
    try:
        await old_history(store, clock)
        clock.advance(days=200)
        async with locked(database):
            purger.start()
            await eventually(lambda: purger.failures >= 3, within=30)
        await eventually(lambda: purger.failures == 0, within=30)

        async def purged() -> bool:
            return (await counts(database))["jobs"] == 1  # the unfinished one

        await eventually(purged, within=30)
        assert purger.task is not None and not purger.task.done()
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 1 and "could not purge" in said[0], said
    finally:
        await purger.stop()
        await store.close()
