"""Quota, reservation and admin transactions for sqlite, as plain functions of a connection.

Each runs on the connection's thread inside one `BEGIN IMMEDIATE` transaction opened by the caller,
so the check and the hold in `reserve` cannot be split by another writer, in this process or another.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from bot.store.errors import NotFound, QuotaRefused
from bot.store.models import (
    BOT_SCOPE,
    AuditEntry,
    BotState,
    DayUsage,
    Limits,
    QuotaStatus,
    RefusalReason,
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
    next_reset,
    refused,
    status,
)

_SNAPSHOT = """
SELECT m.daily_limit, COALESCE(m.extra, 0), COALESCE(m.blocked, 0),
       s.default_limit, s.daily_cap,
       COALESCE(d.used, 0), COALESCE(d.held, 0), COALESCE(d.extra_used, 0),
       COALESCE(d.extra_held, 0), COALESCE(sd.used, 0), COALESCE(sd.held, 0),
       r.role_id, r.daily_limit, COALESCE(bd.used, 0), COALESCE(bd.held, 0),
       (SELECT value FROM meta WHERE key = 'paused'),
       (SELECT value FROM meta WHERE key = 'global_daily_limit')
FROM (SELECT 1) AS one
LEFT JOIN members AS m ON m.scope = :scope AND m.user_id = :user
LEFT JOIN scope_settings AS s ON s.scope = :scope
LEFT JOIN member_days AS d ON d.scope = :scope AND d.user_id = :user AND d.day = :day
LEFT JOIN scope_days AS sd ON sd.scope = :scope AND sd.day = :day
LEFT JOIN (
    SELECT role_id, daily_limit FROM role_limits
    WHERE scope = :scope AND role_id IN (SELECT value FROM json_each(:roles))
    ORDER BY daily_limit DESC, role_id LIMIT 1
) AS r ON 1
LEFT JOIN bot_days AS bd ON bd.day = :day
"""


def _snapshot(
    conn: sqlite3.Connection,
    scope: int,
    user: int,
    roles: Sequence[int],
    day: date,
    default_limit: int,
    limits: Limits,
) -> tuple[Snapshot, int, int]:
    """The rules' view of one member today, plus (extra images used today, extra held now)."""
    params = {
        "scope": scope,
        "user": user,
        "day": day.isoformat(),
        # Roles count only in servers: DMs have none, and scope 0 must not match a role id.
        "roles": json.dumps([int(r) for r in roles] if scope else []),
    }
    row = conn.execute(_SNAPSHOT, params).fetchone()
    (user_limit, extra, blocked, server_default, cap, used, held, extra_used, extra_held) = row[:9]
    dm = scope == 0
    # The owner's own jobs (`python -m bot edit`): no member limit and no server ceiling; the
    # bot-wide cap and the pause still apply.
    owner = scope == BOT_SCOPE
    dm_limit = default_limit if limits.dm_daily is None else limits.dm_daily
    snap = Snapshot(
        user_limit=user_limit,
        server_default=server_default,
        global_default=OWNER_ALLOWANCE if owner else dm_limit if dm else default_limit,
        blocked=bool(blocked),
        extra=extra,
        used=used,
        held=held,
        cap=cap,
        server_used=row[9],
        server_held=row[10],
        role_id=row[11],
        role_limit=row[12],
        bot_used=row[13],
        bot_held=row[14],
        paused=row[15] == "1",
        bot_cap=global_cap_in_force(row[16], limits),
        ceiling=None if owner else limits.server_ceiling,
        dm=dm,
    )
    return snap, extra_used, extra_held


