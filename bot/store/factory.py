"""`open_store`: pick the backend named by DATABASE_URL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.store.base import Store
from bot.store.models import Limits
from bot.store.urls import is_postgres, sqlite_path

Clock = Callable[[], datetime]


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    default_daily_limit: int = 10,
    busy_timeout: float = 5.0,
    exclusive: bool = False,
    limits: Limits | None = None,
    read_only: bool = False,
) -> Store:
    """Open the database named by `url`, applying migrations. Raises `StoreError` (one line).

    `sqlite:///PATH` opens a sqlite file; `postgresql://` (or `postgres://`) a PostgreSQL database.
    `clock` returns the current aware datetime (tests inject one); `default_daily_limit` is
    WAN_DEFAULT_DAILY_LIMIT; `busy_timeout` bounds how long any operation waits for a lock;
    `limits` the owner's bounds (bot-wide cap, server ceiling, DM limit). `read_only` opens an
    existing database for reports without ever taking a write lock (safe while the bot runs).
    `exclusive=True` is for the bot process: on sqlite, it holds a lock on `PATH.lock` until
    `close` and refuses to open while another process holds it (a sqlite file is for one bot
    process). PostgreSQL is made for several processes, so there it changes nothing.
    """
    url = url.strip()
    if is_postgres(url):
        # Imported here: a sqlite-only install never loads the driver.
        from bot.store.postgres import PostgresStore

        # `read_only` there: read-only transactions, no migration (see `PostgresStore`).
        return await PostgresStore.open(
            url,
            clock=clock,
            default_daily_limit=default_daily_limit,
            busy_timeout=busy_timeout,
            limits=limits,
            read_only=read_only,
        )
    from bot.store.sqlite import SqliteStore

    return await SqliteStore.open(
        sqlite_path(url),
        clock=clock,
        default_daily_limit=default_daily_limit,
        busy_timeout=busy_timeout,
        exclusive=exclusive,
        limits=limits,
        read_only=read_only,
    )
