"""Admin changes with their audit, the owner's switches (`meta` rows) and the reports, as functions
of one `Tx`. A change locks only its row and checks the owner's ceiling first: over it, nothing is
written, not even the audit (`CeilingExceeded`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.store.driver import Doc, Row, Tx, as_day, as_json, as_time
from bot.store.models import (
    AuditEntry,
    BotState,
    DayUsage,
    Limits,
    ServerTotals,
    UsageReport,
)
from bot.store.quota import PAUSED, SWITCHES, check_ceiling, global_cap_in_force, next_reset

# The subjects of `CeilingExceeded.what`, the codes the Discord side words.
USER_LIMIT, SERVER_DEFAULT, SERVER_CAP, EXTRA, ROLE_LIMIT = (
    "user_limit", "server_default", "server_cap", "extra", "role_limit"
)  # fmt: skip
# Row (made if need be, with defaults) and lock: the no-op update is there for its row lock.
_LOCK_MEMBER = (
    "INSERT INTO members (scope, user_id) VALUES (:scope, :user)"
    " ON CONFLICT (scope, user_id) DO UPDATE SET extra = members.extra"
    " RETURNING daily_limit, extra, blocked"
)
# `column` arguments below are ours, never user input.


@dataclass(frozen=True)
class Change:
    """Who changes what where, and when; `ceiling`: the owner's, None where none applies."""

    scope: int
    actor: int
    now: datetime
    ceiling: int | None = None


async def _audit(tx: Tx, c: Change, action: str, target: int | None, old: Any, new: Any) -> None:
    await tx.run(
        "INSERT INTO audit (scope, actor, action, target, old, new, at)"
        " VALUES (:scope, :actor, :action, :target, :old, :new, :at)",
        **{"scope": c.scope, "actor": c.actor, "action": action, "target": target},
        **{"old": Doc(old), "new": Doc(new), "at": c.now},
    )


async def set_member(tx: Tx, c: Change, user: int, column: str, value: Any) -> tuple[Any, Any]:
    """Set one of the member's own settings (`daily_limit`, `extra` as a change, `blocked`)."""
    key = {"scope": c.scope, "user": user}
    old_row = await tx.one(_LOCK_MEMBER, **key)
    assert old_row is not None
    old = old_row[column]
    if column == "daily_limit":
        check_ceiling(USER_LIMIT, value, c.ceiling)
        action = "set_user_limit"
    elif column == "extra":
        value = max(0, old + value)
        if value > old:  # taking images back is always allowed
            check_ceiling(EXTRA, value, c.ceiling)
        action = "grant_extra"
    else:
        old, action = bool(old), "block" if value else "unblock"
    sql = f"UPDATE members SET {column} = :value WHERE scope = :scope AND user_id = :user"
    await tx.run(sql, value=value, **key)
    await _audit(tx, c, action, user, old, value)
    return old, value


async def set_scope(tx: Tx, c: Change, column: str, value: int | None) -> tuple[Any, Any]:
    """Set `default_limit` or `daily_cap` of the scope."""
    default = column == "default_limit"
    check_ceiling(SERVER_DEFAULT if default else SERVER_CAP, value, c.ceiling)
    old = await tx.val(
        f"INSERT INTO scope_settings (scope) VALUES (:scope) ON CONFLICT (scope)"
        f" DO UPDATE SET {column} = scope_settings.{column} RETURNING {column}",
        scope=c.scope,
    )
    sql = f"UPDATE scope_settings SET {column} = :value WHERE scope = :scope"
    await tx.run(sql, scope=c.scope, value=value)
    await _audit(tx, c, "set_server_default" if default else "set_server_cap", None, old, value)
    return old, value


async def set_role_limit(tx: Tx, c: Change, role: int, limit: int | None) -> tuple[Any, Any]:
    check_ceiling(ROLE_LIMIT, limit, c.ceiling)
    key = {"scope": c.scope, "role": role}
    where = "WHERE scope = :scope AND role_id = :role"
    old = await tx.val(f"SELECT daily_limit FROM role_limits {where} FOR UPDATE", **key)
    if limit is None:
        await tx.run(f"DELETE FROM role_limits {where}", **key)
    else:
        await tx.run(
            "INSERT INTO role_limits (scope, role_id, daily_limit) VALUES (:scope, :role, :limit)"
            " ON CONFLICT (scope, role_id) DO UPDATE SET daily_limit = excluded.daily_limit",
            limit=limit,
            **key,
        )
    await _audit(tx, c, "set_role_limit", role, old, limit)
    return old, limit


async def reset_usage(tx: Tx, c: Change, user: int) -> tuple[int, int]:
    key = {"scope": c.scope, "user": user, "day": c.now.date()}
    where = "WHERE scope = :scope AND user_id = :user AND day = :day"
    old = await tx.val(f"SELECT used + extra_used FROM member_days {where} FOR UPDATE", **key) or 0
    # Holds stay (their jobs are still running); extra images already spent are not refunded;
    # the server's total stays too, since it is what the owner is billed for.
    await tx.run(f"UPDATE member_days SET used = 0, extra_used = 0 {where}", **key)
    await _audit(tx, c, "reset_usage", user, old, 0)
    return old, 0


