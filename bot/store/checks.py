"""Argument checks and job-column facts. Each check runs before any database work: an impossible
argument is a `ValueError` and touches nothing (no transaction, no audit row)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from bot.store.models import FINISHED, Job, JobState

MAX_LIMIT = 1_000_000  # far above any real allowance; stops typos like 10000000000

JOB_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Job))
TIME_COLUMNS = frozenset({"token_expires_at", "created_at", "updated_at", "submitted_at"})
TIME_COLUMNS |= {"finished_at"}
JSON_COLUMNS = frozenset({"options", "inputs", "result_message_ids", "extra"})
# Set by the store itself, never through update_job.
_FIXED = frozenset({"id", "created_at", "updated_at"})
UPDATABLE: frozenset[str] = frozenset(JOB_COLUMNS) - _FIXED


def check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def check_limit(name: str, value: int | None) -> int | None:
    """An optional admin limit: None (clear it) or 0..MAX_LIMIT."""
    return None if value is None else check_int(name, value, 0, MAX_LIMIT)


def check_time(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise ValueError(f"{name} must be a timezone-aware datetime")


REQUIRED = frozenset({"scope", "channel_id", "user_id", "source", "prompt"})


def new_job(values: dict[str, Any]) -> dict[str, Any]:
    """`create_job`'s arguments, checked, with empty collections filled in."""
    state = JobState(values.get("state", JobState.VALIDATING))
    if state in FINISHED:
        raise ValueError("a job is created unfinished; end it with finish_job")
    if not values["source"]:
        raise ValueError("source must name where the request came from")
    check_time("token_expires_at", values.get("token_expires_at"))
    return {
        **values,
        "state": state,
        "options": values.get("options") or {},
        "inputs": values.get("inputs") or [],
        "result_message_ids": values.get("result_message_ids") or [],
        "extra": values.get("extra") or {},
    }


def job_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`update_job`'s fields, checked."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"update_job cannot set {', '.join(sorted(unknown))}")
    if "state" in changes:
        if JobState(changes["state"]) in FINISHED:
            raise ValueError("final states are set by finish_job, which also settles the quota")
        changes = {**changes, "state": JobState(changes["state"])}
    for name in JSON_COLUMNS & set(changes):
        if changes[name] is None:
            raise ValueError(f"{name} cannot be None")
    for name in TIME_COLUMNS & set(changes):
        check_time(name, changes[name])
    return changes


def final_state(state: JobState | str, generated: int, billed: int | None = None) -> JobState:
    """`finish_job`'s state, checked along with `generated` and `billed`."""
    state = JobState(state)
    if state not in FINISHED:
        raise ValueError(f"finish_job needs a final state, not {state}")
    check_int("generated", generated, 0, MAX_LIMIT)
    if billed is not None:
        check_int("billed", billed, 0, MAX_LIMIT)
    return state