def _refused(
    conn: sqlite3.Connection,
    snap: Snapshot,
    reason: RefusalReason,
    scope: int,
    images: int,
    day: date,
    extra_held: int,
) -> QuotaRefused:
    """Count the refusal (in the caller's transaction) and build what `reserve` raises."""
    conn.execute(
        "INSERT INTO refusal_days (scope, day, reason, requests, images) VALUES (?, ?, ?, 1, ?)"
        " ON CONFLICT (scope, day, reason) DO UPDATE SET requests = requests + 1,"
        " images = images + excluded.images",
        (scope, day.isoformat(), reason, images),
    )
    return refused(snap, reason, images=images, scope=scope, day=day, extra_held=extra_held)


def reserve(
    conn: sqlite3.Connection,
    scope: int,
    user: int,
    images: int,
    roles: Sequence[int],
    now: datetime,
    default_limit: int,
    limits: Limits,
) -> Reservation | QuotaRefused:
    """Hold `images`, or count a refusal and return it (returned, not raised, so the count is kept:
    a raise would roll the operation's savepoint back). The caller raises it."""
    day = now.date()
    snap, _, extra_held = _snapshot(conn, scope, user, roles, day, default_limit, limits)
    reason = snap.refusal(images)
    if reason is not None:
        return _refused(conn, snap, reason, scope, images, day, extra_held)
    from_daily, from_extra = snap.split(images)
    cur = conn.execute(
        "INSERT INTO reservations (scope, user_id, day, images, from_extra, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (scope, user, day.isoformat(), images, from_extra, now.isoformat()),
    )
    reservation_id = cur.lastrowid
    assert reservation_id is not None
    conn.execute(
        "INSERT INTO member_days (scope, user_id, day, held, extra_held) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (scope, user_id, day) DO UPDATE SET held = held + excluded.held,"
        " extra_held = extra_held + excluded.extra_held",
        (scope, user, day.isoformat(), from_daily, from_extra),
    )
    conn.execute(
        "INSERT INTO scope_days (scope, day, held) VALUES (?, ?, ?)"
        " ON CONFLICT (scope, day) DO UPDATE SET held = held + excluded.held",
        (scope, day.isoformat(), images),
    )
    conn.execute(
        "INSERT INTO bot_days (day, held) VALUES (?, ?)"
        " ON CONFLICT (day) DO UPDATE SET held = held + excluded.held",
        (day.isoformat(), images),
    )
    if from_extra:
        # Extra images leave the balance when held, so two jobs cannot spend the same ones.
        conn.execute(
            "UPDATE members SET extra = extra - ? WHERE scope = ? AND user_id = ?",
            (from_extra, scope, user),
        )
    return Reservation(reservation_id, scope, user, images, day, from_extra)


