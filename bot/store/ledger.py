"""Reserving and settling images, written once for both engines: operations that queue up share one
transaction (`Ledger`), decided in order on rows read once, written with one statement per table.
Locks in one order (job, reservations, members, the bot's days, to the commit); every change to a
day's counters is made under its `bot_days` lock, so no two processes grant past a bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from functools import cache
from typing import Any, NamedTuple

from bot.store.driver import Row, Tx, as_day
from bot.store.errors import NotFound, QuotaRefused
from bot.store.models import BOT_SCOPE, Limits, QuotaStatus, Reservation
from bot.store.quota import (
    OWNER_ALLOWANCE,
    SWITCHES,
    Snapshot,
    charge_split,
    global_cap_in_force,
    refused,
    status,
)

log = logging.getLogger(__name__)
MAX_BATCH = 64

SNAPSHOT = f"""
SELECT m.daily_limit AS user_limit, COALESCE(m.extra, 0) AS extra,
       COALESCE(m.blocked, false) AS blocked, s.default_limit, s.daily_cap,
       COALESCE(d.used, 0) AS used, COALESCE(d.held, 0) AS held,
       COALESCE(d.extra_used, 0) AS extra_used, COALESCE(d.extra_held, 0) AS extra_held,
       COALESCE(sd.used, 0) AS server_used, COALESCE(sd.held, 0) AS server_held,
       r.role_id, r.daily_limit AS role_limit,
       COALESCE(bd.used, 0) AS bot_used, COALESCE(bd.held, 0) AS bot_held, {SWITCHES}
FROM (SELECT 1) AS one
LEFT JOIN members AS m ON m.scope = :scope AND m.user_id = :user
LEFT JOIN scope_settings AS s ON s.scope = :scope
LEFT JOIN member_days AS d ON d.scope = :scope AND d.user_id = :user AND d.day = :day
LEFT JOIN scope_days AS sd ON sd.scope = :scope AND sd.day = :day
LEFT JOIN (
    SELECT role_id, daily_limit FROM role_limits WHERE scope = :scope AND role_id IN (:roles)
    ORDER BY daily_limit DESC, role_id LIMIT 1
) AS r ON true
LEFT JOIN bot_days AS bd ON bd.day = :day
"""
_RESERVATIONS = (
    "SELECT id, scope, user_id, day, images, from_extra, status FROM reservations"
    " WHERE id IN (:ids) ORDER BY id FOR UPDATE"
)
_ORPHAN = (
    "r.status = 'held' AND r.created_at <= :cutoff AND NOT EXISTS (SELECT 1 FROM jobs AS j"
    " WHERE j.reservation_id = r.id AND j.state NOT IN ('done', 'failed', 'cancelled'))"
)
# (Re)made and locked: the no-op update is there for its row lock.
_LOCK_DAY = (
    "INSERT INTO bot_days (day) VALUES (:day)"
    " ON CONFLICT (day) DO UPDATE SET held = bot_days.held RETURNING day"
)
_LOCK_MEMBER = "SELECT scope FROM members WHERE scope = :scope AND user_id = :user FOR UPDATE"
# The day rows a batch adds to, in the order they are written: their key columns, then their
# counters (as in `_Batch.counts`).
_DAYS = {
    "scope_days": (("scope", "day"), ("used", "held")),
    "member_days": (("scope", "user_id", "day"), ("used", "held", "extra_used", "extra_held")),
    "bot_days": (("day",), ("used", "held")),
}


@cache
def _add_to(table: str, made: bool) -> str:
    """Add to a day row's counters: UPDATE a row that exists (a settlement's, made by its
    reservation; the bot's day, made when locked), else INSERT it, adding on a conflict. Not one
    upsert for both: a settlement's negative `held` would fail the CHECK on the row it proposes."""
    keys, counters = _DAYS[table]
    if made:
        sets = ", ".join(f"{c} = {c} + :{c}" for c in counters)
        return f"UPDATE {table} SET {sets} WHERE " + " AND ".join(f"{k} = :{k}" for k in keys)
    names = keys + counters
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(f':{n}' for n in names)})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


