"""Shared pieces for the store tests: an injectable clock, opening a store, reading raw rows."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import Store, open_store

START = datetime(2025, 11, 24, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
MIDNIGHT = datetime(2025, 11, 25, tzinfo=UTC)  # when START's allowance resets


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
    return await open_store(
        url(path), clock=clock, default_daily_limit=default_daily_limit, busy_timeout=busy_timeout
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


# Fixtures shared by the store test modules (each imports them by name).
@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="db")
def db_fixture(tmp_path: Path) -> Path:
    return tmp_path / "wanbot.db"


@pytest.fixture(name="store")
async def store_fixture(db: Path, clock: Clock) -> AsyncIterator[Store]:
    s = await open_at(db, clock)
    yield s
    await s.close()
