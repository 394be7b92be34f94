"""The values the store hands out: reservations, quota snapshots, jobs and audit entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, get_args


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

# Where a member's daily limit comes from: their own, a role's, the server default, the bot default
# (WAN_DEFAULT_DAILY_LIMIT) or, in DMs, WAN_DM_DAILY_LIMIT.
LimitSource = Literal["user", "role", "server", "global", "dm"]
# Why `reserve` said no. "server_cap" is the server's cap or the owner's ceiling
# (WAN_SERVER_DAILY_LIMIT), whichever is lower; "global_cap" the bot-wide daily cap.
RefusalReason = Literal["daily_limit", "server_cap", "global_cap", "blocked", "paused", "dm_off"]
REFUSAL_REASONS: tuple[RefusalReason, ...] = get_args(RefusalReason)
# The audit scope of the owner's bot-wide changes (pause, bot-wide cap); guilds are > 0, DMs 0.
BOT_SCOPE = -1


@dataclass(frozen=True)
class Limits:
    """The owner's bounds, from the environment: the bot-wide daily cap (WAN_GLOBAL_DAILY_LIMIT;
    a value set at run time by the owner wins), the most one server may use per day
    (WAN_SERVER_DAILY_LIMIT) and each member's daily images in DMs (WAN_DM_DAILY_LIMIT; 0 turns DMs
    off; None: the same as the default daily limit). 0 or None for the first two means no bound."""

    global_daily: int | None = None
    server_ceiling: int | None = None
    dm_daily: int | None = None

    def __post_init__(self) -> None:
        # 0 means "no bound" for the caps; store None so the rules have one spelling.
        object.__setattr__(self, "global_daily", self.global_daily or None)
        object.__setattr__(self, "server_ceiling", self.server_ceiling or None)


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
    """A member's allowance in one scope now: `used` charged today (`used_extra` of it paid with
    extra images), `held` by jobs in flight, `extra` the balance after those holds, and `remaining`
    exactly what `reserve` could take: the daily allowance left plus `extra`, within the caps."""

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
    # Which role's limit applies (limit_source "role"), and what bounds `remaining` right now:
    # None when it is the member's own allowance, else a `RefusalReason` ("server_cap", ...).
    limit_role: int | None = None
    limited_by: RefusalReason | None = None
    paused: bool = False


@dataclass(frozen=True)
class ServerTotals:
    """One scope's spending today. `users` counts members who reserved anything today."""

    used: int
    held: int
    cap: int | None
    default_limit: int | None
    users: int
    resets_at: datetime | None = None
    # The owner's WAN_SERVER_DAILY_LIMIT (None: no ceiling); the server's cap can't exceed it.
    ceiling: int | None = None

    @property
    def cap_in_force(self) -> int | None:
        """The lower of the server's cap and the owner's ceiling, or None when neither is set."""
        caps = [c for c in (self.cap, self.ceiling) if c]
        return min(caps) if caps else None

    # Images Wan billed today for this scope's finished jobs, and how many of them never reached
    # the member (a download or delivery that failed after Wan had made them; not charged to anyone).
    billed: int = 0
    undelivered: int = 0

    @property
    def cap_remaining(self) -> int | None:
        """Images the cap in force still allows today, or None when there is none."""
        cap = self.cap_in_force
        return None if cap is None else max(0, cap - self.used - self.held)


@dataclass(frozen=True)
class DayUsage:
    """One scope's (or, in a bot-wide report, all scopes') day. `charged` counts images charged
    to quotas; `billed` what Wan reported generating (`usage.image_count`), which is the bill."""

    day: date
    charged: int = 0
    billed: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> images refused
    # Of `billed`, the images of jobs of another kind than an edit (the job's options "kind",
    # e.g. "imagine"), which may have their own price: kind -> images billed.
    billed_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def undelivered(self) -> int:
        """Images Wan billed that day beyond what members were charged: results that reached no
        one (they count against the server's and the bot-wide day all the same)."""
        return max(0, self.billed - self.charged)


@dataclass(frozen=True)
class UsageReport:
    """The last days of one scope (None: bot-wide); today's `top_members` (scope, user, charged)
    and `servers` (scope, charged, billed), largest first; the bot-wide cap and what counts against
    it today."""

    scope: int | None
    days: list[DayUsage]
    top_members: list[tuple[int, int, int]]
    servers: list[tuple[int, int, int]]
    global_cap: int | None
    global_used: int
    global_held: int
    paused: bool
    resets_at: datetime
    # Today's refusals per scope: scope -> reason -> images refused.
    refused_by_scope: dict[int, dict[str, int]] = field(default_factory=dict)
    # Of each server's images billed today, those of jobs of another kind than an edit, as in
    # `DayUsage.billed_by_kind`: scope -> kind -> images billed.
    billed_by_kind_today: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def today(self) -> DayUsage:
        return self.days[-1]


@dataclass(frozen=True)
class BotState:
    """The owner's run-time switches, kept in the store so they survive a restart."""

    paused: bool
    global_cap: int | None  # in force: the owner's run-time value, else WAN_GLOBAL_DAILY_LIMIT
    global_cap_overridden: bool


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
    """One request, from its acceptance to its end. `source`: "slash", "reply", "menu", "reroll",
    "edit"; `options`: the Wan parameters; `inputs`: one dict per input image (url, filename,
    size, ...); `extra`: free-form JSON for later features."""

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
    # Images Wan billed (the owner paid for); `generated` is what the member was charged, which is
    # never more than was delivered. None until the job ends (and for jobs from before it existed).
    billed: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True)
class Lease:
    """A process's hold on a job of PostgreSQL's shared queue: its `owner` and the job's `epoch` at
    the claim; writes with it fail (`LeaseLost`) once another process claimed the job, else renew."""

    owner: str
    epoch: int
    ttl: float
