"""Job rows for PostgreSQL: the job transactions, as functions of one connection.

Every write locks the job's row first (`FOR UPDATE`, or the UPDATE's own lock), so a finish racing a
late state change from another process is decided by whoever locks first, and the loser sees the
final state. Lock order, after the job row: the reservation's rows (see `postgres_quota`).

JSON columns are `jsonb` and times `timestamptz`; the connection's codecs (set up by
`bot.store.postgres`) turn them into Python values and back, so rows need no decoding here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from bot.store.checks import JOB_COLUMNS
from bot.store.errors import ActiveJobLimit, LeaseLost, NotFound
from bot.store.models import FINISHED, Job, JobState, Lease
from bot.store.postgres_quota import close_reservation

# The channel LISTENed to by every process's queue (`postgres_queue`): a job was queued or a Wan
# slot was freed, so a waiting process should try to claim.
CHANNEL = "wanbot_jobs"
# pg_advisory_xact_lock(key, user) space of the per-member admission lock ("wj").
_MEMBER_LOCK = 0x776A
# States that hold a Wan slot once a job is past its claim (see `postgres_queue`).
SLOT_STATES = ("submitted", "running")

_COLUMNS = ", ".join(JOB_COLUMNS)
_SELECT = f"SELECT {_COLUMNS} FROM jobs"
_UNFINISHED_SQL = "state NOT IN ('done', 'failed', 'cancelled')"  # matches the partial index


def _encode(name: str, value: Any) -> Any:
    return JobState(value).value if name == "state" and value is not None else value


def decode(row: asyncpg.Record) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    return Job(**values)


def _assignments(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    """`a = $2, b = $3` for `changes` (the job id is $1) and the values in that order."""
    names = list(changes)
    sql = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
    return sql, [_encode(name, changes[name]) for name in names]


async def get(con: asyncpg.Connection, job_id: int) -> Job | None:
    row = await con.fetchrow(f"{_SELECT} WHERE id = $1", job_id)
    return decode(row) if row else None


async def _index_results(con: asyncpg.Connection, job_id: int, message_ids: list[int]) -> None:
    await con.execute("DELETE FROM job_results WHERE job_id = $1", job_id)
    if message_ids:
        await con.executemany(
            "INSERT INTO job_results (message_id, job_id) VALUES ($1, $2)"
            " ON CONFLICT (message_id) DO UPDATE SET job_id = excluded.job_id",
            [(int(m), job_id) for m in message_ids],
        )


async def _fence(con: asyncpg.Connection, job_id: int, lease: Lease | None) -> str | None:
    """Lock the job's row; its state, or None when there is no such job. With a lease: raise
    `LeaseLost` unless the job is still this lease's, and renew it."""
    if lease is None:
        state: str | None = await con.fetchval(
            "SELECT state FROM jobs WHERE id = $1 FOR UPDATE", job_id
        )
        return state
    row = await con.fetchrow(
        "SELECT state, lease_owner, lease_epoch FROM jobs WHERE id = $1 FOR UPDATE", job_id
    )
    if row is None:
        return None
    if row["lease_owner"] != lease.owner or row["lease_epoch"] != lease.epoch:
        raise LeaseLost(job_id)
    await con.execute(
        "UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => $2)"
        " WHERE id = $1",
        job_id,
        lease.ttl,
    )
    return str(row["state"])


async def _notify_if_slot_freed(con: asyncpg.Connection, old: str, new: str) -> None:
    # Delivered at commit: other processes waiting for a slot try to claim again.
    if old in SLOT_STATES and new not in SLOT_STATES:
        await con.execute("SELECT pg_notify($1, 'slot')", CHANNEL)


async def create(
    con: asyncpg.Connection, values: dict[str, Any], now: datetime, max_active: int | None = None
) -> Job:
    if max_active is not None:
        # Serialises one member's admissions across processes; the count then sees every
        # committed job of theirs (READ COMMITTED: each statement takes a fresh snapshot).
        await con.execute(
            "SELECT pg_advisory_xact_lock($1, $2)", _MEMBER_LOCK, _lock_key(values["user_id"])
        )
        active = await active_count(con, values["user_id"])
        if active >= max_active:
            raise ActiveJobLimit(active)
    values = {**values, "created_at": now, "updated_at": now}
    names = [n for n in JOB_COLUMNS if n != "id" and n in values]
    row = await con.fetchrow(
        f"INSERT INTO jobs ({', '.join(names)})"
        f" VALUES ({', '.join(f'${n}' for n in range(1, len(names) + 1))}) RETURNING {_COLUMNS}",
        *(_encode(n, values[n]) for n in names),
    )
    job = decode(row)
    if job.result_message_ids:
        await _index_results(con, job.id, job.result_message_ids)
    return job


def _lock_key(user: int) -> int:
    # The two-int advisory lock takes 32-bit keys: fold the 64-bit snowflake (a clash only makes
    # two members wait for each other).
    return ((user >> 32) ^ user) & 0x7FFFFFFF


