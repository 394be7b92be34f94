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
from bot.store.errors import NotFound
from bot.store.models import FINISHED, Job, JobState
from bot.store.postgres_quota import close_reservation

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


async def create(con: asyncpg.Connection, values: dict[str, Any], now: datetime) -> Job:
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


async def update(
    con: asyncpg.Connection, job_id: int, changes: dict[str, Any], now: datetime
) -> Job:
    state = await con.fetchval("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    if state is None:
        raise NotFound(f"no job {job_id}")
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


async def set_task_id(con: asyncpg.Connection, job_id: int, task_id: str, now: datetime) -> None:
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
) -> bool:
    row = await con.fetchrow(
        "SELECT state, reservation_id FROM jobs WHERE id = $1 FOR UPDATE", job_id
    )
    if row is None:
        raise NotFound(f"no job {job_id}")
    if JobState(row["state"]) in FINISHED:
        return False
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
    await con.execute(f"UPDATE jobs SET {sql} WHERE id = $1", job_id, *values)
    return True


async def unfinished(con: asyncpg.Connection) -> list[Job]:
    return [decode(r) for r in await con.fetch(f"{_SELECT} WHERE {_UNFINISHED_SQL} ORDER BY id")]


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
