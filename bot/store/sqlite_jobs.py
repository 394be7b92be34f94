"""Job rows for sqlite: column encoding and the job transactions, as functions of a connection."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from bot.store.checks import JOB_COLUMNS as COLUMNS
from bot.store.checks import JSON_COLUMNS as _JSON
from bot.store.checks import TIME_COLUMNS as _TIMES
from bot.store.errors import ActiveJobLimit, NotFound
from bot.store.models import FINISHED, Job, JobState
from bot.store.sqlite_quota import close_reservation

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM jobs"
_UNFINISHED_SQL = "state NOT IN ('done', 'failed', 'cancelled')"  # matches the partial index


def encode(name: str, value: Any) -> Any:
    """A Python value of column `name` as sqlite stores it."""
    if value is None:
        return None
    if name in _TIMES:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
        return value.isoformat()
    if name in _JSON:
        return json.dumps(value, separators=(",", ":"))
    if name == "state":
        return JobState(value).value
    return value


def decode(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    values: dict[str, Any] = {}
    for name, raw in zip(COLUMNS, row, strict=True):
        if raw is None:
            values[name] = None
        elif name in _TIMES:
            values[name] = datetime.fromisoformat(raw)
        elif name in _JSON:
            values[name] = json.loads(raw)
        elif name == "state":
            values[name] = JobState(raw)
        else:
            values[name] = raw
    return Job(**values)


def get(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
    return decode(row) if row else None


def _must_get(conn: sqlite3.Connection, job_id: int) -> Job:
    job = get(conn, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _index_results(conn: sqlite3.Connection, job_id: int, message_ids: list[int]) -> None:
    conn.execute("DELETE FROM job_results WHERE job_id = ?", (job_id,))
    conn.executemany(
        "INSERT OR REPLACE INTO job_results (message_id, job_id) VALUES (?, ?)",
        [(int(m), job_id) for m in message_ids],
    )


def create(
    conn: sqlite3.Connection, values: dict[str, Any], now: datetime, max_active: int | None = None
) -> Job:
    if max_active is not None:
        active = active_count(conn, values["user_id"])
        if active >= max_active:
            raise ActiveJobLimit(active)
    values = {**values, "created_at": now, "updated_at": now}
    names = [n for n in COLUMNS if n != "id" and n in values]
    cur = conn.execute(
        f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        [encode(n, values[n]) for n in names],
    )
    job_id = cur.lastrowid
    assert job_id is not None
    if values.get("result_message_ids"):
        _index_results(conn, job_id, values["result_message_ids"])
    return _must_get(conn, job_id)


def update(conn: sqlite3.Connection, job_id: int, changes: dict[str, Any], now: datetime) -> Job:
    (state,) = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone() or (None,)
    if state is None:
        raise NotFound(f"no job {job_id}")
    if JobState(state) in FINISHED:
        # A late "running" after a cancel must not bring a finished job back to life.
        changes = {k: v for k, v in changes.items() if k != "state"}
    changes = {**changes, "updated_at": now}
    conn.execute(
        f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in changes)} WHERE id = ?",
        [*(encode(n, v) for n, v in changes.items()), job_id],
    )
    if "result_message_ids" in changes:
        _index_results(conn, job_id, changes["result_message_ids"] or [])
    return _must_get(conn, job_id)


def set_task_id(conn: sqlite3.Connection, job_id: int, task_id: str, now: datetime) -> None:
    stamp = now.isoformat()
    cur = conn.execute(
        f"UPDATE jobs SET task_id = ?, updated_at = ?,"
        f" state = CASE WHEN {_UNFINISHED_SQL} THEN 'submitted' ELSE state END,"
        f" submitted_at = CASE WHEN {_UNFINISHED_SQL} THEN ? ELSE submitted_at END"
        " WHERE id = ?",
        (task_id, stamp, stamp, job_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"no job {job_id}")


def finish(
    conn: sqlite3.Connection,
    job_id: int,
    state: JobState,
    generated: int,
    error_code: str | None,
    error_message: str | None,
    result_message_ids: list[int] | None,
    now: datetime,
    billed: int | None = None,
) -> bool:
    row = conn.execute("SELECT state, reservation_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}")
    if JobState(row[0]) in FINISHED:
        return False
    if row[1] is not None:
        status = "settled" if generated > 0 else "released"
        close_reservation(conn, row[1], generated, now, status)
    # SQLite column names ignore case.
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
        _index_results(conn, job_id, result_message_ids)
    conn.execute(
        f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in changes)} WHERE id = ?",
        [*(encode(n, v) for n, v in changes.items()), job_id],
    )
    return True


def billed_on(conn: sqlite3.Connection, scope: int, now: datetime) -> tuple[int, int]:
    """(images Wan billed, of them not delivered) for the scope's jobs finished on `now`'s UTC day."""
    day = now.astimezone(UTC).date()
    start = datetime.combine(day, datetime.min.time(), UTC).isoformat()
    row = conn.execute(
        "SELECT coalesce(sum(billed), 0), coalesce(sum(max(billed - coalesce(generated, 0), 0)), 0)"
        " FROM jobs WHERE scope = ? AND billed > 0 AND finished_at >= ?",
        (scope, start),
    ).fetchone()
    return int(row[0]), int(row[1])


def unfinished(conn: sqlite3.Connection) -> list[Job]:
    return [decode(r) for r in conn.execute(f"{_SELECT} WHERE {_UNFINISHED_SQL} ORDER BY id")]


def task_owners(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, int]:
    owners: dict[str, int] = {}
    for start in range(0, len(task_ids), 500):  # under sqlite's bound-parameter limit
        chunk = task_ids[start : start + 500]
        rows = conn.execute(
            f"SELECT task_id, id FROM jobs WHERE task_id IN ({', '.join('?' for _ in chunk)})",
            chunk,
        )
        owners.update({str(task_id): int(job_id) for task_id, job_id in rows})
    return owners


def uncertain_creates(conn: sqlite3.Connection, since: datetime, until: datetime) -> list[Job]:
    rows = conn.execute(
        f"{_SELECT} WHERE task_id IS NULL"
        " AND (state = 'submitted' OR error_code = 'CreateOutcomeUnknown') ORDER BY id"
    )
    # Compared as datetimes, not as stored strings (their offsets and precision may differ).
    found = [decode(r) for r in rows]
    return [j for j in found if since <= (j.submitted_at or j.updated_at) <= until]


def active_count(conn: sqlite3.Connection, user: int) -> int:
    (count,) = conn.execute(
        f"SELECT count(*) FROM jobs WHERE user_id = ? AND {_UNFINISHED_SQL}", (user,)
    ).fetchone()
    return int(count)


def for_user(
    conn: sqlite3.Connection, user: int, scope: int | None, limit: int
) -> list[Job]:  # pragma: no mutate block (history listing; bench/mutation.py)
    if scope is None:
        rows = conn.execute(f"{_SELECT} WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user, limit))
    else:
        rows = conn.execute(
            f"{_SELECT} WHERE user_id = ? AND scope = ? ORDER BY id DESC LIMIT ?",
            (user, scope, limit),
        )
    return [decode(r) for r in rows]


def for_message(conn: sqlite3.Connection, message_id: int) -> Job | None:
    row = conn.execute(
        "SELECT job_id FROM job_results WHERE message_id = ?", (message_id,)
    ).fetchone()
    if row is not None:
        return get(conn, row[0])
    row = conn.execute(
        f"{_SELECT} WHERE message_id = ? ORDER BY id DESC LIMIT 1", (message_id,)
    ).fetchone()
    return decode(row) if row else None