async def update(
    con: asyncpg.Connection,
    job_id: int,
    changes: dict[str, Any],
    now: datetime,
    lease: Lease | None = None,
) -> Job:
    state = await _fence(con, job_id, lease)
    if state is None:
        raise NotFound(f"no job {job_id}")
    if "state" in changes and changes["state"] is not None:
        await _notify_if_slot_freed(con, state, JobState(changes["state"]).value)
    if JobState(state) in FINISHED:
        # A late "running" after a cancel must not bring a finished job back to life.
        changes = {k: v for k, v in changes.items() if k != "state"}
    sql, values = _assignments({**changes, "updated_at": now})
    row = await con.fetchrow(
        f"UPDATE jobs SET {sql} WHERE id = $1 RETURNING {_COLUMNS}", job_id, *values
    )
    if "result_message_ids" in changes:
        await _index_results(con, job_id, changes["result_message_ids"] or [])
    return decode(row)


async def set_task_id(
    con: asyncpg.Connection, job_id: int, task_id: str, now: datetime, lease: Lease | None = None
) -> None:
    if lease is not None and await _fence(con, job_id, lease) is None:
        raise NotFound(f"no job {job_id}")
    found = await con.fetchval(
        f"UPDATE jobs SET task_id = $2, updated_at = $3,"
        f" state = CASE WHEN {_UNFINISHED_SQL} THEN 'submitted' ELSE state END,"
        f" submitted_at = CASE WHEN {_UNFINISHED_SQL} THEN $3 ELSE submitted_at END"
        " WHERE id = $1 RETURNING id",
        job_id,
        task_id,
        now,
    )
    if found is None:
        raise NotFound(f"no job {job_id}")


async def finish(
    con: asyncpg.Connection,
    job_id: int,
    state: JobState,
    generated: int,
    error_code: str | None,
    error_message: str | None,
    result_message_ids: list[int] | None,
    now: datetime,
    billed: int | None = None,
    lease: Lease | None = None,
) -> bool:
    await _fence(con, job_id, lease)
    row = await con.fetchrow(
        "SELECT state, reservation_id FROM jobs WHERE id = $1 FOR UPDATE", job_id
    )
    if row is None:
        raise NotFound(f"no job {job_id}")
    if JobState(row["state"]) in FINISHED:
        return False
    await _notify_if_slot_freed(con, row["state"], state.value)
    if row["reservation_id"] is not None:
        status = "settled" if generated > 0 else "released"
        await close_reservation(con, row["reservation_id"], generated, now, status)
    changes: dict[str, Any] = {
        "state": state,
        "generated": generated,
        "error_code": error_code,
        "error_message": error_message,
        "finished_at": now,
        "updated_at": now,
    }
    if billed is not None:
        # Else keep what `update_job(billed=...)` recorded when the task succeeded.
        changes["billed"] = billed
    if result_message_ids is not None:
        changes["result_message_ids"] = result_message_ids
        await _index_results(con, job_id, result_message_ids)
    sql, values = _assignments(changes)
    # A finished job leaves the queue's leases.
    await con.execute(
        f"UPDATE jobs SET {sql}, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
        job_id,
        *values,
    )
    return True


async def unfinished(con: asyncpg.Connection) -> list[Job]:
    return [decode(r) for r in await con.fetch(f"{_SELECT} WHERE {_UNFINISHED_SQL} ORDER BY id")]


async def task_owners(con: asyncpg.Connection, task_ids: list[str]) -> dict[str, int]:
    rows = await con.fetch("SELECT task_id, id FROM jobs WHERE task_id = ANY($1::text[])", task_ids)
    return {str(r["task_id"]): int(r["id"]) for r in rows}


async def uncertain_creates(con: asyncpg.Connection, since: datetime, until: datetime) -> list[Job]:
    rows = await con.fetch(
        f"{_SELECT} WHERE task_id IS NULL"
        " AND (state = 'submitted' OR error_code = 'CreateOutcomeUnknown')"
        " AND coalesce(submitted_at, updated_at) BETWEEN $1 AND $2 ORDER BY id",
        since,
        until,
    )
    return [decode(r) for r in rows]


async def active_count(con: asyncpg.Connection, user: int) -> int:
    count = await con.fetchval(
        f"SELECT count(*) FROM jobs WHERE user_id = $1 AND {_UNFINISHED_SQL}", user
    )
    return int(count)


async def for_user(con: asyncpg.Connection, user: int, scope: int | None, limit: int) -> list[Job]:
    rows = await con.fetch(
        f"{_SELECT} WHERE user_id = $1 AND ($2::bigint IS NULL OR scope = $2)"
        " ORDER BY id DESC LIMIT $3",
        user,
        scope,
        limit,
    )
    return [decode(r) for r in rows]


async def for_message(con: asyncpg.Connection, message_id: int) -> Job | None:
    # One statement, so one snapshot: the result index first, else the request message.
    row = await con.fetchrow(
        f"{_SELECT} WHERE id = COALESCE("
        " (SELECT job_id FROM job_results WHERE message_id = $1),"
        " (SELECT id FROM jobs WHERE message_id = $1 ORDER BY id DESC LIMIT 1))",
        message_id,
    )
    return decode(row) if row else None
