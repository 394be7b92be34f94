"""A database made by wanbot before its schema became one list of numbered files (versions 1-3,
each engine with its own SQL, kept verbatim in tests/support/old_schema.py) upgrades in place when
today's store opens it: every row is still there and usable, and the schema is the same as a new
database's, on both engines."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.store import JobState, Limits, open_store
from bot.store.schema import latest
from tests.support.old_schema import POSTGRES, SQLITE, VERSION_TABLE
from tests.support.store import START, Clock, PgServer, url

G, U, V, ADMIN, ROLE = 111, 501, 502, 9, 77
DAY: date = START.date()
EARLIER = START - timedelta(hours=1)

# What a running bot had written by version 3: settings, a settled and a held reservation with
# their days, an audit entry, a finished job with its result and one still queued, a refusal,
# the owner's switches and a shared-budget row.
ROWS: list[tuple[str, tuple[Any, ...]]] = [
    ("INSERT INTO meta (key, value) VALUES (?, ?)", ("nonce_salt", "abcd")),
    ("INSERT INTO meta (key, value) VALUES (?, ?)", ("global_daily_limit", "50")),
    ("INSERT INTO scope_settings (scope, default_limit, daily_cap) VALUES (?, ?, ?)", (G, 4, 30)),
    (
        "INSERT INTO members (scope, user_id, daily_limit, extra, blocked) VALUES (?, ?, ?, ?, ?)",
        (G, U, 6, 3, False),
    ),
    (
        "INSERT INTO members (scope, user_id, daily_limit, extra, blocked) VALUES (?, ?, ?, ?, ?)",
        (G, V, None, 0, True),
    ),
    ("INSERT INTO role_limits (scope, role_id, daily_limit) VALUES (?, ?, ?)", (G, ROLE, 8)),
    (
        "INSERT INTO reservations (scope, user_id, day, images, from_extra, status, charged,"
        " created_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (G, U, DAY, 3, 0, "settled", 2, EARLIER, EARLIER),
    ),
    (
        "INSERT INTO reservations (scope, user_id, day, images, from_extra, status, charged,"
        " created_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (G, U, DAY, 2, 0, "held", 0, EARLIER, None),
    ),
    (
        "INSERT INTO member_days (scope, user_id, day, used, held) VALUES (?, ?, ?, ?, ?)",
        (G, U, DAY, 2, 2),
    ),
    ("INSERT INTO scope_days (scope, day, used, held) VALUES (?, ?, ?, ?)", (G, DAY, 2, 2)),
    ("INSERT INTO bot_days (day, used, held) VALUES (?, ?, ?)", (DAY, 2, 2)),
    (
        "INSERT INTO refusal_days (scope, day, reason, requests, images) VALUES (?, ?, ?, ?, ?)",
        (G, DAY, "daily_limit", 1, 4),
    ),
    (
        "INSERT INTO audit (scope, actor, action, target, old, new, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (G, ADMIN, "set_user_limit", U, "5", "6", EARLIER),
    ),
    (
        "INSERT INTO jobs (scope, channel_id, user_id, source, prompt, options, inputs, state,"
        " reservation_id, result_message_ids, generated, billed, created_at, updated_at,"
        " finished_at, extra) VALUES (?, 1, ?, 'slash', 'a cat', ?, ?, 'done', 1, ?, 2, 3, ?, ?, ?, ?)",
        (
            G,
            U,
            '{"count": 3}',
            '[{"url": "https://cdn/x.png"}]',
            "[900]",
            EARLIER,
            EARLIER,
            EARLIER,
            '{"k": 1}',
        ),
    ),
    (
        "INSERT INTO jobs (scope, channel_id, user_id, source, prompt, state, reservation_id,"
        " created_at, updated_at, lease_epoch) VALUES (?, 1, ?, 'reply', 'a dog', 'queued', 2, ?, ?, 4)",
        (G, U, EARLIER, EARLIER),
    ),
    ("INSERT INTO job_results (message_id, job_id) VALUES (?, ?)", (900, 1)),
    ("INSERT INTO wan_buckets (name, tokens, stamp) VALUES (?, ?, ?)", ("query", 0.0, 123.5)),
]

Schema = dict[str, Any]


async def old_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in (s for version in SQLITE for s in version):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(SQLITE)}")
        for sql, params in ROWS:
            conn.execute(sql, [_as_text(p) for p in params])
    finally:
        conn.close()


def _as_text(value: Any) -> Any:
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return int(value) if isinstance(value, bool) else value


async def old_postgres(database_url: str) -> None:
    con = await asyncpg.connect(database_url)
    try:
        await con.execute(VERSION_TABLE)
        for version, statements in enumerate(POSTGRES, start=1):
            for statement in statements:
                await con.execute(statement)
            await con.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        for sql, params in ROWS:
            numbered = sql
            for n in range(1, len(params) + 1):
                numbered = numbered.replace("?", f"${n}", 1)
            await con.execute(numbered, *params)
    finally:
        await con.close()


def sqlite_schema(path: Path) -> Schema:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            "columns": {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables},
            "indexes": sorted(
                (r[0], r[1], tuple(c[2] for c in conn.execute(f"PRAGMA index_info({r[0]})")))
                for r in conn.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
                    " AND name NOT LIKE 'sqlite_autoindex%'"
                )
            ),
            "version": conn.execute("PRAGMA user_version").fetchone()[0],
        }
    finally:
        conn.close()


async def postgres_schema(database_url: str) -> Schema:
    con = await asyncpg.connect(database_url)
    try:
        columns = await con.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name <> 'schema_migrations' ORDER BY table_name, column_name"
        )
        indexes = await con.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " ORDER BY indexname"
        )
        versions = await con.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return {
            "columns": [tuple(r) for r in columns],
            "indexes": [tuple(r) for r in indexes],
            "version": [r[0] for r in versions],
        }
    finally:
        await con.close()


@pytest.fixture(name="old_and_new")
async def old_and_new_fixture(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """(URL of a version-3 database with rows, URL of an empty one, how to read a schema)."""
    if engine == "sqlite":
        old, new = tmp_path / "old.db", tmp_path / "new.db"
        await old_sqlite(old)

        async def read(which: str) -> Schema:
            return sqlite_schema(old if which == "old" else new)

        yield url(old), url(new), read
        return
    server: PgServer = request.getfixturevalue("pg_server")
    old_url, new_url = await server.create(migrated=False), await server.create(migrated=False)
    try:
        await old_postgres(old_url)

        async def read_pg(which: str) -> Schema:
            return await postgres_schema(old_url if which == "old" else new_url)

        yield old_url, new_url, read_pg
    finally:
        await server.drop(old_url)
        await server.drop(new_url)


async def test_a_version_3_database_upgrades_in_place_with_nothing_lost(
    old_and_new: tuple[str, str, Callable[[str], Awaitable[Schema]]],
) -> None:
    old_url, new_url, schema = old_and_new
    clock = Clock()
    store = await open_store(old_url, clock=clock, limits=Limits(global_daily=100))
    try:
        status = await store.quota_status(G, U, roles=[ROLE])
        assert (status.limit, status.limit_source, status.used, status.held, status.extra) == (
            6,
            "user",
            2,
            2,
            3,
        )
        assert status.remaining == 6 - 2 - 2 + 3
        assert (await store.quota_status(G, V)).blocked
        assert await store.role_limits(G) == {ROLE: 8}
        totals = await store.server_totals(G)
        assert (totals.used, totals.held, totals.cap, totals.default_limit) == (2, 2, 30, 4)
        state = await store.bot_state()
        assert (state.paused, state.global_cap, state.global_cap_overridden) == (False, 50, True)
        (entry,) = await store.audit_log(G)
        assert (entry.action, entry.target, entry.old, entry.new, entry.at) == (
            "set_user_limit",
            U,
            5,
            6,
            EARLIER,
        )
        done = await store.get_job(1)
        assert done is not None and done.state == JobState.DONE
        assert (done.options, done.inputs, done.result_message_ids, done.extra) == (
            {"count": 3},
            [{"url": "https://cdn/x.png"}],
            [900],
            {"k": 1},
        )
        assert (done.generated, done.billed, done.finished_at) == (2, 3, EARLIER)
        assert (await store.job_for_message(900)).id == 1  # type: ignore[union-attr]
        report = await store.usage_report(G, days=1)
        assert (report.today.charged, report.today.billed, report.today.refused) == (
            2,
            3,
            {"daily_limit": 4},
        )
        assert await store.get_meta("nonce_salt") == "abcd"
        # And it goes on working: the queued job settles its hold, new ids follow the old ones.
        assert await store.finish_job(2, JobState.DONE, generated=1)
        reservation = await store.reserve(G, U, 1)
        assert reservation.id == 3
        status = await store.quota_status(G, U)
        assert (status.used, status.held) == (3, 1)
        job = await store.create_job(scope=G, channel_id=1, user_id=U, source="slash", prompt="x")
        assert job.id == 3
    finally:
        await store.close()
    fresh = await open_store(new_url)
    await fresh.close()
    upgraded, new = await schema("old"), await schema("new")
    assert upgraded == new
    assert upgraded["version"] in (latest(), list(range(1, latest() + 1)))


def test_the_old_fixtures_are_what_the_old_code_wrote() -> None:
    """The fixtures are the three versions each engine had, with the same tables."""
    assert len(SQLITE) == len(POSTGRES) == 3
    tables = [
        sorted(s.split()[2] for v in m for s in v if s.startswith("CREATE TABLE"))
        for m in (SQLITE, POSTGRES)
    ]
    assert tables[0] == tables[1] and "wan_buckets" in tables[0]
    assert json.dumps(ROWS, default=str)  # plain values only
