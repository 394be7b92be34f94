"""Quota, reservation and admin transactions for PostgreSQL, as functions of one connection.

Each runs inside one transaction the caller opened. Any number of processes may run them at once,
so every check and the write it allows happen under row locks, always taken in the same order so
two transactions can never wait on each other:

    reservation row -> scope_days (scope, day) -> member_days (scope, user, day) -> members (scope, user)

`reserve` locks the scope's day first: every reservation in a scope on a day waits there, so the
server cap can't be over-granted, then the member's day and settings, so neither can the member's
allowance or extra images. Admin changes lock only the one row they change (plus the audit insert).
A row that doesn't exist yet is created by the locking statement itself (`INSERT ... ON CONFLICT DO
UPDATE ... RETURNING` locks the row, new or old); a refusal rolls the creation back with the rest.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg

from bot.store.errors import NotFound
from bot.store.models import AuditEntry, QuotaStatus, Reservation, ServerTotals
from bot.store.quota import Snapshot, charge_split, grant_or_refuse, next_reset, status

_SNAPSHOT = """
SELECT m.daily_limit, COALESCE(m.extra, 0), COALESCE(m.blocked, false),
       s.default_limit, s.daily_cap,
       COALESCE(d.used, 0), COALESCE(d.held, 0), COALESCE(d.extra_used, 0),
       COALESCE(d.extra_held, 0), COALESCE(sd.used, 0), COALESCE(sd.held, 0)
