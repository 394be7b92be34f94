"""Job rows, as functions of one `Tx`. Every write locks the job's row first (then its hold's, in
`ledger`), so a finish racing a late change is decided by whoever locks first and the loser sees
the final state. Every write is fenced (`_fence`): `LeaseLost` unless the job is still its
`Lease`'s, or, without one, while a process holds a live lease on it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.store.checks import JOB_COLUMNS, JSON_COLUMNS, TIME_COLUMNS
from bot.store.driver import Doc, Row, Tx, as_json, as_time
from bot.store.errors import ActiveJobLimit, LeaseLost, NotFound
from bot.store.ledger import Close, Policy, apply
from bot.store.models import FINISHED, Job, JobState, Lease

# The channel every process's shared queue LISTENs to: a job was queued or a Wan slot freed.
CHANNEL = "wanbot_jobs"
# States that hold a Wan slot once a job is past its claim (see `queue`).
SLOT_STATES = ("submitted", "running")
# pg_advisory_xact_lock(key, user) space of the per-member admission lock ("wj").
_MEMBER_LOCK = 0x776A
_SELECT = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
UNFINISHED = "state NOT IN ('done', 'failed', 'cancelled')"  # matches the partial index


def _value(name: str, value: Any) -> Any:
    if name in JSON_COLUMNS and value is not None:
        return Doc(value)
    return JobState(value).value if name == "state" and value is not None else value


def decode(row: Row) -> Job:
    values = {name: row[name] for name in JOB_COLUMNS}
    for name in TIME_COLUMNS:
        values[name] = as_time(values[name])
    for name in JSON_COLUMNS:
        values[name] = as_json(values[name])
    values["state"] = JobState(values["state"])
    return Job(**values)


def _assignments(changes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    sql = ", ".join(f"{name} = :{name}" for name in changes)
    return sql, {name: _value(name, value) for name, value in changes.items()}


async def get(tx: Tx, job_id: int) -> Job | None:
    row = await tx.one(f"{_SELECT} WHERE id = :id", id=job_id)
    return decode(row) if row else None


async def _index_results(tx: Tx, job_id: int, message_ids: list[int]) -> None:
    await tx.run("DELETE FROM job_results WHERE job_id = :job", job=job_id)
    await tx.each(
        "INSERT INTO job_results (message_id, job_id) VALUES (:message, :job)"
        " ON CONFLICT (message_id) DO UPDATE SET job_id = excluded.job_id",
        [{"message": int(m), "job": job_id} for m in message_ids],
    )


async def _fence(tx: Tx, job_id: int, lease: Lease | None) -> Row:
    """Lock the job's row and return it (`NotFound`: no such job). With a lease: `LeaseLost` unless
    the job is still this lease's, and the lease renewed. Without: `LeaseLost` while a process holds
    a live claim on it (epoch above 0: only the shared queue claims; a terminal's `hold` on the job
    it made is not a claim, and it writes that job alone)."""
    live = "lease_owner IS NOT NULL AND lease_epoch > 0 AND lease_expires_at > CURRENT_TIMESTAMP"
    row = await tx.one(
        f"SELECT state, reservation_id, billed, extra, lease_owner, lease_epoch, ({live}) AS leased"
        " FROM jobs WHERE id = :id FOR UPDATE",
        id=job_id,
    )
    if row is None:
        raise NotFound(f"no job {job_id}")
    if lease is None and row["leased"]:
        raise LeaseLost(job_id)
    if lease is not None:
        if row["lease_owner"] != lease.owner or row["lease_epoch"] != lease.epoch:
            raise LeaseLost(job_id)
        sql = "UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => :ttl)"
        await tx.run(f"{sql} WHERE id = :id", id=job_id, ttl=lease.ttl)
    return row


async def _notify_if_slot_freed(tx: Tx, old: str, new: str, shared: bool) -> None:
    # Delivered at commit: other processes waiting for a slot try to claim again.
    if shared and old in SLOT_STATES and new not in SLOT_STATES:
        await tx.run("SELECT pg_notify(:channel, 'slot')", channel=CHANNEL)


async def create(
    tx: Tx, values: dict[str, Any], now: datetime, max_active: int | None, shared: bool
) -> Job:
    if max_active is not None:
        if shared:
            # Serialises one member's admissions across processes; the count then sees every
            # committed job of theirs (READ COMMITTED: each statement takes a fresh snapshot).
            # 32-bit lock keys: the snowflake folded (a clash only makes two members wait).
            user = values["user_id"]
            key = ((user >> 32) ^ user) & 0x7FFFFFFF
            await tx.run("SELECT pg_advisory_xact_lock(:space, :key)", space=_MEMBER_LOCK, key=key)
        active = await active_count(tx, values["user_id"])
        if active >= max_active:
            raise ActiveJobLimit(active)
    values = {**values, "created_at": now, "updated_at": now}
    names = [n for n in JOB_COLUMNS if n != "id" and n in values]
    row = await tx.one(
        f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join(f':{n}' for n in names)})"
        f" RETURNING {', '.join(JOB_COLUMNS)}",
        **{n: _value(n, values[n]) for n in names},
    )
    assert row is not None
    job = decode(row)
    if job.result_message_ids:
        await _index_results(tx, job.id, job.result_message_ids)
    return job


async def update(
    tx: Tx, job_id: int, changes: dict[str, Any], now: datetime, lease: Lease | None, shared: bool
) -> Job:
    state = str((await _fence(tx, job_id, lease))["state"])
    if changes.get("state") is not None:
        await _notify_if_slot_freed(tx, state, JobState(changes["state"]).value, shared)
    if JobState(state) in FINISHED:
        # A late "running" after a cancel must not bring a finished job back to life.
        changes = {k: v for k, v in changes.items() if k != "state"}
    sql, values = _assignments({**changes, "updated_at": now})
    returning = ", ".join(JOB_COLUMNS)
    row = await tx.one(
        f"UPDATE jobs SET {sql} WHERE id = :id RETURNING {returning}", id=job_id, **values
    )
    if "result_message_ids" in changes:
        await _index_results(tx, job_id, changes["result_message_ids"] or [])
    assert row is not None
    return decode(row)


async def set_task_id(
    tx: Tx, job_id: int, task_id: str, now: datetime, lease: Lease | None
) -> None:
    await _fence(tx, job_id, lease)
    await tx.run(
        f"UPDATE jobs SET task_id = :task, updated_at = :now,"
        f" state = CASE WHEN {UNFINISHED} THEN 'submitted' ELSE state END,"
        f" submitted_at = CASE WHEN {UNFINISHED} THEN :now ELSE submitted_at END WHERE id = :id",
        **dict(id=job_id, task=task_id, now=now),
    )


async def record_task(tx: Tx, job_id: int, task_id: str, now: datetime) -> bool:
    """The task a job's create made, recorded whoever holds its lease (a job has at most one: its
    create is sent after a fenced SUBMITTED write and never again without a task id), only where
    the job is unfinished and has none; whether it was."""
    row = await tx.one(
        f"UPDATE jobs SET task_id = :task, updated_at = :now"
        f" WHERE id = :id AND task_id IS NULL AND {UNFINISHED} RETURNING id",
        **dict(id=job_id, task=task_id, now=now),
    )
    return row is not None


async def finish(
    tx: Tx,
    job_id: int,
    state: JobState,
    changes: dict[str, Any],
    now: datetime,
    lease: Lease | None,
    policy: Policy,
    shared: bool,
) -> bool:
    """End the job and, in the same transaction, settle (`generated` > 0) or release its hold."""
    row = await _fence(tx, job_id, lease)
    old, reservation = str(row["state"]), row["reservation_id"]
    if JobState(old) in FINISHED:
        return False
    await _notify_if_slot_freed(tx, old, state.value, shared)
    generated = changes["generated"]
    billed = changes.get("billed") or row["billed"] or 0
    if reservation is not None:
        close = Close(reservation, generated, now, settle=generated > 0, billed=billed)
        await apply(tx, [close], policy)
    changes = {**changes, "state": state, "finished_at": now, "updated_at": now}
    if changes.get("billed") is None:
        # Keep what `update_job(billed=...)` recorded when the task succeeded.
        changes.pop("billed", None)
    changes["extra"] = {**(as_json(row["extra"]) or {}), **(changes.get("extra") or {})}
    if changes.get("result_message_ids") is None:
        changes.pop("result_message_ids", None)
    else:
        await _index_results(tx, job_id, changes["result_message_ids"])
    sql, values = _assignments(changes)
    # A finished job leaves the queue's leases.
    sql += ", lease_owner = NULL, lease_expires_at = NULL"
    await tx.run(f"UPDATE jobs SET {sql} WHERE id = :id", id=job_id, **values)
    return True


def _lease_clock(shared: bool) -> tuple[str, str]:
    """SQL for now and for `:ttl` seconds from now on the clock leases are kept by: PostgreSQL's
    own, the one every process on it reads; sqlite's are this process's (`:now`, `:until`)."""
    if shared:
        return "clock_timestamp()", "clock_timestamp() + make_interval(secs => :ttl)"
    return ":now", ":until"


async def hold(
    tx: Tx, owner: str, job_ids: list[int], now: datetime, ttl: float, shared: bool
) -> list[int]:
    """`owner`'s lease on these unfinished jobs, taken where nobody holds one and kept `ttl` more
    seconds, its epoch unchanged (a hold is not a claim: see `queue`); the ids still held."""
    _, until = _lease_clock(shared)
    rows = await tx.all(
        f"UPDATE jobs SET lease_owner = :owner, lease_expires_at = {until}"
        f" WHERE id IN (:ids) AND {UNFINISHED} AND (lease_owner IS NULL OR lease_owner = :owner)"
        " RETURNING id",
        **dict(owner=owner, ids=job_ids, ttl=ttl, now=now, until=now + timedelta(seconds=ttl)),
    )
    return [int(r["id"]) for r in rows]


async def end_abandoned(
    tx: Tx,
    source: str,
    changes: dict[str, Any],
    now: datetime,
    before: datetime,
    policy: Policy,
    shared: bool,
) -> list[int]:
    """`Store.end_abandoned_jobs`; a job held right now (its process renewing it) is skipped. One
    whose Wan task was created, nobody following it, counts every image asked for as billed
    (unless what Wan billed was recorded): the caps then bound whatever Wan made of it."""
    # A lease no longer renewed, or none ever taken (a crash between the job's creation and its
    # first hold, or a job made before holds existed) on a job older than the caller's margin.
    clock, _ = _lease_clock(shared)
    rows = await tx.all(
        f"SELECT id, task_id, billed, options FROM jobs WHERE source = :source AND {UNFINISHED}"
        f" AND ((lease_owner IS NOT NULL AND lease_expires_at < {clock}) OR (lease_owner IS NULL"
        " AND updated_at < :before)) ORDER BY id FOR UPDATE SKIP LOCKED",
        **dict(source=source, now=now, before=before),
    )
    ended = []
    for row in rows:
        job_id, asked = int(row["id"]), int((as_json(row["options"]) or {}).get("count") or 1)
        billed = row["billed"] if row["task_id"] is None or row["billed"] is not None else asked
        ending = {**changes, "billed": billed}
        if await finish(tx, job_id, JobState.FAILED, ending, now, None, policy, shared):
            ended.append(job_id)
    return ended


async def unfinished(tx: Tx) -> list[Job]:
    return [decode(r) for r in await tx.all(f"{_SELECT} WHERE {UNFINISHED} ORDER BY id")]


async def task_owners(tx: Tx, task_ids: list[str]) -> dict[str, int]:
    rows = await tx.all("SELECT task_id, id FROM jobs WHERE task_id IN (:ids)", ids=task_ids)
    return {str(r["task_id"]): int(r["id"]) for r in rows}


async def uncertain_creates(tx: Tx, since: datetime, until: datetime) -> list[Job]:
    rows = await tx.all(
        f"{_SELECT} WHERE task_id IS NULL"
        " AND (state = 'submitted' OR error_code = 'CreateOutcomeUnknown') ORDER BY id"
    )
    # Compared as datetimes here: sqlite's stored times are text.
    found = [decode(r) for r in rows]
    return [j for j in found if since <= (j.submitted_at or j.updated_at) <= until]


async def active_count(tx: Tx, user: int) -> int:
    return int(
        await tx.val(f"SELECT count(*) FROM jobs WHERE user_id = :user AND {UNFINISHED}", user=user)
    )


async def for_user(tx: Tx, user: int, scope: int | None, limit: int) -> list[Job]:
    rows = await tx.all(
        f"{_SELECT} WHERE user_id = :user AND (CAST(:scope AS BIGINT) IS NULL OR scope = :scope)"
        " ORDER BY id DESC LIMIT :limit",
        **dict(user=user, scope=scope, limit=limit),
    )
    return [decode(r) for r in rows]


async def for_message(tx: Tx, message_id: int) -> Job | None:
    # One statement, so one snapshot: the result index first, else the request message.
    row = await tx.one(
        f"{_SELECT} WHERE id = COALESCE((SELECT job_id FROM job_results WHERE message_id = :m),"
        " (SELECT id FROM jobs WHERE message_id = :m ORDER BY id DESC LIMIT 1))",
        m=message_id,
    )
    return decode(row) if row else None