def close_reservation(
    conn: sqlite3.Connection, reservation_id: int, generated: int, now: datetime, status: str
) -> int | None:
    """Settle (status "settled") or release ("released"); None if it was already closed."""
    row = conn.execute(
        "SELECT scope, user_id, day, images, from_extra, status FROM reservations WHERE id = ?",
        (reservation_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no reservation {reservation_id}")
    scope, user, day, images, from_extra, current = row
    if current != "held":
        return None
    daily, extra = charge_split(images, from_extra, generated)
    charged = daily + extra
    conn.execute(
        "UPDATE reservations SET status = ?, charged = ?, closed_at = ? WHERE id = ?",
        (status, charged, now.isoformat(), reservation_id),
    )
    # Charged to the day the reservation was made, whatever day it is now.
    conn.execute(
        "UPDATE member_days SET held = held - ?, used = used + ?, extra_held = extra_held - ?,"
        " extra_used = extra_used + ? WHERE scope = ? AND user_id = ? AND day = ?",
        (images - from_extra, daily, from_extra, extra, scope, user, day),
    )
    conn.execute(
        "UPDATE scope_days SET held = held - ?, used = used + ? WHERE scope = ? AND day = ?",
        (images, charged, scope, day),
    )
    conn.execute(
        "UPDATE bot_days SET held = held - ?, used = used + ? WHERE day = ?",
        (images, charged, day),
    )
    if from_extra > extra:  # (">=" would be equivalent: it gives back 0)
        conn.execute(
            "UPDATE members SET extra = extra + ? WHERE scope = ? AND user_id = ?",
            (from_extra - extra, scope, user),
        )
    return charged


def release_orphans(conn: sqlite3.Connection, now: datetime, older_than: timedelta) -> int:
    cutoff = (now - older_than).isoformat()
    rows = conn.execute(
        "SELECT r.id FROM reservations AS r WHERE r.status = 'held' AND r.created_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.reservation_id = r.id"
        " AND j.state NOT IN ('done', 'failed', 'cancelled'))",
        (cutoff,),
    ).fetchall()
    for (reservation_id,) in rows:
        close_reservation(conn, reservation_id, 0, now, "released")
    return len(rows)


def quota_status(
    conn: sqlite3.Connection,
    scope: int,
    user: int,
    roles: Sequence[int],
    now: datetime,
    default_limit: int,
    limits: Limits,
) -> QuotaStatus:
    day = now.date()
    snap, extra_used, extra_held = _snapshot(conn, scope, user, roles, day, default_limit, limits)
    return status(snap, day=day, extra_used=extra_used, extra_held=extra_held)


# pragma: no mutate start
# (bench/mutation.py: admin settings, audit and reports move no money; their own tests in
# tests/store/test_store_admin.py guard them. Mutation testing here covers reserve and settle.)
def server_totals(
    conn: sqlite3.Connection, scope: int, now: datetime, limits: Limits
) -> ServerTotals:
    day = now.date().isoformat()
    settings = conn.execute(
        "SELECT default_limit, daily_cap FROM scope_settings WHERE scope = ?", (scope,)
    ).fetchone() or (None, None)
    spent = conn.execute(
        "SELECT used, held FROM scope_days WHERE scope = ? AND day = ?", (scope, day)
    ).fetchone() or (0, 0)
    (users,) = conn.execute(
        "SELECT count(*) FROM member_days WHERE scope = ? AND day = ?", (scope, day)
    ).fetchone()
    return ServerTotals(
        used=spent[0],
        held=spent[1],
        cap=settings[1],
        default_limit=settings[0],
        users=users,
        resets_at=next_reset(now.date()),
        ceiling=limits.server_ceiling if scope else None,
    )


# ---- admin operations ----


def _audit(
    conn: sqlite3.Connection,
    scope: int,
    actor: int,
    action: str,
    target: int | None,
    old: int | bool | None,
    new: int | bool | None,
    now: datetime,
) -> None:
    conn.execute(
        "INSERT INTO audit (scope, actor, action, target, old, new, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (scope, actor, action, target, json.dumps(old), json.dumps(new), now.isoformat()),
    )


def _member(conn: sqlite3.Connection, scope: int, user: int) -> tuple[int | None, int, bool]:
    """(own daily limit, extra balance, blocked) with defaults for a member never configured."""
    row = conn.execute(
        "SELECT daily_limit, extra, blocked FROM members WHERE scope = ? AND user_id = ?",
        (scope, user),
    ).fetchone()
    return (row[0], row[1], bool(row[2])) if row else (None, 0, False)


def _set_member(
    conn: sqlite3.Connection, scope: int, user: int, column: str, value: object
) -> None:
    # `column` is one of ours, never user input.
    conn.execute(
        f"INSERT INTO members (scope, user_id, {column}) VALUES (?, ?, ?)"
        f" ON CONFLICT (scope, user_id) DO UPDATE SET {column} = excluded.{column}",
        (scope, user, value),
    )


def _set_scope(conn: sqlite3.Connection, scope: int, column: str, value: int | None) -> int | None:
    row = conn.execute(f"SELECT {column} FROM scope_settings WHERE scope = ?", (scope,)).fetchone()
    conn.execute(
        f"INSERT INTO scope_settings (scope, {column}) VALUES (?, ?)"
        f" ON CONFLICT (scope) DO UPDATE SET {column} = excluded.{column}",
        (scope, value),
    )
    return row[0] if row else None


def _within(what: str, value: int | None, ceiling: int | None) -> None:
    # Checked inside the change's transaction, so nothing is written (not even the audit) when over.
    check_ceiling(what, value, ceiling)


def set_user_limit(
    conn: sqlite3.Connection,
    scope: int,
    actor: int,
    user: int,
    limit: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    _within("a member's daily limit", limit, ceiling)
    old = _member(conn, scope, user)[0]
    _set_member(conn, scope, user, "daily_limit", limit)
    _audit(conn, scope, actor, "set_user_limit", user, old, limit, now)
    return old, limit


def set_server_default(
    conn: sqlite3.Connection,
    scope: int,
    actor: int,
    limit: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    _within("the server default limit", limit, ceiling)
    old = _set_scope(conn, scope, "default_limit", limit)
    _audit(conn, scope, actor, "set_server_default", None, old, limit, now)
    return old, limit


def set_server_cap(
    conn: sqlite3.Connection,
    scope: int,
    actor: int,
    cap: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    _within("the server's daily cap", cap, ceiling)
    old = _set_scope(conn, scope, "daily_cap", cap)
    _audit(conn, scope, actor, "set_server_cap", None, old, cap, now)
    return old, cap


def grant_extra(
    conn: sqlite3.Connection,
    scope: int,
    actor: int,
    user: int,
    images: int,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int, int]:
    old = _member(conn, scope, user)[1]
    new = max(0, old + images)
    if images > 0:  # taking images back is always allowed
        _within("a member's extra images", new, ceiling)
    _set_member(conn, scope, user, "extra", new)
    _audit(conn, scope, actor, "grant_extra", user, old, new, now)
    return old, new


def reset_usage(
    conn: sqlite3.Connection, scope: int, actor: int, user: int, now: datetime
) -> tuple[int, int]:
    day = now.date().isoformat()
    row = conn.execute(
        "SELECT used + extra_used FROM member_days WHERE scope = ? AND user_id = ? AND day = ?",
        (scope, user, day),
    ).fetchone()
    old = row[0] if row else 0
    # Holds stay (their jobs are still running); extra images already spent are not refunded;
    # the server's total stays too, since it is what the owner is billed for.
    conn.execute(
        "UPDATE member_days SET used = 0, extra_used = 0 WHERE scope = ? AND user_id = ? AND day = ?",
        (scope, user, day),
    )
    _audit(conn, scope, actor, "reset_usage", user, old, 0, now)
    return old, 0


def set_blocked(
    conn: sqlite3.Connection, scope: int, actor: int, user: int, blocked: bool, now: datetime
) -> tuple[bool, bool]:
    old = _member(conn, scope, user)[2]
    _set_member(conn, scope, user, "blocked", int(blocked))
    _audit(conn, scope, actor, "block" if blocked else "unblock", user, old, blocked, now)
    return old, blocked


def audit_log(
    conn: sqlite3.Connection, scope: int, limit: int, target: int | None
) -> list[AuditEntry]:
    sql = "SELECT id, scope, actor, action, target, old, new, at FROM audit WHERE scope = ?"
    params: tuple[int, ...] = (scope,)
    if target is not None:
        sql += " AND target = ?"
        params += (target,)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
    return [
        AuditEntry(
            id=r[0],
            scope=r[1],
            actor=r[2],
            action=r[3],
            target=r[4],
            old=json.loads(r[5]) if r[5] is not None else None,
            new=json.loads(r[6]) if r[6] is not None else None,
            at=datetime.fromisoformat(r[7]),
        )
        for r in rows
    ]


def set_role_limit(
    conn: sqlite3.Connection,
    scope: int,
    actor: int,
    role: int,
    limit: int | None,
    now: datetime,
    ceiling: int | None = None,
) -> tuple[int | None, int | None]:
    _within("a role's daily limit", limit, ceiling)
    row = conn.execute(
        "SELECT daily_limit FROM role_limits WHERE scope = ? AND role_id = ?", (scope, role)
    ).fetchone()
    old = row[0] if row else None
    if limit is None:
        conn.execute("DELETE FROM role_limits WHERE scope = ? AND role_id = ?", (scope, role))
    else:
        conn.execute(
            "INSERT INTO role_limits (scope, role_id, daily_limit) VALUES (?, ?, ?)"
            " ON CONFLICT (scope, role_id) DO UPDATE SET daily_limit = excluded.daily_limit",
            (scope, role, limit),
        )
    _audit(conn, scope, actor, "set_role_limit", role, old, limit, now)
    return old, limit


def role_limits(conn: sqlite3.Connection, scope: int) -> dict[int, int]:
    rows = conn.execute(
        "SELECT role_id, daily_limit FROM role_limits WHERE scope = ? ORDER BY daily_limit DESC",
        (scope,),
    ).fetchall()
    return {role: limit for role, limit in rows}


# pragma: no mutate end


# ---- the owner's switches ----


def _get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


# pragma: no mutate start (the owner's switches and reports; see above)
def _put_meta(conn: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


# pragma: no mutate end
def bot_state(conn: sqlite3.Connection, limits: Limits) -> BotState:
    stored = _get_meta(conn, GLOBAL_CAP)
    return BotState(
        paused=_get_meta(conn, PAUSED) == "1",
        global_cap=global_cap_in_force(stored, limits),
        global_cap_overridden=stored is not None,
    )


# pragma: no mutate start (to the end of the file)
def set_paused(
    conn: sqlite3.Connection, actor: int, paused: bool, now: datetime
) -> tuple[bool, bool]:
    old = _get_meta(conn, PAUSED) == "1"
    _put_meta(conn, PAUSED, "1" if paused else "0")
    _audit(conn, BOT_SCOPE, actor, "pause" if paused else "resume", None, old, paused, now)
    return old, paused


def set_global_cap(
    conn: sqlite3.Connection, actor: int, cap: int | None, now: datetime, limits: Limits
) -> tuple[int | None, int | None]:
    """Set the bot-wide cap (0: none) or, with None, go back to WAN_GLOBAL_DAILY_LIMIT."""
    old = global_cap_in_force(_get_meta(conn, GLOBAL_CAP), limits)
    _put_meta(conn, GLOBAL_CAP, None if cap is None else str(cap))
    new = global_cap_in_force(None if cap is None else str(cap), limits)
    _audit(conn, BOT_SCOPE, actor, "set_global_cap", None, old, new, now)
    return old, new


# ---- usage reports ----


def usage_report(
    conn: sqlite3.Connection,
    scope: int | None,
    now: datetime,
    days: int,
    top: int,
    limits: Limits,
) -> UsageReport:
    """`scope`'s last `days` UTC days (all scopes together when None), today's top members and
    servers, and the bot-wide numbers."""
    today = now.date()
    first = (today - timedelta(days=days - 1)).isoformat()
    where, params = ("", ()) if scope is None else (" AND scope = ?", (scope,))
    charged = dict(
        conn.execute(
            f"SELECT day, SUM(used) FROM scope_days WHERE day >= ?{where} GROUP BY day",
            (first, *params),
        ).fetchall()
    )
    r_where = where.replace("scope", "r.scope")
    billed = dict(
        conn.execute(
            "SELECT r.day, SUM(COALESCE(j.billed, 0)) FROM reservations AS r"
            f" JOIN jobs AS j ON j.reservation_id = r.id WHERE r.day >= ?{r_where} GROUP BY r.day",
            (first, *params),
        ).fetchall()
    )
    # Billed images of jobs other than edits, by day, scope and kind (priced apart in the reports).
    kinds: dict[str, dict[str, int]] = {}
    kinds_today: dict[int, dict[str, int]] = {}
    for day, kind_scope, kind, images in conn.execute(
        "SELECT r.day, r.scope, json_extract(j.options, '$.kind') AS kind, SUM(j.billed)"
        " FROM reservations AS r JOIN jobs AS j ON j.reservation_id = r.id"
        f" WHERE r.day >= ?{r_where} AND j.billed > 0 AND kind IS NOT NULL AND kind != 'edit'"
        " GROUP BY r.day, r.scope, kind",
        (first, *params),
    ):
        per_day = kinds.setdefault(day, {})
        per_day[kind] = per_day.get(kind, 0) + images
        if day == today.isoformat():
            kinds_today.setdefault(kind_scope, {})[kind] = images
    refused: dict[str, dict[str, int]] = {}
    for day, reason, images in conn.execute(
        f"SELECT day, reason, SUM(images) FROM refusal_days WHERE day >= ?{where}"
        " GROUP BY day, reason",
        (first, *params),
    ):
        refused.setdefault(day, {})[reason] = images
    day_rows = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        key = day.isoformat()
        day_rows.append(
            DayUsage(
                day=day,
                charged=charged.get(key) or 0,
                billed=billed.get(key) or 0,
                refused=refused.get(key, {}),
                billed_by_kind=kinds.get(key, {}),
            )
        )
    top_members = [
        (row[0], row[1], row[2])
        for row in conn.execute(
            "SELECT scope, user_id, SUM(charged) AS n FROM reservations"
            f" WHERE day = ? AND status = 'settled' AND charged > 0{where}"
            " GROUP BY scope, user_id ORDER BY n DESC, user_id LIMIT ?",
            (today.isoformat(), *params, top),
        )
    ]
    servers = [
        (row[0], row[1] or 0, row[2] or 0)
        for row in conn.execute(
            "SELECT sd.scope, sd.used, (SELECT SUM(COALESCE(j.billed, 0)) FROM reservations AS r"
            " JOIN jobs AS j ON j.reservation_id = r.id WHERE r.scope = sd.scope AND r.day = sd.day)"
            f" AS billed FROM scope_days AS sd WHERE sd.day = ?{where.replace('scope', 'sd.scope')}"
            " ORDER BY billed DESC, sd.used DESC, sd.scope LIMIT ?",
            (today.isoformat(), *params, top),
        )
    ]
    refused_by_scope: dict[int, dict[str, int]] = {}
    for refused_scope, reason, images in conn.execute(
        f"SELECT scope, reason, images FROM refusal_days WHERE day = ?{where}",
        (today.isoformat(), *params),
    ):
        refused_by_scope.setdefault(refused_scope, {})[reason] = images
    state = bot_state(conn, limits)
    spent = conn.execute(
        "SELECT used, held FROM bot_days WHERE day = ?", (today.isoformat(),)
    ).fetchone() or (0, 0)
    return UsageReport(
        scope=scope,
        days=day_rows,
        top_members=top_members,
        servers=servers,
        global_cap=state.global_cap,
        global_used=spent[0],
        global_held=spent[1],
        paused=state.paused,
        resets_at=next_reset(today),
        refused_by_scope=refused_by_scope,
        billed_by_kind_today=kinds_today,
    )


def busiest_scopes(
    conn: sqlite3.Connection, now: datetime, days: int, top: int
) -> list[tuple[int, int]]:
    """The scopes charged the most images over the last `days` UTC days, most first."""
    first = (now.date() - timedelta(days=days - 1)).isoformat()
    return [
        (row[0], row[1])
        for row in conn.execute(
            "SELECT scope, SUM(used) AS n FROM scope_days WHERE day >= ?"
            " GROUP BY scope HAVING n > 0 ORDER BY n DESC, scope LIMIT ?",
            (first, top),
        )
    ]


# pragma: no mutate end