FROM (SELECT 1) AS one
LEFT JOIN members AS m ON m.scope = $1 AND m.user_id = $2
LEFT JOIN scope_settings AS s ON s.scope = $1
LEFT JOIN member_days AS d ON d.scope = $1 AND d.user_id = $2 AND d.day = $3
LEFT JOIN scope_days AS sd ON sd.scope = $1 AND sd.day = $3
"""

# The no-op updates below exist for their row lock (and their RETURNING).
_LOCK_SCOPE_DAY = """
INSERT INTO scope_days (scope, day) VALUES ($1, $2)
ON CONFLICT (scope, day) DO UPDATE SET held = scope_days.held
RETURNING used, held
"""
_LOCK_MEMBER_DAY = """
INSERT INTO member_days (scope, user_id, day) VALUES ($1, $2, $3)
ON CONFLICT (scope, user_id, day) DO UPDATE SET held = member_days.held
RETURNING used, held, extra_used, extra_held
"""
_LOCK_MEMBER = """
INSERT INTO members (scope, user_id) VALUES ($1, $2)
ON CONFLICT (scope, user_id) DO UPDATE SET extra = members.extra
RETURNING daily_limit, extra, blocked
"""


async def reserve(
    con: asyncpg.Connection,
    scope: int,
    user: int,
    images: int,
    now: datetime,
    default_limit: int,
) -> Reservation:
    day = now.date()
    server = await con.fetchrow(_LOCK_SCOPE_DAY, scope, day)
    mine = await con.fetchrow(_LOCK_MEMBER_DAY, scope, user, day)
    # Only an existing member row matters (no row: no own limit, no extra, not blocked); a plain
    # FOR UPDATE locks it without creating one for every member who ever asks.
    member = await con.fetchrow(
        "SELECT daily_limit, extra, blocked FROM members WHERE scope = $1 AND user_id = $2"
        " FOR UPDATE",
        scope,
        user,
    )
    settings = await con.fetchrow(
        "SELECT default_limit, daily_cap FROM scope_settings WHERE scope = $1", scope
    )
    snap = Snapshot(
        user_limit=member["daily_limit"] if member else None,
        server_default=settings["default_limit"] if settings else None,
        global_default=default_limit,
        blocked=bool(member and member["blocked"]),
        extra=member["extra"] if member else 0,
        used=mine["used"],
        held=mine["held"],
        cap=settings["daily_cap"] if settings else None,
        server_used=server["used"],
        server_held=server["held"],
    )
    from_daily, from_extra = grant_or_refuse(
        snap, images, scope=scope, day=day, extra_held=mine["extra_held"]
    )
    reservation_id: int = await con.fetchval(
        "INSERT INTO reservations (scope, user_id, day, images, from_extra, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        scope,
        user,
        day,
        images,
        from_extra,
        now,
    )
    await con.execute(
        "UPDATE member_days SET held = held + $4, extra_held = extra_held + $5"
        " WHERE scope = $1 AND user_id = $2 AND day = $3",
        scope,
        user,
        day,
        from_daily,
        from_extra,
    )
    await con.execute(
        "UPDATE scope_days SET held = held + $3 WHERE scope = $1 AND day = $2", scope, day, images
    )
    if from_extra:
        # Extra images leave the balance when held, so two jobs cannot spend the same ones.
        await con.execute(
            "UPDATE members SET extra = extra - $3 WHERE scope = $1 AND user_id = $2",
            scope,
            user,
            from_extra,
        )
    return Reservation(reservation_id, scope, user, images, day, from_extra)


async def close_reservation(
    con: asyncpg.Connection, reservation_id: int, generated: int, now: datetime, status: str
) -> int | None:
    """Settle (status "settled") or release ("released"); None if it was already closed."""
    row = await con.fetchrow(
        "SELECT scope, user_id, day, images, from_extra, status FROM reservations"
        " WHERE id = $1 FOR UPDATE",
        reservation_id,
    )
    if row is None:
        raise NotFound(f"no reservation {reservation_id}")
    if row["status"] != "held":
        return None
    scope, user, day, images, from_extra = (
        row["scope"],
        row["user_id"],
        row["day"],
        row["images"],
        row["from_extra"],
    )
    daily, extra = charge_split(images, from_extra, generated)
    charged = daily + extra
    await con.execute(
        "UPDATE reservations SET status = $2, charged = $3, closed_at = $4 WHERE id = $1",
        reservation_id,
        status,
        charged,
        now,
    )
    # Charged to the day the reservation was made, whatever day it is now.
    await con.execute(
        "UPDATE scope_days SET held = held - $3, used = used + $4 WHERE scope = $1 AND day = $2",
        scope,
        day,
        images,
        charged,
    )
    await con.execute(
        "UPDATE member_days SET held = held - $4, used = used + $5, extra_held = extra_held - $6,"
        " extra_used = extra_used + $7 WHERE scope = $1 AND user_id = $2 AND day = $3",
        scope,
        user,
        day,
        images - from_extra,
        daily,
        from_extra,
        extra,
    )
    if from_extra > extra:
        await con.execute(
            "UPDATE members SET extra = extra + $3 WHERE scope = $1 AND user_id = $2",
            scope,
            user,
            from_extra - extra,
        )
    return charged


_ORPHAN = (
    "r.status = 'held' AND r.created_at <= $1 AND NOT EXISTS (SELECT 1 FROM jobs AS j"
    " WHERE j.reservation_id = r.id AND j.state NOT IN ('done', 'failed', 'cancelled'))"
)


async def orphan_ids(con: asyncpg.Connection, now: datetime, older_than: timedelta) -> list[int]:
    """Held reservations older than `older_than` that no unfinished job refers to."""
    rows = await con.fetch(
        f"SELECT r.id FROM reservations AS r WHERE {_ORPHAN} ORDER BY r.id", now - older_than
    )
    return [r["id"] for r in rows]


async def release_if_orphan(
    con: asyncpg.Connection, reservation_id: int, now: datetime, older_than: timedelta
) -> bool:
    """Release the reservation if, under its row lock, it is still an orphan."""
    # SKIP LOCKED: another process releasing (or settling) it right now has it in hand.
    still = await con.fetchval(
        f"SELECT r.id FROM reservations AS r WHERE r.id = $2 AND {_ORPHAN} FOR UPDATE OF r SKIP LOCKED",
        now - older_than,
        reservation_id,
    )
    if still is None:
        return False
    return await close_reservation(con, reservation_id, 0, now, "released") is not None


async def _snapshot(
    con: asyncpg.Connection, scope: int, user: int, day: date, default_limit: int
) -> tuple[Snapshot, int, int]:
    row = await con.fetchrow(_SNAPSHOT, scope, user, day)
    snap = Snapshot(
        user_limit=row[0],
        server_default=row[3],
        global_default=default_limit,
        blocked=bool(row[2]),
        extra=row[1],
        used=row[5],
        held=row[6],
        cap=row[4],
        server_used=row[9],
        server_held=row[10],
    )
    return snap, row[7], row[8]


async def quota_status(
    con: asyncpg.Connection, scope: int, user: int, now: datetime, default_limit: int
) -> QuotaStatus:
    day = now.date()
    snap, extra_used, extra_held = await _snapshot(con, scope, user, day, default_limit)
    return status(snap, day=day, extra_used=extra_used, extra_held=extra_held)


async def server_totals(con: asyncpg.Connection, scope: int, now: datetime) -> ServerTotals:
    # One statement: one consistent snapshot without a transaction.
    row = await con.fetchrow(
        "SELECT s.default_limit, s.daily_cap, COALESCE(sd.used, 0), COALESCE(sd.held, 0),"
        " (SELECT count(*) FROM member_days WHERE scope = $1 AND day = $2)"
        " FROM (SELECT 1) AS one"
        " LEFT JOIN scope_settings AS s ON s.scope = $1"
        " LEFT JOIN scope_days AS sd ON sd.scope = $1 AND sd.day = $2",
        scope,
        now.date(),
    )
    return ServerTotals(
        used=row[2],
        held=row[3],
        cap=row[1],
        default_limit=row[0],
        users=row[4],
        resets_at=next_reset(now.date()),
    )


# ---- admin operations ----


async def _audit(
    con: asyncpg.Connection,
    scope: int,
    actor: int,
    action: str,
    target: int | None,
    old: int | bool | None,
    new: int | bool | None,
    now: datetime,
) -> None:
    await con.execute(
        "INSERT INTO audit (scope, actor, action, target, old, new, at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        scope,
        actor,
        action,
        target,
        old,
        new,
        now,
    )


async def _set_member(
    con: asyncpg.Connection, scope: int, user: int, column: str, value: object
) -> asyncpg.Record:
    """Lock the member's row (created with defaults if need be), set `column`; return the old row."""
    old = await con.fetchrow(_LOCK_MEMBER, scope, user)
    # `column` is one of ours, never user input.
    await con.execute(
        f"UPDATE members SET {column} = $3 WHERE scope = $1 AND user_id = $2", scope, user, value
    )
    return old


