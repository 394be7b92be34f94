"""Quota, reservation and admin transactions for PostgreSQL, as functions of one connection.

Each runs inside one transaction the caller opened. Any number of processes may run them at once,
so every check and the write it allows happen under row locks, always taken in the same order so
two transactions can never wait on each other:

    reservation row -> scope_days (scope, day) -> bot_days (day) -> member_days (scope, user, day)
    -> members (scope, user) -> refusal_days (scope, day, reason)

`reserve` locks the scope's day first: every reservation in a scope on a day waits there, so the
server cap can't be over-granted; then the bot's day, where every reservation of the day in every
scope waits, so neither can the bot-wide cap; then the member's day and settings, so neither can the
member's allowance or extra images. Admin changes lock only the one row they change (plus the audit
insert); the owner's switches (pause, bot-wide cap) are `meta` rows, read by `reserve` once it holds
the bot's day, so it sees the newest committed value.
A row that doesn't exist yet is created by the locking statement itself (`INSERT ... ON CONFLICT DO
UPDATE ... RETURNING` locks the row, new or old). The checks run in a savepoint: a refusal rolls
those creations (and their locks) back, then counts itself in `refusal_days` in the same
transaction, which commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from bot.store.errors import NotFound, QuotaRefused
from bot.store.models import (
    BOT_SCOPE,
    AuditEntry,
    BotState,
    DayUsage,
    Limits,
    QuotaStatus,
    Reservation,
    ServerTotals,
    UsageReport,
)
from bot.store.quota import (
    GLOBAL_CAP,
    OWNER_ALLOWANCE,
    PAUSED,
    Snapshot,
    charge_split,
    check_ceiling,
    global_cap_in_force,
    grant_or_refuse,
    next_reset,
    status,
)


def _role_join(scope: str, roles: str) -> str:
    """The member's highest role limit, as `r`; `scope` and `roles` name the parameters."""
    return f"""
LEFT JOIN LATERAL (
    SELECT role_id, daily_limit FROM role_limits
    WHERE scope = {scope} AND role_id = ANY({roles}::bigint[])
    ORDER BY daily_limit DESC, role_id LIMIT 1
) AS r ON true
"""


_SWITCHES = (
    f"(SELECT value FROM meta WHERE key = '{PAUSED}') AS paused,"
    f" (SELECT value FROM meta WHERE key = '{GLOBAL_CAP}') AS global_cap"
)

_SNAPSHOT = f"""
SELECT m.daily_limit AS user_limit, COALESCE(m.extra, 0) AS extra,
       COALESCE(m.blocked, false) AS blocked,
       s.default_limit, s.daily_cap,
       COALESCE(d.used, 0) AS used, COALESCE(d.held, 0) AS held,
       COALESCE(d.extra_used, 0) AS extra_used, COALESCE(d.extra_held, 0) AS extra_held,
       COALESCE(sd.used, 0) AS server_used, COALESCE(sd.held, 0) AS server_held,
       r.role_id, r.daily_limit AS role_limit,
       COALESCE(bd.used, 0) AS bot_used, COALESCE(bd.held, 0) AS bot_held, {_SWITCHES}
FROM (SELECT 1) AS one
LEFT JOIN members AS m ON m.scope = $1 AND m.user_id = $2
LEFT JOIN scope_settings AS s ON s.scope = $1
LEFT JOIN member_days AS d ON d.scope = $1 AND d.user_id = $2 AND d.day = $3
LEFT JOIN scope_days AS sd ON sd.scope = $1 AND sd.day = $3
{_role_join("$1", "$4")}
LEFT JOIN bot_days AS bd ON bd.day = $3
"""

# What `reserve` reads unlocked once it holds its rows: settings an admin changes in a transaction
# of their own (a change racing a reservation may land just before or just after it).
_SETTINGS = f"""
SELECT s.default_limit, s.daily_cap, r.role_id, r.daily_limit AS role_limit, {_SWITCHES}
FROM (SELECT 1) AS one
LEFT JOIN scope_settings AS s ON s.scope = $1
{_role_join("$1", "$2")}
"""

