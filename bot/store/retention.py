"""Retention (WANBOT_RETENTION_DAYS), as functions of one `Tx`: finished jobs, their reservations
and result index, per-member day rows and the audit go once older than the horizon, in batches of
`BATCH` rows a transaction; what the usage reports read of them is first added to `usage_days` in
the same transaction. Unfinished jobs and held reservations stay; so do the per-server and bot-wide
day totals (the caps' ledger, no member in them). One process purges a day (`claim`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.store.admin import PER_RESERVATION
from bot.store.driver import Driver, Tx

BATCH = 500
# How long a claimed purge keeps others off; a process that dies in it leaves the next try then.
CLAIM_FOR = timedelta(hours=1)
_NEXT = "retention:next"  # (meta) when the next purge is due, in Unix seconds
_ENDED = "('done', 'failed', 'cancelled')"
# A job that another job was made from stays while that one does (its footer names it).
_NOT_KEPT = (
    f"j.state IN {_ENDED} AND j.finished_at < :cutoff"
    " AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_job_id = j.id)"
)
# Closed reservations of old days with no job that must stay (a reservation serves one job).
_RESERVATIONS = (
    "SELECT r.id FROM reservations AS r WHERE r.day < :day AND r.status <> 'held'"
    " AND NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.reservation_id = r.id AND NOT"
    f" ({_NOT_KEPT})) ORDER BY r.id LIMIT :batch FOR UPDATE OF r SKIP LOCKED"
)
_SUM = (
    "INSERT INTO usage_days (day, scope, kind, charged, billed) SELECT day, scope, kind,"
    f" SUM(charged), SUM(billed) FROM ({PER_RESERVATION} WHERE r.id IN (:ids)) AS b"
    " GROUP BY day, scope, kind ON CONFLICT (day, scope, kind) DO UPDATE"
    " SET charged = usage_days.charged + excluded.charged,"
    " billed = usage_days.billed + excluded.billed"
)
_UNRESERVED = (
    f"SELECT j.id FROM jobs AS j WHERE j.reservation_id IS NULL AND {_NOT_KEPT}"
    " ORDER BY j.id LIMIT :batch FOR UPDATE OF j SKIP LOCKED"
)
# Holds keep their member's day (a settlement still writes to it).
_MEMBER_DAYS = (
    "DELETE FROM member_days WHERE (scope, user_id, day) IN (SELECT scope, user_id, day"
    " FROM member_days WHERE day < :day AND held = 0 AND extra_held = 0 LIMIT :batch)"
)
_AUDIT = (
    "DELETE FROM audit WHERE id IN"
    " (SELECT id FROM audit WHERE at < :cutoff ORDER BY id LIMIT :batch)"
)


@dataclass
class Purged:
    """What a purge removed, and in how many transactions."""

    jobs: int = 0
    reservations: int = 0
    member_days: int = 0
    audit: int = 0
    batches: int = 0


async def purge(driver: Driver, now: datetime, days: int, batch: int) -> Purged | None:
    """Everything older than `days` days, if this process is the one to purge now; else None."""
    if not await driver.write(claim, now):
        return None
    cutoff = now - timedelta(days=days)
    purged = Purged()
    for step in (reservations, unreserved_jobs, member_days, audit):
        while True:
            removed = await driver.write(step, cutoff, cutoff.date(), batch)
            purged.batches += 1
            for what, count in removed.items():
                setattr(purged, what, getattr(purged, what) + count)
            # Until a batch finds nothing: a job made from another lets it go in the next one.
            if not any(removed.values()):
                break
    await driver.write(done, now)
    return purged


async def claim(tx: Tx, now: datetime) -> bool:
    """Whether this process is the one to purge now: one is due, and no other is at it."""
    row = await tx.one(
        "INSERT INTO meta (key, value) VALUES (:key, :until) ON CONFLICT (key) DO UPDATE"
        " SET value = excluded.value WHERE CAST(meta.value AS BIGINT) <= :now RETURNING key",
        **{"key": _NEXT, "now": int(now.timestamp()), "until": _text(now + CLAIM_FOR)},
    )
    return row is not None


async def done(tx: Tx, now: datetime) -> None:
    """The next purge is due a day after this one."""
    sql = "UPDATE meta SET value = :next WHERE key = :key"
    await tx.run(sql, key=_NEXT, next=_text(now + timedelta(days=1)))


def _text(at: datetime) -> str:
    return str(int(at.timestamp()))


async def _drop_jobs(tx: Tx, jobs: list[int]) -> None:
    if jobs:
        await tx.run("DELETE FROM job_results WHERE job_id IN (:ids)", ids=jobs)
        await tx.run("DELETE FROM jobs WHERE id IN (:ids)", ids=jobs)


async def reservations(tx: Tx, cutoff: datetime, day: date, batch: int) -> dict[str, int]:
    """Old closed reservations and their jobs, summed into `usage_days` first."""
    ids = [r["id"] for r in await tx.all(_RESERVATIONS, day=day, cutoff=cutoff, batch=batch)]
    if not ids:
        return {}
    await tx.run(_SUM, ids=ids)
    rows = await tx.all("SELECT id FROM jobs WHERE reservation_id IN (:ids)", ids=ids)
    await _drop_jobs(tx, [r["id"] for r in rows])
    await tx.run("DELETE FROM reservations WHERE id IN (:ids)", ids=ids)
    return {"jobs": len(rows), "reservations": len(ids)}


async def unreserved_jobs(tx: Tx, cutoff: datetime, day: date, batch: int) -> dict[str, int]:
    """Old finished jobs that never held a reservation: nothing of them to sum."""
    jobs = [r["id"] for r in await tx.all(_UNRESERVED, cutoff=cutoff, batch=batch)]
    await _drop_jobs(tx, jobs)
    return {"jobs": len(jobs)}


async def member_days(tx: Tx, cutoff: datetime, day: date, batch: int) -> dict[str, int]:
    return {"member_days": await tx.run(_MEMBER_DAYS, day=day, batch=batch)}


async def audit(tx: Tx, cutoff: datetime, day: date, batch: int) -> dict[str, int]:
    return {"audit": await tx.run(_AUDIT, cutoff=cutoff, batch=batch)}