async def role_limits(tx: Tx, scope: int) -> dict[int, int]:
    rows = await tx.all(
        "SELECT role_id, daily_limit FROM role_limits WHERE scope = :scope"
        " ORDER BY daily_limit DESC, role_id",
        scope=scope,
    )
    return {row["role_id"]: row["daily_limit"] for row in rows}


async def audit_log(tx: Tx, scope: int, limit: int, target: int | None) -> list[AuditEntry]:
    rows = await tx.all(
        "SELECT id, scope, actor, action, target, old, new, at FROM audit WHERE scope = :scope"
        " AND (CAST(:target AS BIGINT) IS NULL OR target = :target) ORDER BY id DESC LIMIT :limit",
        **dict(scope=scope, target=target, limit=limit),
    )
    decoded = (
        {"old": as_json(r["old"]), "new": as_json(r["new"]), "at": as_time(r["at"])} for r in rows
    )
    return [AuditEntry(**{**dict(r), **d}) for r, d in zip(rows, decoded, strict=True)]


# ---- the owner's switches ----


def _state(row: Row, limits: Limits) -> BotState:
    return BotState(
        paused=row["paused"] == "1",
        global_cap=global_cap_in_force(row["global_cap"], limits),
        global_cap_overridden=row["global_cap"] is not None,
    )


async def bot_state(tx: Tx, limits: Limits) -> BotState:
    row = await tx.one(f"SELECT {SWITCHES}")
    assert row is not None
    return _state(row, limits)


async def set_switch(
    tx: Tx, c: Change, key: str, value: str | None, limits: Limits
) -> tuple[Any, Any]:
    """Set (None: clear) a switch of the owner's: `PAUSED` ("1"/"0") or `GLOBAL_CAP`."""
    old = await tx.val("SELECT value FROM meta WHERE key = :key FOR UPDATE", key=key)
    if value is None:
        await tx.run("DELETE FROM meta WHERE key = :key", key=key)
    else:
        await set_meta(tx, key, value)
    if key == PAUSED:
        before, after, action = old == "1", value == "1", "pause" if value == "1" else "resume"
    else:
        before, after = global_cap_in_force(old, limits), global_cap_in_force(value, limits)
        action = "set_global_cap"
    await _audit(tx, c, action, None, before, after)
    return before, after


async def get_meta(tx: Tx, key: str) -> str | None:
    value: str | None = await tx.val("SELECT value FROM meta WHERE key = :key", key=key)
    return value


async def set_meta(tx: Tx, key: str, value: str) -> None:
    sql = "INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO UPDATE"
    await tx.run(f"{sql} SET value = excluded.value", key=key, value=value)


async def delete_meta(tx: Tx, keys: list[str]) -> None:
    await tx.each("DELETE FROM meta WHERE key = :key", [{"key": key} for key in keys])


async def meta_items(tx: Tx, prefix: str) -> dict[str, str]:
    # Not LIKE: prefixes may hold `_` or `%`.
    rows = await tx.all(
        "SELECT key, value FROM meta WHERE substr(key, 1, length(:prefix)) = :prefix", prefix=prefix
    )
    return {row["key"]: row["value"] for row in rows}


# ---- reports ----


# Each reservation's day, scope, kind of job (an edit without one), what it charged and what Wan
# billed for its job (a reservation serves one job); retention's sums of purged days (`usage_days`)
# are made from these same rows.
PER_RESERVATION = (
    "SELECT r.day, r.scope, COALESCE(j.options->>'kind', 'edit') AS kind, r.charged,"
    " COALESCE(j.billed, 0) AS billed FROM reservations AS r LEFT JOIN jobs AS j"
    " ON j.reservation_id = r.id"
)


async def server_totals(tx: Tx, scope: int, now: datetime, limits: Limits) -> ServerTotals:
    """One statement: one snapshot. `billed`/`undelivered`: what Wan billed for the scope's jobs
    finished today, and of it what never reached the member."""
    day = now.date()
    row = await tx.one(
        "SELECT s.default_limit, s.daily_cap, COALESCE(sd.used, 0) AS used,"
        " COALESCE(sd.held, 0) AS held,"
        " (SELECT count(*) FROM member_days WHERE scope = :scope AND day = :day) AS users,"
        " b.billed, b.undelivered FROM (SELECT 1) AS one"
        " LEFT JOIN scope_settings AS s ON s.scope = :scope"
        " LEFT JOIN scope_days AS sd ON sd.scope = :scope AND sd.day = :day"
        " CROSS JOIN (SELECT COALESCE(sum(billed), 0) AS billed, COALESCE(sum(CASE WHEN"
        " billed > COALESCE(generated, 0) THEN billed - COALESCE(generated, 0) ELSE 0 END), 0)"
        " AS undelivered FROM jobs WHERE scope = :scope AND billed > 0 AND finished_at >= :start) AS b",
        scope=scope,
        day=day,
        start=datetime.combine(day, time(), UTC),
    )
    assert row is not None
    return ServerTotals(
        used=row["used"],
        held=row["held"],
        cap=row["daily_cap"],
        default_limit=row["default_limit"],
        users=row["users"],
        resets_at=next_reset(day),
        ceiling=limits.server_ceiling if scope else None,
        billed=int(row["billed"]),
        undelivered=int(row["undelivered"]),
    )