# The no-op updates below exist for their row lock (and their RETURNING).
_LOCK_SCOPE_DAY = """
INSERT INTO scope_days (scope, day) VALUES ($1, $2)
ON CONFLICT (scope, day) DO UPDATE SET held = scope_days.held
RETURNING used, held
"""
_LOCK_BOT_DAY = """
INSERT INTO bot_days (day) VALUES ($1)
ON CONFLICT (day) DO UPDATE SET held = bot_days.held
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


def _roles(scope: int, roles: Sequence[int]) -> list[int]:
    # Roles count only in servers: DMs have none, and scope 0 must not match a role id.
    return [int(r) for r in roles] if scope else []


def _make_snapshot(
    scope: int, default_limit: int, limits: Limits, values: dict[str, Any]
) -> Snapshot:
    """The rules' view of one member from the values read (the same defaults as sqlite's)."""
    dm = scope == 0
    # The owner's own jobs (`python -m bot edit`): no member limit and no server ceiling; the
    # bot-wide cap and the pause still apply.
    owner = scope == BOT_SCOPE
    dm_limit = default_limit if limits.dm_daily is None else limits.dm_daily
    return Snapshot(
        user_limit=values["user_limit"],
        server_default=values["default_limit"],
        global_default=OWNER_ALLOWANCE if owner else dm_limit if dm else default_limit,
        blocked=bool(values["blocked"]),
        extra=values["extra"],
        used=values["used"],
        held=values["held"],
        cap=values["daily_cap"],
        server_used=values["server_used"],
        server_held=values["server_held"],
        role_id=values["role_id"],
        role_limit=values["role_limit"],
        bot_used=values["bot_used"],
        bot_held=values["bot_held"],
        paused=values["paused"] == "1",
        bot_cap=global_cap_in_force(values["global_cap"], limits),
        ceiling=None if owner else limits.server_ceiling,
        dm=dm,
    )


async def reserve(
    con: asyncpg.Connection,
    scope: int,
    user: int,
    images: int,
    roles: Sequence[int],
    now: datetime,
    default_limit: int,
    limits: Limits,
) -> Reservation | QuotaRefused:
    """Hold `images`, or count a refusal and return it (returned, not raised, so the count
    commits with the transaction). The caller raises it."""
    day = now.date()
    try:
        async with con.transaction():  # a savepoint: a refusal undoes the rows it locked
            return await _hold(con, scope, user, images, roles, day, now, default_limit, limits)
    except QuotaRefused as refusal:
        await con.execute(
            "INSERT INTO refusal_days (scope, day, reason, requests, images)"
            " VALUES ($1, $2, $3, 1, $4) ON CONFLICT (scope, day, reason) DO UPDATE"
            " SET requests = refusal_days.requests + 1,"
            " images = refusal_days.images + excluded.images",
            scope,
            day,
            refusal.reason,
            images,
        )
        return refusal


async def _hold(
    con: asyncpg.Connection,
    scope: int,
    user: int,
    images: int,
    roles: Sequence[int],
    day: date,
    now: datetime,
    default_limit: int,
    limits: Limits,
) -> Reservation:
    """Lock the rows in the documented order, check every bound, hold; raise `QuotaRefused`."""
    server = await con.fetchrow(_LOCK_SCOPE_DAY, scope, day)
    bot = await con.fetchrow(_LOCK_BOT_DAY, day)
    mine = await con.fetchrow(_LOCK_MEMBER_DAY, scope, user, day)
    # Only an existing member row matters (no row: no own limit, no extra, not blocked); a plain
    # FOR UPDATE locks it without creating one for every member who ever asks.
    member = await con.fetchrow(
        "SELECT daily_limit, extra, blocked FROM members WHERE scope = $1 AND user_id = $2"
        " FOR UPDATE",
        scope,
        user,
    )
    settings = await con.fetchrow(_SETTINGS, scope, _roles(scope, roles))
    snap = _make_snapshot(
        scope,
        default_limit,
        limits,
        {
            **dict(settings),
            "user_limit": member["daily_limit"] if member else None,
            "extra": member["extra"] if member else 0,
            "blocked": bool(member and member["blocked"]),
            "used": mine["used"],
            "held": mine["held"],
            "server_used": server["used"],
            "server_held": server["held"],
            "bot_used": bot["used"],
            "bot_held": bot["held"],
        },
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
        "UPDATE scope_days SET held = held + $3 WHERE scope = $1 AND day = $2", scope, day, images
    )
    await con.execute("UPDATE bot_days SET held = held + $2 WHERE day = $1", day, images)
    await con.execute(
        "UPDATE member_days SET held = held + $4, extra_held = extra_held + $5"
        " WHERE scope = $1 AND user_id = $2 AND day = $3",
        scope,
        user,
        day,
        from_daily,
        from_extra,
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
        "UPDATE bot_days SET held = held - $2, used = used + $3 WHERE day = $1",
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
    con: asyncpg.Connection,
    scope: int,
    user: int,
    roles: Sequence[int],
    day: date,
    default_limit: int,
    limits: Limits,
) -> tuple[Snapshot, int, int]:
    """The rules' view of one member today, plus (extra images used today, extra held now)."""
    row = await con.fetchrow(_SNAPSHOT, scope, user, day, _roles(scope, roles))
    snap = _make_snapshot(scope, default_limit, limits, dict(row))
    return snap, row["extra_used"], row["extra_held"]