@dataclass(frozen=True)
class Policy:
    """The owner's settings the rules need: WAN_DEFAULT_DAILY_LIMIT and the `Limits`."""

    default_limit: int
    limits: Limits

    def ceiling(self, scope: int) -> int | None:
        """The owner's WAN_SERVER_DAILY_LIMIT, for servers (DMs have their own limit)."""
        return self.limits.server_ceiling if scope > 0 else None


class Reserve(NamedTuple):
    scope: int
    user: int
    images: int
    roles: tuple[int, ...]
    now: datetime


class Close(NamedTuple):
    """Settle (charging up to `generated`) or release a reservation. `billed`: the images Wan
    billed for it, which count against the server's and the bot-wide day even where more than the
    member is charged (a result delivered to no one): the owner's caps bound the bill."""

    reservation_id: int
    generated: int
    now: datetime
    settle: bool = True
    billed: int = 0


Op = Reserve | Close


_COUNTS = ("extra", "used", "held", "server_used", "server_held", "bot_used", "bot_held")


def make_snapshot(row: Row, scope: int, policy: Policy, delta: dict[str, int]) -> Snapshot:
    """The rules' view of one member from the snapshot row, plus what this batch already changed."""
    dm, owner, limits = scope == 0, scope == BOT_SCOPE, policy.limits
    dm_limit = policy.default_limit if limits.dm_daily is None else limits.dm_daily
    return Snapshot(
        **{name: row[name] + delta.get(name, 0) for name in _COUNTS},
        user_limit=row["user_limit"],
        server_default=row["default_limit"],
        # The owner's own jobs (`python -m bot edit`): no member limit and no server ceiling;
        # the bot-wide cap and the pause still apply.
        global_default=OWNER_ALLOWANCE if owner else dm_limit if dm else policy.default_limit,
        blocked=bool(row["blocked"]),
        cap=row["daily_cap"],
        role_id=row["role_id"],
        role_limit=row["role_limit"],
        paused=row["paused"] == "1",
        bot_cap=global_cap_in_force(row["global_cap"], limits),
        ceiling=None if owner else limits.server_ceiling,
        dm=dm,
    )


def snapshot_params(scope: int, user: int, roles: Sequence[int], day: date) -> dict[str, Any]:
    # Roles count only in servers: DMs have none, and scope 0 must not match a role id.
    return dict(scope=scope, user=user, day=day, roles=[int(r) for r in roles] if scope else [])


async def quota_status(
    tx: Tx, scope: int, user: int, roles: Sequence[int], now: datetime, policy: Policy
) -> QuotaStatus:
    day = now.date()
    row = await tx.one(SNAPSHOT, **snapshot_params(scope, user, roles, day))
    assert row is not None
    snap = make_snapshot(row, scope, policy, {})
    return status(snap, day=day, extra_used=row["extra_used"], extra_held=row["extra_held"])


@dataclass
class _Batch:
    """What a batch changed so far, applied at its end (`_flush`). `counts`: per row, keyed by its
    table and key, what to add to [used, held] (days) or [used, held, extra_used, extra_held]."""

    counts: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    extra: dict[tuple[int, int], int] = field(default_factory=dict)
    refusals: dict[tuple[int, date, str], list[int]] = field(default_factory=dict)
    closed: set[Any] = field(default_factory=set)  # reservation ids, and the rows they touched
    opened: list[tuple[int, Reservation, datetime]] = field(default_factory=list)
    closes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, key: tuple[Any, ...], *deltas: int) -> None:
        row = self.counts.get(key)
        if row is None:
            self.counts[key] = list(deltas)
        else:
            for i, delta in enumerate(deltas):
                row[i] += delta

    def seen(self, scope: int, user: int, day: date) -> dict[str, int]:
        """What this batch changed so far for the member's snapshot."""
        md = self.counts.get(("member_days", scope, user, day), _NONE)
        sd = self.counts.get(("scope_days", scope, day), _NONE)
        bd = self.counts.get(("bot_days", day), _NONE)
        extra = self.extra.get((scope, user), 0)
        seen = dict(zip(_COUNTS, (extra, md[0], md[1], sd[0], sd[1], bd[0], bd[1]), strict=True))
        return {**seen, "extra_held": md[3]}


_NONE = [0, 0, 0, 0]


