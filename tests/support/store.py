"""Shared pieces for the store tests: an injectable clock, a fresh database of either engine, opening
a store on it, reading raw rows.

Tests that take the `database` (or `store`) fixture run twice, on sqlite and on PostgreSQL. The
PostgreSQL run needs a server: `WANBOT_TEST_PG_DSN=postgresql://USER:PASSWORD@HOST:PORT/DB` names one
whose user may create databases (`tests/support/pgcluster.py` starts a throwaway one, as `.ci/run` does).
Without it those runs are skipped, except under CI (`CI` set), where a missing server fails them.
Each test gets a database of its own, cloned from a migrated template, and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.store import Limits, Store, open_store

START = datetime(2025, 11, 24, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
MIDNIGHT = datetime(2025, 11, 25, tzinfo=UTC)  # when START's allowance resets
PG_DSN = "WANBOT_TEST_PG_DSN"
ENGINES = ("sqlite", "postgres")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def url(path: Path) -> str:
    return f"sqlite:///{path}"


async def open_at(
    path: Path, clock: Clock, *, default_daily_limit: int = 10, busy_timeout: float = 2.0
) -> Store:
    return await open_url(
        url(path), clock, default_daily_limit=default_daily_limit, busy_timeout=busy_timeout
    )


async def open_url(
    database_url: str,
    clock: Clock,
    *,
    default_daily_limit: int = 10,
    busy_timeout: float = 2.0,
    limits: Limits | None = None,
    read_only: bool = False,
) -> Store:
    return await open_store(
        database_url,
        clock=clock,
        default_daily_limit=default_daily_limit,
        busy_timeout=busy_timeout,
        limits=limits,
        read_only=read_only,
    )


def rows(path: Path, sql: str, *params: object) -> list[tuple]:
    """Read the file directly, with a separate plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def eventually(check: Callable[[], object], within: float = 3.0) -> None:
    """Wait until `check()` (sync or async) is truthy, polling briefly; TimeoutError after `within`."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


# ---- PostgreSQL ----


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pg_admin_dsn() -> str:
    """The server's DSN, or skip (fail under CI) when there is none."""
    dsn = os.environ.get(PG_DSN, "").strip()
    if not dsn:
        message = (
            f'no PostgreSQL server: set {PG_DSN} (`eval "$(python tests/support/pgcluster.py start)"` '
            "starts a throwaway one)"
        )
        if in_ci():
            pytest.fail(f"CI must run the PostgreSQL tests, but there is {message}")
        pytest.skip(message)
    return dsn


def with_database(dsn: str, name: str) -> str:
    """`dsn` naming the database `name` instead."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PgServer:
    """Makes and drops the tests' databases on the server named by WANBOT_TEST_PG_DSN."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._names = itertools.count()
        self._prefix = f"wanbot_test_{os.getpid()}"
        self._template: str | None = None

    async def _admin(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.dsn, timeout=10)
        except (OSError, asyncpg.PostgresError) as err:
            pytest.fail(f"{PG_DSN} is set but the server cannot be used: {err}")

    async def create(self, *, migrated: bool = True) -> str:
        """A new database (with wanbot's tables when `migrated`); returns its URL."""
        name = f"{self._prefix}_{next(self._names)}"
        con = await self._admin()
        try:
            if migrated and self._template is None:
                self._template = f"{self._prefix}_template"
                await con.execute(f'DROP DATABASE IF EXISTS "{self._template}"')
                await con.execute(f'CREATE DATABASE "{self._template}"')
                store = await open_store(with_database(self.dsn, self._template))
                await store.close()
            template = self._template if migrated else "template0"
            # FILE_COPY: a copy of the (tiny) template's files, much cheaper than WAL-logging it.
            await con.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        finally:
            await con.close()
        return with_database(self.dsn, name)

    async def drop(self, database_url: str) -> None:
        name = urlsplit(database_url).path.lstrip("/")
        con = await self._admin()
        try:
            await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await con.close()

    async def close(self) -> None:
        if self._template is not None:
            await self.drop(with_database(self.dsn, self._template))


@dataclass
class Database:
    """One test's database: its URL, its engine, and a way to read its rows directly."""

    engine: str
    url: str
    path: Path | None = None  # sqlite only

    async def rows(self, sql: str, *params: object) -> list[tuple]:
        """Run `sql` (`?` placeholders) on a separate connection of its own."""
        if self.path is not None:
            return rows(self.path, sql, *params)
        n = itertools.count(1)
        pg_sql = re.sub(r"\?", lambda _: f"${next(n)}", sql)
        con = await asyncpg.connect(self.url)
        try:
            return [tuple(r) for r in await con.fetch(pg_sql, *params)]
        finally:
            await con.close()


# Fixtures shared by the store test modules (each imports them by name).
@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="db")
def db_fixture(tmp_path: Path) -> Path:
    return tmp_path / "wanbot.db"


@pytest.fixture(name="pg_server", scope="session")
def pg_server_fixture() -> Iterator[PgServer]:
    server = PgServer(pg_admin_dsn())
    yield server
    asyncio.run(server.close())


@pytest.fixture(name="pg_url")
async def pg_url_fixture(pg_server: PgServer) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database of the test's own."""
    database_url = await pg_server.create()
    yield database_url
    await pg_server.drop(database_url)


@pytest.fixture(name="engine", params=ENGINES)
def engine_fixture(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="database")
def database_fixture(engine: str, db: Path, request: pytest.FixtureRequest) -> Database:
    if engine == "sqlite":
        return Database(engine, url(db), db)
    # Asked for only here, so the sqlite runs never need (or skip for want of) a server.
    return Database(engine, request.getfixturevalue("pg_url"))


@pytest.fixture(name="store")
async def store_fixture(database: Database, clock: Clock) -> AsyncIterator[Store]:
    s = await open_url(database.url, clock)
    yield s
    await s.close()