async def quota_status(
    con: asyncpg.Connection,
    scope: int,
    user: int,
    roles: Sequence[int],
    now: datetime,
    default_limit: int,
    limits: Limits,
) -> QuotaStatus:
    day = now.date()
    snap, extra_used, extra_held = await _snapshot(
        con, scope, user, roles, day, default_limit, limits
    )
    return status(snap, day=day, extra_used=extra_used, extra_held=extra_held)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def server_totals(
    con: asyncpg.Connection, scope: int, now: datetime, limits: Limits
) -> ServerTotals:
    # One statement: one consistent snapshot without a transaction. `billed`/`undelivered`: what
    # Wan billed for the scope's jobs finished today, and of it what never reached the member.
    day = now.date()
    row = await con.fetchrow(
        "SELECT s.default_limit, s.daily_cap, COALESCE(sd.used, 0), COALESCE(sd.held, 0),"
        " (SELECT count(*) FROM member_days WHERE scope = $1 AND day = $2),"
        " b.billed, b.undelivered"
        " FROM (SELECT 1) AS one"
        " LEFT JOIN scope_settings AS s ON s.scope = $1"
        " LEFT JOIN scope_days AS sd ON sd.scope = $1 AND sd.day = $2"
        " CROSS JOIN (SELECT COALESCE(sum(billed), 0) AS billed,"
        " COALESCE(sum(GREATEST(billed - COALESCE(generated, 0), 0)), 0) AS undelivered"
        " FROM jobs WHERE scope = $1 AND billed > 0 AND finished_at >= $3) AS b",
        scope,
        day,
        _day_start(day),
    )
    return ServerTotals(
        used=row[2],
        held=row[3],
        cap=row[1],
        default_limit=row[0],
        users=row[4],
        resets_at=next_reset(day),
        ceiling=limits.server_ceiling if scope else None,
        billed=int(row[5]),
        undelivered=int(row[6]),
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


# Each admin change checks the owner's ceiling first, inside its transaction: over it, nothing is
# written (not even the audit) and `CeilingExceeded` goes up.


async def set_user_limit(
    con: asyncpg.Connection,
    scope: int,
    actor: int,
    user: int,
    limit: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    check_ceiling("a member's daily limit", limit, ceiling)
    old = (await _set_member(con, scope, user, "daily_limit", limit))["daily_limit"]
    await _audit(con, scope, actor, "set_user_limit", user, old, limit, now)
    return old, limit


async def set_server_default(
    con: asyncpg.Connection,
    scope: int,
    actor: int,
    limit: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    check_ceiling("the server default limit", limit, ceiling)
    old = await _set_scope(con, scope, "default_limit", limit)
    await _audit(con, scope, actor, "set_server_default", None, old, limit, now)
    return old, limit


async def set_server_cap(
    con: asyncpg.Connection,
    scope: int,
    actor: int,
    cap: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    check_ceiling("the server's daily cap", cap, ceiling)
    old = await _set_scope(con, scope, "daily_cap", cap)
    await _audit(con, scope, actor, "set_server_cap", None, old, cap, now)
    return old, cap


async def grant_extra(
    con: asyncpg.Connection,
    scope: int,
    actor: int,
    user: int,
    images: int,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int, int]:
    old: int = (await con.fetchrow(_LOCK_MEMBER, scope, user))["extra"]
    new = max(0, old + images)
    if images > 0:  # taking images back is always allowed
        # Raising rolls back the member row the lock may have created.
        check_ceiling("a member's extra images", new, ceiling)
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


async def set_role_limit(
    con: asyncpg.Connection,
    scope: int,
    actor: int,
    role: int,
    limit: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    check_ceiling("a role's daily limit", limit, ceiling)
    old = await con.fetchval(
        "SELECT daily_limit FROM role_limits WHERE scope = $1 AND role_id = $2 FOR UPDATE",
        scope,
        role,
    )
    if limit is None:
        await con.execute("DELETE FROM role_limits WHERE scope = $1 AND role_id = $2", scope, role)
    else:
        await con.execute(
            "INSERT INTO role_limits (scope, role_id, daily_limit) VALUES ($1, $2, $3)"
            " ON CONFLICT (scope, role_id) DO UPDATE SET daily_limit = excluded.daily_limit",
            scope,
            role,
            limit,
        )
    await _audit(con, scope, actor, "set_role_limit", role, old, limit, now)
    return old, limit


async def role_limits(con: asyncpg.Connection, scope: int) -> dict[int, int]:
    rows = await con.fetch(
        "SELECT role_id, daily_limit FROM role_limits WHERE scope = $1"
        " ORDER BY daily_limit DESC, role_id",
        scope,
    )
    return {row["role_id"]: row["daily_limit"] for row in rows}


# ---- the owner's switches: `meta` rows, each change under that row's lock ----


async def _lock_meta(con: asyncpg.Connection, key: str) -> str | None:
    value: str | None = await con.fetchval("SELECT value FROM meta WHERE key = $1 FOR UPDATE", key)
    return value


async def _put_meta(con: asyncpg.Connection, key: str, value: str | None) -> None:
    if value is None:
        await con.execute("DELETE FROM meta WHERE key = $1", key)
    else:
        await con.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )


def _state(paused: str | None, stored_cap: str | None, limits: Limits) -> BotState:
    return BotState(
        paused=paused == "1",
        global_cap=global_cap_in_force(stored_cap, limits),
        global_cap_overridden=stored_cap is not None,
    )


async def bot_state(con: asyncpg.Connection, limits: Limits) -> BotState:
    row = await con.fetchrow(f"SELECT {_SWITCHES}")
    return _state(row["paused"], row["global_cap"], limits)


async def set_paused(
    con: asyncpg.Connection, actor: int, paused: bool, now: datetime
) -> tuple[bool, bool]:
    old = await _lock_meta(con, PAUSED) == "1"
    await _put_meta(con, PAUSED, "1" if paused else "0")
    await _audit(con, BOT_SCOPE, actor, "pause" if paused else "resume", None, old, paused, now)
    return old, paused


async def set_global_cap(
    con: asyncpg.Connection, actor: int, cap: int | None, now: datetime, limits: Limits
) -> tuple[int | None, int | None]:
    """Set the bot-wide cap (0: none) or, with None, go back to WAN_GLOBAL_DAILY_LIMIT."""
    old = global_cap_in_force(await _lock_meta(con, GLOBAL_CAP), limits)
    stored = None if cap is None else str(cap)
    await _put_meta(con, GLOBAL_CAP, stored)
    new = global_cap_in_force(stored, limits)
    await _audit(con, BOT_SCOPE, actor, "set_global_cap", None, old, new, now)
    return old, new


# ---- usage reports ----


async def usage_report(
    con: asyncpg.Connection,
    scope: int | None,
    now: datetime,
    days: int,
    top: int,
    limits: Limits,
) -> UsageReport:
    """`scope`'s last `days` UTC days (all scopes together when None), today's top members and
    servers, and the bot-wide numbers. Several statements: the caller runs them in one snapshot
    (a REPEATABLE READ transaction)."""
    today = now.date()
    first = today - timedelta(days=days - 1)
    # $2 is the scope, or NULL for every scope.
    mine = "($2::bigint IS NULL OR {} = $2)"
    charged = {
        row[0]: row[1]
        for row in await con.fetch(
            "SELECT day, SUM(used) FROM scope_days WHERE day >= $1 AND "
            + mine.format("scope")
            + " GROUP BY day",
            first,
            scope,
        )
    }
    billed = {
        row[0]: row[1]
        for row in await con.fetch(
            "SELECT r.day, SUM(COALESCE(j.billed, 0)) FROM reservations AS r"
            " JOIN jobs AS j ON j.reservation_id = r.id WHERE r.day >= $1 AND "
            + mine.format("r.scope")
            + " GROUP BY r.day",
            first,
            scope,
        )
    }
    # Billed images of jobs other than edits, by day, scope and kind (priced apart in the reports).
    kinds: dict[date, dict[str, int]] = {}
    kinds_today: dict[int, dict[str, int]] = {}
    for row in await con.fetch(
        "SELECT r.day, r.scope, j.options->>'kind' AS kind, SUM(j.billed)"
        " FROM reservations AS r JOIN jobs AS j ON j.reservation_id = r.id"
        " WHERE r.day >= $1 AND j.billed > 0 AND j.options->>'kind' <> 'edit' AND "
        + mine.format("r.scope")
        + " GROUP BY r.day, r.scope, j.options->>'kind'",
        first,
        scope,
    ):
        per_day = kinds.setdefault(row[0], {})
        per_day[row[2]] = per_day.get(row[2], 0) + int(row[3])
        if row[0] == today:
            kinds_today.setdefault(row[1], {})[row[2]] = int(row[3])
    refused: dict[date, dict[str, int]] = {}
    for row in await con.fetch(
        "SELECT day, reason, SUM(images) FROM refusal_days WHERE day >= $1 AND "
        + mine.format("scope")
        + " GROUP BY day, reason",
        first,
        scope,
    ):
        refused.setdefault(row[0], {})[row[1]] = int(row[2])
    day_rows = [
        DayUsage(
            day=day,
            charged=int(charged.get(day) or 0),
            billed=int(billed.get(day) or 0),
            refused=refused.get(day, {}),
            billed_by_kind=kinds.get(day, {}),
        )
        for day in (today - timedelta(days=offset) for offset in range(days - 1, -1, -1))
    ]
    top_members = [
        (row[0], row[1], int(row[2]))
        for row in await con.fetch(
            "SELECT scope, user_id, SUM(charged) AS n FROM reservations"
            " WHERE day = $1 AND status = 'settled' AND charged > 0 AND "
            + mine.format("scope")
            + " GROUP BY scope, user_id ORDER BY n DESC, user_id LIMIT $3",
            today,
            scope,
            top,
        )
    ]
    # NULLS LAST: a server with no job today sorts after one whose jobs billed nothing, as in
    # sqlite (where NULL is the smallest value).
    servers = [
        (row[0], row[1] or 0, int(row[2] or 0))
        for row in await con.fetch(
            "SELECT sd.scope, sd.used, (SELECT SUM(COALESCE(j.billed, 0)) FROM reservations AS r"
            " JOIN jobs AS j ON j.reservation_id = r.id WHERE r.scope = sd.scope AND r.day = sd.day)"
            " AS billed FROM scope_days AS sd WHERE sd.day = $1 AND "
            + mine.format("sd.scope")
            + " ORDER BY billed DESC NULLS LAST, sd.used DESC, sd.scope LIMIT $3",
            today,
            scope,
            top,
        )
    ]
    refused_by_scope: dict[int, dict[str, int]] = {}
    for row in await con.fetch(
        "SELECT scope, reason, images FROM refusal_days WHERE day = $1 AND " + mine.format("scope"),
        today,
        scope,
    ):
        refused_by_scope.setdefault(row[0], {})[row[1]] = row[2]
    row = await con.fetchrow(
        f"SELECT COALESCE(bd.used, 0), COALESCE(bd.held, 0), {_SWITCHES}"
        " FROM (SELECT 1) AS one LEFT JOIN bot_days AS bd ON bd.day = $1",
        today,
    )
    state = _state(row["paused"], row["global_cap"], limits)
    return UsageReport(
        scope=scope,
        days=day_rows,
        top_members=top_members,
        servers=servers,
        global_cap=state.global_cap,
        global_used=row[0],
        global_held=row[1],
        paused=state.paused,
        resets_at=next_reset(today),
        refused_by_scope=refused_by_scope,
        billed_by_kind_today=kinds_today,
    )


async def busiest_scopes(
    con: asyncpg.Connection, now: datetime, days: int, top: int
) -> list[tuple[int, int]]:
    """The scopes charged the most images over the last `days` UTC days, most first."""
    first = now.date() - timedelta(days=days - 1)
    return [
        (row[0], int(row[1]))
        for row in await con.fetch(
            "SELECT scope, SUM(used) AS n FROM scope_days WHERE day >= $1"
            " GROUP BY scope HAVING SUM(used) > 0 ORDER BY n DESC, scope LIMIT $2",
            first,
            top,
        )
    ]