async def apply(tx: Tx, ops: Sequence[Op], policy: Policy) -> list[Any]:
    """Run `ops` in the caller's write transaction; per op its outcome: a `Reservation` or the
    `QuotaRefused` to raise (counted), the images charged (None: already closed), or `NotFound`."""
    closing = sorted({op.reservation_id for op in ops if isinstance(op, Close)})
    found = {r["id"]: r for r in await tx.all(_RESERVATIONS, ids=closing)} if closing else {}
    batch = _Batch()
    outcomes: list[Any] = [None] * len(ops)
    # Settlements first (operations that came together may be applied in any order): they need
    # no day's counters to decide, so theirs are written before the days are locked.
    for index, op in enumerate(ops):
        if isinstance(op, Close):
            row = found.get(op.reservation_id)
            missing = NotFound(f"no reservation {op.reservation_id}")
            outcomes[index] = missing if row is None else _close(batch, op, row)
    await tx.each(
        "UPDATE reservations SET status = :status, charged = :charged, closed_at = :now"
        " WHERE id = :id",
        batch.closes,
    )
    reserves = [(index, op) for index, op in enumerate(ops) if isinstance(op, Reserve)]
    members = sorted({(op.scope, op.user) for _, op in reserves})
    await tx.each(_LOCK_MEMBER, [{"scope": s, "user": u} for s, u in members])
    days = {op.now.date() for _, op in reserves} | {as_day(r["day"]) for r in found.values()}
    await tx.each(_LOCK_DAY, [{"day": d} for d in sorted(days)])
    rows = await tx.each(
        SNAPSHOT, [snapshot_params(o.scope, o.user, o.roles, o.now.date()) for _, o in reserves]
    )
    for (index, op), row in zip(reserves, rows, strict=True):
        outcomes[index] = _reserve(batch, op, row, policy, index)
    await _flush(tx, batch, outcomes)
    return outcomes


def _reserve(
    batch: _Batch, op: Reserve, row: Row, policy: Policy, index: int
) -> Reservation | QuotaRefused | None:
    day = op.now.date()
    seen = batch.seen(op.scope, op.user, day)
    snap = make_snapshot(row, op.scope, policy, seen)
    reason = snap.refusal(op.images)
    if reason is not None:
        counts = batch.refusals.setdefault((op.scope, day, reason), [0, 0])
        counts[0], counts[1] = counts[0] + 1, counts[1] + op.images
        held = row["extra_held"] + seen["extra_held"]
        return refused(snap, reason, images=op.images, scope=op.scope, day=day, extra_held=held)
    from_daily, from_extra = snap.split(op.images)
    batch.add(("scope_days", op.scope, day), 0, op.images)
    batch.add(("bot_days", day), 0, op.images)
    batch.add(("member_days", op.scope, op.user, day), 0, from_daily, 0, from_extra)
    # Extra images leave the balance when held, so two jobs cannot spend the same ones.
    if from_extra:
        batch.extra[(op.scope, op.user)] = batch.extra.get((op.scope, op.user), 0) - from_extra
    # The reservation's id is filled in once its row is written.
    batch.opened.append(
        (index, Reservation(0, op.scope, op.user, op.images, day, from_extra), op.now)
    )
    return None


def _close(batch: _Batch, op: Close, row: Row) -> int | None:
    if row["status"] != "held" or op.reservation_id in batch.closed:
        return None
    batch.closed.add(op.reservation_id)
    scope, user, day = row["scope"], row["user_id"], as_day(row["day"])
    images, from_extra = row["images"], row["from_extra"]
    daily, extra = charge_split(images, from_extra, op.generated)
    charged = daily + extra
    status = "settled" if op.settle else "released"
    batch.closes.append(
        {"id": op.reservation_id, "status": status, "charged": charged, "now": op.now}
    )
    # Charged to the day the reservation was made, whatever day it is now.
    keys = (("scope_days", scope, day), ("bot_days", day), ("member_days", scope, user, day))
    counted = max(charged, op.billed)
    batch.add(keys[0], counted, -images)
    batch.add(keys[1], counted, -images)
    batch.add(keys[2], daily, -(images - from_extra), extra, -from_extra)
    batch.closed.update(keys)
    # Unused extra images go back to the balance, which never expires.
    if from_extra > extra:
        batch.extra[(scope, user)] = batch.extra.get((scope, user), 0) + from_extra - extra
    return charged


