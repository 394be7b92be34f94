"""The store's interface. Cogs and the job runner use only this, never a backend directly: sqlite
(`SqliteStore`, one bot process) and PostgreSQL (`PostgresStore`, several processes sharing one
quota) behave the same behind it, and the store tests run on both.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.store import checks
from bot.store.models import (
    AuditEntry,
    BotState,
    Job,
    JobState,
    Lease,
    QuotaStatus,
    Reservation,
    ServerTotals,
    UsageReport,
)


class Store(ABC):
    """Quotas, reservations, admin changes with their audit, and jobs.

    A scope is a guild id; DMs are scope 0. The quota day is the UTC day. Errors: `QuotaRefused`
    from `reserve`, `NotFound` for unknown job or reservation ids, `StoreError` when the database
    itself fails (locked past the busy timeout, I/O), `ValueError` for impossible arguments, and
    `CeilingExceeded` (a ValueError) when an admin change would go over the owner's ceiling.

    A backend is opened with the owner's `Limits` (bot-wide cap, server ceiling, DM limit); the
    rules themselves are the pure functions of `bot.store.quota`, shared by every backend.
    """

    # ---- lifecycle ----

    @abstractmethod
    async def close(self) -> None:
        """Finish pending work and close. Safe to call twice."""

    # ---- quotas ----

    @abstractmethod
    async def reserve(
        self, scope: int, user: int, images: int, *, roles: Sequence[int] = ()
    ) -> Reservation:
        """Atomically check every limit and hold `images`: the member's allowance (their own limit,
        else the highest limit among `roles`, their role ids in this server, else the server
        default), extra images, the server cap and the owner's ceiling, the bot-wide cap, the DM
        limit, and the owner's pause.

        All or nothing: raises `QuotaRefused` (its `reason` is a `RefusalReason`) and holds nothing
        when they do not all fit; the refusal is counted (by scope, day and reason) in the same
        transaction. The daily allowance is used first, then extra.
        """

    @abstractmethod
    async def settle(self, reservation_id: int, generated: int) -> int:
        """Charge min(generated, held) to the reservation's day and return the rest.

        Returns what was charged; 0 (and no change) if the reservation is already closed.
        """

    @abstractmethod
    async def release(self, reservation_id: int) -> None:
        """Return every held image. No-op if the reservation is already closed."""

    @abstractmethod
    async def release_orphaned_reservations(self, older_than: timedelta = timedelta(0)) -> int:
        """Release held reservations older than `older_than` that no unfinished job refers to.

        A crash between `reserve` and `create_job` leaves one. Call at start-up before taking
        requests (or periodically with a margin of minutes). Returns how many were released.
        """

    @abstractmethod
    async def quota_status(
        self, scope: int, user: int, *, roles: Sequence[int] = ()
    ) -> QuotaStatus:
        """The user's limit, where it comes from, used/held/extra/remaining today and next reset.

        `roles` as for `reserve`; `remaining` is exactly what `reserve` could take now.
        """

    @abstractmethod
    async def server_totals(self, scope: int) -> ServerTotals:
        """The scope's spending today, its cap, the owner's ceiling and its default limit, and what
        Wan billed today (`billed`, of which `undelivered` never reached the member)."""

    @abstractmethod
    async def usage_report(self, scope: int | None, *, days: int = 7, top: int = 10) -> UsageReport:
        """The last `days` UTC days of one scope (all together when None): images charged, images
        Wan billed (`Job.billed`), refusals by reason; today's top members and servers."""

    @abstractmethod
    async def busiest_scopes(self, *, days: int = 7, top: int = 4) -> list[tuple[int, int]]:
        """The `top` scopes (servers, DMs as 0) that were charged the most images over the last
        `days` UTC days, as (scope, images), most first; scopes charged nothing are left out."""

    # ---- admin operations: each writes an audit entry and returns (old, new) ----

    @abstractmethod
    async def set_user_limit(
        self, scope: int, actor: int, user: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        """Set (or with None, clear) a user's own daily limit. 0 blocks the user."""

    @abstractmethod
    async def set_server_default(
        self, scope: int, actor: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        """Set (or with None, clear) the daily limit of members without their own."""

    @abstractmethod
    async def set_server_cap(
        self, scope: int, actor: int, cap: int | None
    ) -> tuple[int | None, int | None]:
        """Set the scope's total images per day; None or 0 turns the cap off."""

    @abstractmethod
    async def grant_extra(self, scope: int, actor: int, user: int, images: int) -> tuple[int, int]:
        """Add extra images to a user's balance (negative takes back, never below 0)."""

    @abstractmethod
    async def reset_usage(self, scope: int, actor: int, user: int) -> tuple[int, int]:
        """Zero what the user used today (held images stay held; the server's total is kept)."""

    @abstractmethod
    async def block_user(self, scope: int, actor: int, user: int) -> tuple[bool, bool]:
        """Refuse every further reservation from the user in this scope."""

    @abstractmethod
    async def unblock_user(self, scope: int, actor: int, user: int) -> tuple[bool, bool]:
        """Undo `block_user`."""

    @abstractmethod
    async def set_role_limit(
        self, scope: int, actor: int, role: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        """Set (or with None, clear) the daily limit of members with `role`."""

    @abstractmethod
    async def role_limits(self, scope: int) -> dict[int, int]:
        """The scope's role limits, role id -> daily limit, highest first."""

    # ---- the owner's switches (bot-wide; audited in scope `BOT_SCOPE`) ----

    @abstractmethod
    async def bot_state(self) -> BotState:
        """Whether new reservations are paused, and the bot-wide cap in force."""

    @abstractmethod
    async def set_paused(self, actor: int, paused: bool) -> tuple[bool, bool]:
        """Pause (every `reserve` refused with "paused") or resume; survives a restart."""

    @abstractmethod
    async def set_global_cap(self, actor: int, cap: int | None) -> tuple[int | None, int | None]:
        """Set the bot-wide daily cap (0: none), or with None go back to the configured one.
        Returns (old, new) caps in force, None meaning no cap."""

    @abstractmethod
    async def audit_log(
        self, scope: int, limit: int = 20, *, target: int | None = None
    ) -> list[AuditEntry]:
        """The scope's admin changes, newest first, optionally only those about one user."""

    # ---- jobs ----

    async def create_job(
        self,
        *,
        scope: int,
        channel_id: int,
        user_id: int,
        source: str,
        prompt: str,
        guild_id: int | None = None,
        thread_id: int | None = None,
        message_id: int | None = None,
        application_id: int | None = None,
        interaction_token: str | None = None,
        token_expires_at: datetime | None = None,
        negative_prompt: str | None = None,
        options: dict[str, Any] | None = None,
        inputs: list[dict[str, Any]] | None = None,
        parent_job_id: int | None = None,
        parent_index: int | None = None,
        task_id: str | None = None,
        state: JobState = JobState.VALIDATING,
        reservation_id: int | None = None,
        result_message_ids: list[int] | None = None,
        extra: dict[str, Any] | None = None,
        max_active: int | None = None,
    ) -> Job:
        """Write a new job (before its Wan task is created) and return it.

        With `max_active`, the member's unfinished jobs are counted in the same transaction (under a
        per-member lock on PostgreSQL, so processes admitting at once can't both pass) and
        `ActiveJobLimit` is raised, writing nothing, when there are already that many."""
        return await self._insert_job(
            checks.new_job(
                {
                    "scope": scope,
                    "guild_id": guild_id,
                    "channel_id": channel_id,
                    "thread_id": thread_id,
                    "user_id": user_id,
                    "source": source,
                    "message_id": message_id,
                    "application_id": application_id,
                    "interaction_token": interaction_token,
                    "token_expires_at": token_expires_at,
                    "prompt": prompt,
                    "negative_prompt": negative_prompt,
                    "options": options,
                    "inputs": inputs,
                    "parent_job_id": parent_job_id,
                    "parent_index": parent_index,
                    "task_id": task_id,
                    "state": state,
                    "reservation_id": reservation_id,
                    "result_message_ids": result_message_ids,
                    "extra": extra,
                }
            ),
            max_active,
        )

    @abstractmethod
    async def _insert_job(self, values: dict[str, Any], max_active: int | None = None) -> Job:
        """The backend's half of `create_job`: write the checked `values` (every column but the
        id and the times) and return the job."""

    @abstractmethod
    async def get_job(self, job_id: int) -> Job | None:
        """The job, or None."""

    @abstractmethod
    async def update_job(self, job_id: int, *, lease: Lease | None = None, **fields: Any) -> Job:
        """Change any of the job's columns (not id/created_at) and bump `updated_at`.

        Final states are set only by `finish_job` (ValueError here). A finished job keeps its
        state: a late state change is ignored and the returned job shows the real state.
        With `lease` (a job claimed from the shared queue) the write is fenced: `LeaseLost` when
        the job is no longer this lease's, else the lease is renewed. sqlite (one process) ignores it.
        """

    @abstractmethod
    async def set_task_id(self, job_id: int, task_id: str, *, lease: Lease | None = None) -> None:
        """Record the Wan task id; an unfinished job becomes SUBMITTED. Fenced by `lease`."""

    @abstractmethod
    async def finish_job(
        self,
        job_id: int,
        state: JobState,
        *,
        generated: int = 0,
        error_code: str | None = None,
        error_message: str | None = None,
        result_message_ids: list[int] | None = None,
        billed: int | None = None,
        lease: Lease | None = None,
    ) -> bool:
        """In one transaction: set the final state and settle (`generated` > 0) or release the
        job's reservation. True the first time; False, changing nothing, if already finished.
        Fenced by `lease` (`LeaseLost`: nothing settled or released).

        `generated` is what the member is charged (images delivered); `billed` what Wan billed for
        the task, recorded apart so the owner's report shows images paid for but never delivered."""

    @abstractmethod
    async def unfinished_jobs(self) -> list[Job]:
        """Every job not done, failed or cancelled, oldest first (to resume after a restart)."""

    @abstractmethod
    async def active_job_count(self, user: int) -> int:
        """How many unfinished jobs the user has, in all scopes."""

    @abstractmethod
    async def task_owners(self, task_ids: Collection[str]) -> dict[str, int]:
        """Which of these Wan task ids a job holds: task id -> job id (ids no job holds are left out)."""

    @abstractmethod
    async def uncertain_creates(self, since: datetime, until: datetime) -> list[Job]:
        """The jobs whose create call was sent between `since` and `until` and whose answer
        was never stored (no task id; still SUBMITTED, or ended `CreateOutcomeUnknown`), oldest
        first: Wan may hold a task of theirs that no job owns. The time is `submitted_at`, else
        (rows from before it was written at the send) `updated_at`."""

    @abstractmethod
    async def jobs_for_user(
        self, user: int, *, scope: int | None = None, limit: int = 20
    ) -> list[Job]:
        """The user's jobs, newest first."""

    @abstractmethod
    async def job_for_message(self, message_id: int) -> Job | None:
        """The job that posted this result message, else the job whose `message_id` it is."""

    # ---- small settings ----

    @abstractmethod
    async def get_meta(self, key: str) -> str | None:
        """A stored string (e.g. the hash of the synced command tree), or None."""

    @abstractmethod
    async def set_meta(self, key: str, value: str) -> None:
        """Store a string under `key`."""

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold a lock named `name` shared by every process on this database (e.g. around the
        command sync, so it runs once). sqlite has one process: there is nothing to hold."""
        yield

    @abstractmethod
    async def meta_items(self, prefix: str) -> dict[str, str]:
        """Every stored string whose key starts with `prefix` (e.g. each process's heartbeat)."""

    @abstractmethod
    async def delete_meta(self, keys: Sequence[str]) -> None:
        """Remove the strings stored under `keys` (those that exist)."""