async def _set_scope(
    con: asyncpg.Connection, scope: int, column: str, value: int | None
) -> int | None:
    old = await con.fetchval(
        f"INSERT INTO scope_settings (scope) VALUES ($1) ON CONFLICT (scope)"
        f" DO UPDATE SET {column} = scope_settings.{column} RETURNING {column}",
        scope,
    )
    await con.execute(f"UPDATE scope_settings SET {column} = $2 WHERE scope = $1", scope, value)
    return old


async def set_user_limit(
    con: asyncpg.Connection, scope: int, actor: int, user: int, limit: int | None, now: datetime
) -> tuple[int | None, int | None]:
    old = (await _set_member(con, scope, user, "daily_limit", limit))["daily_limit"]
    await _audit(con, scope, actor, "set_user_limit", user, old, limit, now)
    return old, limit


async def set_server_default(
    con: asyncpg.Connection, scope: int, actor: int, limit: int | None, now: datetime
) -> tuple[int | None, int | None]:
    old = await _set_scope(con, scope, "default_limit", limit)
    await _audit(con, scope, actor, "set_server_default", None, old, limit, now)
    return old, limit


async def set_server_cap(
    con: asyncpg.Connection, scope: int, actor: int, cap: int | None, now: datetime
) -> tuple[int | None, int | None]:
    old = await _set_scope(con, scope, "daily_cap", cap)
    await _audit(con, scope, actor, "set_server_cap", None, old, cap, now)
    return old, cap


async def grant_extra(
    con: asyncpg.Connection, scope: int, actor: int, user: int, images: int, now: datetime
) -> tuple[int, int]:
    old: int = (await con.fetchrow(_LOCK_MEMBER, scope, user))["extra"]
    new = max(0, old + images)
    await con.execute(
        "UPDATE members SET extra = $3 WHERE scope = $1 AND user_id = $2", scope, user, new
    )
    await _audit(con, scope, actor, "grant_extra", user, old, new, now)
    return old, new


async def reset_usage(
    con: asyncpg.Connection, scope: int, actor: int, user: int, now: datetime
) -> tuple[int, int]:
    day = now.date()
    old = await con.fetchval(
        "SELECT used + extra_used FROM member_days WHERE scope = $1 AND user_id = $2 AND day = $3"
        " FOR UPDATE",
        scope,
        user,
        day,
    )
    # Holds stay (their jobs are still running); extra images already spent are not refunded;
    # the server's total stays too, since it is what the owner is billed for.
    await con.execute(
        "UPDATE member_days SET used = 0, extra_used = 0"
        " WHERE scope = $1 AND user_id = $2 AND day = $3",
        scope,
        user,
        day,
    )
    await _audit(con, scope, actor, "reset_usage", user, old or 0, 0, now)
    return old or 0, 0


async def set_blocked(
    con: asyncpg.Connection, scope: int, actor: int, user: int, blocked: bool, now: datetime
) -> tuple[bool, bool]:
    old = bool((await _set_member(con, scope, user, "blocked", blocked))["blocked"])
    await _audit(con, scope, actor, "block" if blocked else "unblock", user, old, blocked, now)
    return old, blocked


async def audit_log(
    con: asyncpg.Connection, scope: int, limit: int, target: int | None
) -> list[AuditEntry]:
    rows = await con.fetch(
        "SELECT id, scope, actor, action, target, old, new, at FROM audit"
        " WHERE scope = $1 AND ($2::bigint IS NULL OR target = $2) ORDER BY id DESC LIMIT $3",
        scope,
        target,
        limit,
    )
    return [AuditEntry(**dict(r)) for r in rows]
