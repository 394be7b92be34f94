"""`migrate_db`: copy a sqlite database into a new, empty PostgreSQL one (`python -m bot migrate-db`),
row for row, ids included, in one PostgreSQL transaction, each value converted by its column's type.
The source is opened as the bot opens it (refused while a bot uses it); the target is migrated, then
locked and checked empty inside the copy's transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bot.store.errors import StoreError
from bot.store.postgres import describe, init_connection
from bot.store.store import open_store
from bot.store.urls import Target, is_postgres, sqlite_path

log = logging.getLogger(__name__)

# Parents before children (foreign keys are checked row by row as they arrive).
TABLES = (
    "meta", "scope_settings", "members", "member_days", "scope_days", "reservations", "audit",
    "jobs", "job_results", "role_limits", "bot_days", "refusal_days", "usage_days",
)  # fmt: skip
BATCH = 5000  # rows read from sqlite and sent per COPY: bounds memory on a large jobs table

_CONVERT: dict[str, Callable[[Any], Any]] = {
    "date": date.fromisoformat,
    "timestamp with time zone": datetime.fromisoformat,
    "jsonb": json.loads,
    "boolean": bool,
}


async def migrate_db(from_url: str, to_url: str) -> dict[str, int]:
    """Copy the sqlite database at `from_url` into the empty PostgreSQL one at `to_url`; rows per
    table. `StoreError` (one line, no password) when either side can't be used, a bot still has
    the sqlite file open, or the target already holds data."""
    from_url, to_url = from_url.strip(), to_url.strip()
    if not is_postgres(to_url):
        raise StoreError("migrate-db copies into PostgreSQL: --to must be a postgresql:// URL.")
    path = sqlite_path(from_url)
    if not await asyncio.to_thread(Path(path).is_file):
        raise StoreError(f"There is no sqlite database at {path} to copy.")
    target = Target.parse(to_url)
    # Opening migrates both sides to this wanbot's schema, so their columns match.
    source = await open_store(from_url, exclusive=True)
    try:
        await (await open_store(to_url)).close()
        try:
            con = await asyncpg.connect(to_url)
        except (asyncpg.PostgresError, OSError, TimeoutError) as err:
            raise describe(err, target, 5.0) from None
        try:
            await init_connection(con)
            counts = await _copy(path, con, target)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            raise describe(err, target, 5.0) from err
        finally:
            await con.close()
    finally:
        await source.close()
    log.info("copied %s into the %s", path, target)
    return counts


async def _copy(path: str, con: asyncpg.Connection, target: Target) -> dict[str, int]:
    reader = sqlite3.connect(path, check_same_thread=False)
    try:
        reader.execute("BEGIN")  # one snapshot of the whole file
        async with con.transaction():
            await con.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
            for table in TABLES:
                if await con.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    raise StoreError(
                        f"The {target} already has data (table {table}): migrate-db copies "
                        "into an empty database only."
                    )
            counts = {table: await _copy_table(reader, con, table) for table in TABLES}
            for table in ("reservations", "audit", "jobs"):
                # Ids were copied as they were: new rows must continue after them.
                await con.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table})) WHERE EXISTS (SELECT 1 FROM {table})"
                )
    finally:
        reader.close()
    return counts


async def _copy_table(reader: sqlite3.Connection, con: asyncpg.Connection, table: str) -> int:
    # Jobs by id: a job's parent (an older job) must arrive before it.
    order = " ORDER BY id" if table in ("reservations", "audit", "jobs") else ""
    cursor = reader.execute(f"SELECT * FROM {table}{order}")
    columns = [d[0] for d in cursor.description]
    types = dict(
        await con.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
    )
    # Both sides were migrated by this wanbot: the same columns (else COPY names the missing one).
    converters = [_CONVERT.get(types.get(c, "")) for c in columns]
    copied = 0
    while True:
        batch = await asyncio.to_thread(cursor.fetchmany, BATCH)
        if not batch:
            return copied
        records = [
            tuple(
                value if value is None or convert is None else convert(value)
                for value, convert in zip(row, converters, strict=True)
            )
            for row in batch
        ]
        await con.copy_records_to_table(table, records=records, columns=columns)
        copied += len(records)
