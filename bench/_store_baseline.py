"""Reference for bench/store.py only (the bot never uses it): reserve and settle as a first
implementation would write them.

Same schema (the bot's migrations), same quota rules (`bot.store.quota`), same durability (WAL,
synchronous=FULL), one aiosqlite connection. Each operation is its own `BEGIN IMMEDIATE ... COMMIT`
made of individual `await db.execute(...)` calls (one thread hop per statement), with no group
commit. An asyncio lock keeps the transactions of concurrent callers from interleaving on the one
connection.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiosqlite

from bot.store.models import Reservation
from bot.store.quota import Snapshot, charge_split
from bot.store.schema import migrations

_SNAPSHOT = """
SELECT m.daily_limit, COALESCE(m.extra, 0), COALESCE(m.blocked, 0),
       s.default_limit, s.daily_cap,
       COALESCE(d.used, 0), COALESCE(d.held, 0), COALESCE(sd.used, 0), COALESCE(sd.held, 0)
FROM (SELECT 1) AS one
LEFT JOIN members AS m ON m.scope = :scope AND m.user_id = :user
LEFT JOIN scope_settings AS s ON s.scope = :scope
LEFT JOIN member_days AS d ON d.scope = :scope AND d.user_id = :user AND d.day = :day
LEFT JOIN scope_days AS sd ON sd.scope = :scope AND sd.day = :day
"""


class QuotaExceeded(Exception):
    """The reservation would break a limit (the benchmark sets limits nobody reaches)."""


class BaselineStore:
    """reserve/settle/totals on one sqlite file, one plain transaction per operation."""

    def __init__(self, db: aiosqlite.Connection, default_daily_limit: int) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.default_daily_limit = default_daily_limit

    @classmethod
    async def open(cls, path: str, default_daily_limit: int) -> BaselineStore:
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        for migration in migrations("sqlite"):
            for statement in migration:
                await db.execute(statement)
        return cls(db, default_daily_limit)

    async def close(self) -> None:
        await self._db.close()

    async def reserve(self, scope: int, user: int, images: int) -> Reservation:
        db = self._db
        day = datetime.now(UTC).date()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await db.execute(
                    _SNAPSHOT, {"scope": scope, "user": user, "day": day.isoformat()}
                )
                row = await cursor.fetchone()
                assert row is not None
                snap = Snapshot(
                    user_limit=row[0],
                    server_default=row[3],
                    global_default=self.default_daily_limit,
                    blocked=bool(row[2]),
                    extra=row[1],
                    used=row[5],
                    held=row[6],
                    cap=row[4],
                    server_used=row[7],
                    server_held=row[8],
                )
                reason = snap.refusal(images)
                if reason is not None:
                    raise QuotaExceeded(reason)
                from_daily, from_extra = snap.split(images)
                cursor = await db.execute(
                    "INSERT INTO reservations (scope, user_id, day, images, from_extra,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        scope,
                        user,
                        day.isoformat(),
                        images,
                        from_extra,
                        datetime.now(UTC).isoformat(),
                    ),
                )
                reservation_id = cursor.lastrowid
                assert reservation_id is not None
                await db.execute(
                    "INSERT INTO member_days (scope, user_id, day, held, extra_held)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, user_id, day) DO UPDATE"
                    " SET held = held + excluded.held, extra_held = extra_held + excluded.extra_held",
                    (scope, user, day.isoformat(), from_daily, from_extra),
                )
                await db.execute(
                    "INSERT INTO scope_days (scope, day, held) VALUES (?, ?, ?)"
                    " ON CONFLICT (scope, day) DO UPDATE SET held = held + excluded.held",
                    (scope, day.isoformat(), images),
                )
                if from_extra:
                    await db.execute(
                        "UPDATE members SET extra = extra - ? WHERE scope = ? AND user_id = ?",
                        (from_extra, scope, user),
                    )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return Reservation(reservation_id, scope, user, images, day, from_extra)

    async def settle(self, reservation_id: int, generated: int) -> int:
        db = self._db
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await db.execute(
                    "SELECT scope, user_id, day, images, from_extra, status FROM reservations"
                    " WHERE id = ?",
                    (reservation_id,),
                )
                row = await cursor.fetchone()
                if row is None or row[5] != "held":
                    await db.execute("COMMIT")
                    return 0
                scope, user, day, images, from_extra, _ = row
                daily, extra = charge_split(images, from_extra, generated)
                await db.execute(
                    "UPDATE reservations SET status = 'settled', charged = ?, closed_at = ?"
                    " WHERE id = ?",
                    (daily + extra, datetime.now(UTC).isoformat(), reservation_id),
                )
                await db.execute(
                    "UPDATE member_days SET held = held - ?, used = used + ?,"
                    " extra_held = extra_held - ?, extra_used = extra_used + ?"
                    " WHERE scope = ? AND user_id = ? AND day = ?",
                    (images - from_extra, daily, from_extra, extra, scope, user, day),
                )
                await db.execute(
                    "UPDATE scope_days SET held = held - ?, used = used + ?"
                    " WHERE scope = ? AND day = ?",
                    (images, daily + extra, scope, day),
                )
                if from_extra > extra:
                    await db.execute(
                        "UPDATE members SET extra = extra + ? WHERE scope = ? AND user_id = ?",
                        (from_extra - extra, scope, user),
                    )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return daily + extra

    async def totals(self, scope: int) -> tuple[int, int]:
        """(images charged, images still held) today in `scope`."""
        cursor = await self._db.execute(
            "SELECT COALESCE(SUM(used), 0), COALESCE(SUM(held), 0) FROM scope_days"
            " WHERE scope = ? AND day = ?",
            (scope, datetime.now(UTC).date().isoformat()),
        )
        row = await cursor.fetchone()
        assert row is not None
        return row[0], row[1]