async def usage_report(
    tx: Tx, scope: int | None, now: datetime, days: int, top: int, limits: Limits
) -> UsageReport:
    """Several statements (`Store.usage_report`): the caller runs them in one snapshot."""
    today = now.date()
    first = today - timedelta(days=days - 1)
    mine = "(CAST(:scope AS BIGINT) IS NULL OR {} = :scope)"
    p = {"first": first, "scope": scope, "today": today, "top": top}

    # Days past the retention horizon are in `usage_days`. Billed images of jobs other than
    # edits are priced apart in the reports: per day and, today, per scope.
    charged: dict[date, int] = {}
    billed: dict[date, int] = {}
    kinds: dict[date, dict[str, int]] = {}
    kinds_today: dict[int, dict[str, int]] = {}
    for row in await tx.all(
        f"SELECT day, scope, kind, SUM(charged), SUM(billed) FROM ({PER_RESERVATION} UNION ALL"
        " SELECT day, scope, kind, charged, billed FROM usage_days) AS b WHERE day >= :first"
        f" AND {mine.format('scope')} GROUP BY day, scope, kind",
        **p,
    ):
        day, kind, images = as_day(row[0]), row[2], int(row[4])
        charged[day] = charged.get(day, 0) + int(row[3])
        billed[day] = billed.get(day, 0) + images
        if kind != "edit" and images > 0:
            per_day = kinds.setdefault(day, {})
            per_day[kind] = per_day.get(kind, 0) + images
            if day == today:
                kinds_today.setdefault(row[1], {})[kind] = images
    refused: dict[date, dict[str, int]] = {}
    refused_by_scope: dict[int, dict[str, int]] = {}
    for row in await tx.all(
        "SELECT day, scope, reason, images FROM refusal_days WHERE day >= :first AND"
        f" {mine.format('scope')}",
        **p,
    ):
        day, reason, images = as_day(row[0]), row[2], int(row[3])
        per_day = refused.setdefault(day, {})
        per_day[reason] = per_day.get(reason, 0) + images
        if day == today:
            refused_by_scope.setdefault(row[1], {})[reason] = images
    spans = (today - timedelta(days=offset) for offset in range(days - 1, -1, -1))
    day_rows = [
        DayUsage(d, charged.get(d, 0), billed.get(d, 0), refused.get(d, {}), k)
        for d, k in ((d, kinds.get(d, {})) for d in spans)
    ]
    top_members = [
        (row[0], row[1], int(row[2]))
        for row in await tx.all(
            "SELECT scope, user_id, SUM(charged) AS n FROM reservations WHERE day = :today AND"
            f" status = 'settled' AND charged > 0 AND {mine.format('scope')}"
            " GROUP BY scope, user_id ORDER BY n DESC, user_id LIMIT :top",
            **p,
        )
    ]
    servers = [
        (row[0], int(row[1] or 0), int(row[2] or 0))
        for row in await tx.all(
            "SELECT sd.scope, (SELECT SUM(r.charged) FROM reservations AS r WHERE"
            " r.scope = sd.scope AND r.day = sd.day) AS charged,"
            " (SELECT SUM(COALESCE(j.billed, 0)) FROM reservations AS r"
            " JOIN jobs AS j ON j.reservation_id = r.id WHERE r.scope = sd.scope AND r.day = sd.day)"
            f" AS billed FROM scope_days AS sd WHERE sd.day = :today AND {mine.format('sd.scope')}"
            # NULLS LAST: a server with no job today after one whose jobs billed nothing.
            " ORDER BY billed DESC NULLS LAST, sd.used DESC, sd.scope LIMIT :top",
            **p,
        )
    ]
    row = await tx.one(
        f"SELECT COALESCE(bd.used, 0) AS used, COALESCE(bd.held, 0) AS held, {SWITCHES}"
        " FROM (SELECT 1) AS one LEFT JOIN bot_days AS bd ON bd.day = :today",
        today=today,
    )
    assert row is not None
    state = _state(row, limits)
    return UsageReport(
        scope, day_rows, top_members, servers, state.global_cap, row["used"], row["held"],
        state.paused, next_reset(today), refused_by_scope, kinds_today,
    )  # fmt: skip


async def busiest_scopes(tx: Tx, now: datetime, days: int, top: int) -> list[tuple[int, int]]:
    rows = await tx.all(
        "SELECT scope, SUM(used) AS n FROM scope_days WHERE day >= :first"
        " GROUP BY scope HAVING SUM(used) > 0 ORDER BY n DESC, scope LIMIT :top",
        first=now.date() - timedelta(days=days - 1),
        top=top,
    )
    return [(row[0], int(row[1])) for row in rows]
