"""`open_store`: pick the backend named by DATABASE_URL."""

from __future__ import annotations

from bot.store.base import Store
from bot.store.errors import StoreError
from bot.store.models import Limits
from bot.store.sqlite import Clock, SqliteStore

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str:
    """The file path in `sqlite:///PATH` (relative: `sqlite:///wanbot.db`; absolute: `sqlite:////x`)."""
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        # Never echo the URL: a PostgreSQL one would carry a password.
        scheme = url.split(":", 1)[0] if ":" in url else "no"
        raise StoreError(
            f"DATABASE_URL must look like sqlite:///PATH (got a {scheme or 'blank'} URL); "
            "only sqlite is supported so far."
        )
    return url[len(SQLITE_PREFIX) :]


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    default_daily_limit: int = 10,
    busy_timeout: float = 5.0,
    limits: Limits | None = None,
    read_only: bool = False,
) -> Store:
    """Open the database named by `url`, applying migrations. Raises `StoreError` (one line).

    `clock` returns the current aware datetime (tests inject one); `default_daily_limit` is
    WAN_DEFAULT_DAILY_LIMIT; `busy_timeout` bounds how long any operation waits for a lock;
    `limits` the owner's bounds (bot-wide cap, server ceiling, DM limit). `read_only` opens an
    existing database for reports without ever taking a write lock (safe while the bot runs).
    """
    return await SqliteStore.open(
        sqlite_path(url.strip()),
        clock=clock,
        default_daily_limit=default_daily_limit,
        busy_timeout=busy_timeout,
        limits=limits,
        read_only=read_only,
    )