async def _flush(tx: Tx, batch: _Batch, outcomes: list[Any]) -> None:
    """Write what the batch changed; fill in the new reservations."""
    ids = await tx.each(
        "INSERT INTO reservations (scope, user_id, day, images, from_extra, created_at)"
        " VALUES (:scope, :user, :day, :images, :from_extra, :now) RETURNING id",
        [{**asdict(r), "now": now} for _, r, now in batch.opened],
    )
    for (index, reservation, _), row in zip(batch.opened, ids, strict=True):
        outcomes[index] = replace(reservation, id=row["id"])
    for table, (keys, counters) in _DAYS.items():
        rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for key, deltas in batch.counts.items():
            if key[0] == table:
                made = key in batch.closed or table == "bot_days"
                rows[made].append(dict(zip(keys + counters, key[1:] + tuple(deltas), strict=True)))
        for made, params in rows.items():
            await tx.each(_add_to(table, made), params)
    await tx.each(
        "UPDATE members SET extra = extra + :extra WHERE scope = :scope AND user_id = :user",
        [{"scope": s, "user": u, "extra": n} for (s, u), n in batch.extra.items() if n],
    )
    await tx.each(
        "INSERT INTO refusal_days (scope, day, reason, requests, images)"
        " VALUES (:scope, :day, :reason, :requests, :images) ON CONFLICT (scope, day, reason)"
        " DO UPDATE SET requests = refusal_days.requests + excluded.requests,"
        " images = refusal_days.images + excluded.images",
        [
            {"scope": s, "day": d, "reason": r, "requests": n, "images": i}
            for (s, d, r), (n, i) in batch.refusals.items()
        ],
    )


async def release_orphans(
    tx: Tx, ids: list[int], cutoff: datetime, now: datetime, policy: Policy
) -> int:
    """Release those of `ids` that, under their row lock, are still held reservations older than
    `cutoff` that no unfinished job refers to. SKIP LOCKED: one another process is closing right
    now is in hand, so processes starting together share the work without waiting."""
    orphans = await tx.each(
        f"SELECT r.id FROM reservations AS r WHERE r.id = :id AND {_ORPHAN}"
        " FOR UPDATE OF r SKIP LOCKED",
        [{"id": i, "cutoff": cutoff} for i in sorted(ids)],
    )
    outcomes = await apply(tx, [Close(r["id"], 0, now, settle=False) for r in orphans], policy)
    return sum(1 for o in outcomes if o is not None)


async def orphan_candidates(tx: Tx, cutoff: datetime) -> list[int]:
    rows = await tx.all(
        f"SELECT r.id FROM reservations AS r WHERE {_ORPHAN} ORDER BY r.id", cutoff=cutoff
    )
    return [r["id"] for r in rows]


class Ledger:
    """Queues reservations and settlements and runs each batch through `write` (a write
    transaction of the driver). A caller cancelled while its reservation was committed will never
    settle it: it is released again at once."""

    def __init__(self, write: Callable[[list[Op]], Awaitable[list[Any]]]) -> None:
        self._write = write
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((op, future))
        if self._runner is None:
            self._runner = loop.create_task(self._drain())
        return future

    async def run(self, op: Op) -> Any:
        """`op`'s outcome; raised when it is an exception (`QuotaRefused`, `NotFound`)."""
        outcome = await self.submit(op)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def wait_idle(self) -> None:
        while self._runner is not None:
            await asyncio.shield(self._runner)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = [(op, f) for op, f in self._pending[:MAX_BATCH] if not f.cancelled()]
                del self._pending[:MAX_BATCH]
                await self._run(batch)
        finally:
            self._runner = None

    async def _run(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        if not batch:
            return
        try:
            outcomes = await self._write([op for op, _ in batch])
        except BaseException as err:  # the commit failed (or never started): none of them happened
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        for (op, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
            elif isinstance(outcome, Reservation):
                log.info("reservation %d abandoned by a cancelled caller; releasing it", outcome.id)
                undo = Close(outcome.id, 0, op.now, settle=False)
                self.submit(undo).add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not release an abandoned reservation: %s", future.exception())
