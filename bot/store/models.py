"""The values the store hands out: reservations, quota snapshots, jobs and audit entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal


class JobState(StrEnum):
    """Where a job is, from the request to its end. The last three are final."""

    VALIDATING = "validating"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED: frozenset[JobState] = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
UNFINISHED: frozenset[JobState] = frozenset(JobState) - FINISHED

LimitSource = Literal["user", "server", "global"]
RefusalReason = Literal["daily_limit", "server_cap", "blocked"]


@dataclass(frozen=True)
class Reservation:
    """Images held for one job. `from_extra` of them came out of the user's extra images."""

    id: int
    scope: int
    user: int
    images: int
    day: date
    from_extra: int


@dataclass(frozen=True)
class QuotaStatus:
    """A user's allowance in one scope, as of now.

    `used` counts every image charged today (daily allowance and extra images alike; `used_extra` of
    them were paid with extra images); `held` counts images reserved by jobs still in flight.
    `extra` is the extra-image balance left after those holds. `remaining` is exactly what a
    `reserve` could take right now: what is left of the daily allowance, plus `extra`, never more than
    the server cap still allows, and 0 when blocked.
    """

    limit: int
    limit_source: LimitSource
    used: int
    held: int
    extra: int
    remaining: int
    blocked: bool
    resets_at: datetime
    used_extra: int = 0
    day: date | None = None


@dataclass(frozen=True)
class ServerTotals:
    """One scope's spending today. `users` counts members who reserved anything today."""

    used: int
    held: int
    cap: int | None
    default_limit: int | None
    users: int
    resets_at: datetime | None = None

    @property
    def cap_remaining(self) -> int | None:
        """Images the server cap still allows today, or None when there is no cap."""
        return None if self.cap is None else max(0, self.cap - self.used - self.held)


@dataclass(frozen=True)
class AuditEntry:
    """One admin change: who (`actor`) did what (`action`) to whom (`target`), old and new value."""

    id: int
    scope: int
    actor: int
    action: str
    target: int | None
    old: int | bool | None
    new: int | bool | None
    at: datetime


@dataclass
class Job:
    """One request, from the moment it is accepted until its result is delivered (or it ends).

    `source` is one of "slash", "reply", "menu", "reroll", "edit". `options` holds the Wan
    parameters (count, seed, watermark, prompt_extend, size, ...); each of `inputs` describes one
    input image (url, filename, content_type, size, width, height, source_channel_id,
    source_message_id, attachment_id). `extra` is free-form JSON for later features.
    """

    id: int
    scope: int
    guild_id: int | None
    channel_id: int
    thread_id: int | None
    user_id: int
    source: str
    message_id: int | None
    application_id: int | None
    # The interaction token can post as the bot for 15 minutes: never shown in reprs or logs.
    interaction_token: str | None = field(repr=False)
    token_expires_at: datetime | None
    prompt: str
    negative_prompt: str | None
    options: dict[str, Any]
    inputs: list[dict[str, Any]]
    parent_job_id: int | None
    parent_index: int | None
    task_id: str | None
    state: JobState
    reservation_id: int | None
    result_message_ids: list[int]
    generated: int | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    extra: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True)
class Lease:
    """A process's hold on a job in the shared queue (PostgreSQL): its `owner` (one per process
    start) and the job's `epoch` at the claim. Writes made with it are fenced: they fail with
    `LeaseLost` once another process has claimed the job. Each fenced write also renews it for `ttl`
    seconds."""

    owner: str
    epoch: int
    ttl: float
