"""Quota, reservation and admin transactions for sqlite, as plain functions of a connection.

Each runs on the connection's thread inside one `BEGIN IMMEDIATE` transaction opened by the caller,
so the check and the hold in `reserve` cannot be split by another writer, in this process or another.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta

from bot.store.errors import NotFound
from bot.store.models import AuditEntry, QuotaStatus, Reservation, ServerTotals
from bot.store.quota import Snapshot, charge_split, grant_or_refuse, next_reset, status

_SNAPSHOT = """
SELECT m.daily_limit, COALESCE(m.extra, 0), COALESCE(m.blocked, 0),
       s.default_limit, s.daily_cap,
       COALESCE(d.used, 0), COALESCE(d.held, 0), COALESCE(d.extra_used, 0),
       COALESCE(d.extra_held, 0), COALESCE(sd.used, 0), COALESCE(sd.held, 0)
FROM (SELECT 1) AS one
LEFT JOIN members AS m ON m.scope = :scope AND m.user_id = :user
LEFT JOIN scope_settings AS s ON s.scope = :scope
LEFT JOIN member_days AS d ON d.scope = :scope AND d.user_id = :user AND d.day = :day
LEFT JOIN scope_days AS sd ON sd.scope = :scope AND sd.day = :day
"""


def _snapshot(
    conn: sqlite3.Connection, scope: int, user: int, day: date, default_limit: int
) -> tuple[Snapshot, int, int]:
    """The rules' view of one member today, plus (extra images used today, extra held now)."""
    row = conn.execute(_SNAPSHOT, {"scope": scope, "user": user, "day": day.isoformat()}).fetchone()
    (user_limit, extra, blocked, server_default, cap, used, held, extra_used, extra_held) = row[:9]
    snap = Snapshot(
        user_limit=user_limit,
        server_default=server_default,
        global_default=default_limit,
        blocked=bool(blocked),
        extra=extra,
        used=used,
        held=held,
        cap=cap,
        server_used=row[9],
        server_held=row[10],
    )
    return snap, extra_used, extra_held


def reserve(
    conn: sqlite3.Connection,
    scope: int,
    user: int,
    images: int,
    now: datetime,
    default_limit: int,
) -> Reservation:
    day = now.date()
    snap, _, extra_held = _snapshot(conn, scope, user, day, default_limit)
    from_daily, from_extra = grant_or_refuse(
        snap, images, scope=scope, day=day, extra_held=extra_held
    )
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
    if from_extra > extra:
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
    conn: sqlite3.Connection, scope: int, user: int, now: datetime, default_limit: int
) -> QuotaStatus:
    day = now.date()
    snap, extra_used, extra_held = _snapshot(conn, scope, user, day, default_limit)
    return status(snap, day=day, extra_used=extra_used, extra_held=extra_held)


def server_totals(conn: sqlite3.Connection, scope: int, now: datetime) -> ServerTotals:
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


def set_user_limit(
    conn: sqlite3.Connection, scope: int, actor: int, user: int, limit: int | None, now: datetime
) -> tuple[int | None, int | None]:
    old = _member(conn, scope, user)[0]
    _set_member(conn, scope, user, "daily_limit", limit)
    _audit(conn, scope, actor, "set_user_limit", user, old, limit, now)
    return old, limit


def set_server_default(
    conn: sqlite3.Connection, scope: int, actor: int, limit: int | None, now: datetime
) -> tuple[int | None, int | None]:
    old = _set_scope(conn, scope, "default_limit", limit)
    _audit(conn, scope, actor, "set_server_default", None, old, limit, now)
    return old, limit


def set_server_cap(
    conn: sqlite3.Connection, scope: int, actor: int, cap: int | None, now: datetime
) -> tuple[int | None, int | None]:
    old = _set_scope(conn, scope, "daily_cap", cap)
    _audit(conn, scope, actor, "set_server_cap", None, old, cap, now)
    return old, cap


def grant_extra(
    conn: sqlite3.Connection, scope: int, actor: int, user: int, images: int, now: datetime
) -> tuple[int, int]:
    old = _member(conn, scope, user)[1]
    new = max(0, old + images)
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
