"""`open_store` and `Store`, over either engine's driver. A scope is a guild id, DMs 0, the
owner's own `BOT_SCOPE`; the quota day is the UTC day. Errors: `QuotaRefused` (`reserve`),
`NotFound` (unknown ids), `StoreError` (the database fails), `ValueError` (impossible arguments),
`CeilingExceeded` (over the owner's ceiling).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bot.store import admin, checks, jobs, ledger, retention
from bot.store import models as m
from bot.store.checks import MAX_LIMIT, check_int, check_limit, check_time
from bot.store.driver import Driver
from bot.store.errors import OutageWatch
from bot.store.ledger import Close, Ledger, Policy, Reserve
from bot.store.quota import GLOBAL_CAP, PAUSED
from bot.store.urls import is_postgres, sqlite_path

log = logging.getLogger(__name__)

# How old a hold with no job must be before it is released: far longer than any process takes
# from reserving to storing the job, so only a crash's leftovers are ever taken.
ORPHAN_MARGIN = timedelta(minutes=10)
Clock = Callable[[], datetime]
Pair = tuple[int | None, int | None]  # an admin change's (old, new)


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    default_daily_limit: int = 10,
    busy_timeout: float = 5.0,
    exclusive: bool = False,
    limits: m.Limits | None = None,
    read_only: bool = False,
) -> Store:
    """Open (`sqlite:///PATH` or `postgresql://...`) and migrate the database; `StoreError`, one
    line, if it can't be used. `busy_timeout` bounds every lock wait; `read_only` never writes (reports
    while the bot runs); `exclusive` (the bot) holds sqlite's one-process lock until `close`."""
    check_int("default_daily_limit", default_daily_limit, 0, MAX_LIMIT)
    url = url.strip()
    driver: Any
    if is_postgres(url):
        # Imported here: a sqlite-only install never loads asyncpg.
        from bot.store.postgres import PostgresDriver

        driver = await PostgresDriver.open(url, busy_timeout=busy_timeout, read_only=read_only)
    else:
        from bot.store.sqlite import SqliteDriver

        driver = await SqliteDriver.open(
            sqlite_path(url), busy_timeout=busy_timeout, exclusive=exclusive, read_only=read_only
        )
    if driver.created:
        log.info("created the tables: %s", driver.where)
    policy = Policy(default_daily_limit, limits or m.Limits())
    return Store(driver, policy, clock or (lambda: datetime.now(UTC)))


class Store:
    def __init__(self, driver: Driver, policy: Policy, clock: Clock) -> None:
        self.driver = driver
        self.policy = policy
        self.limits = policy.limits
        self._clock = clock
        # The ledger's own task waits for its batches to the end: no need to shield them.
        self._ledger = Ledger(lambda ops: driver.transaction(ledger.apply, ops, policy))
        # The shared queue and budgets handed out: their background work meets the database too.
        self._background: list[Any] = []

    @property
    def shared(self) -> bool:
        """Whether several bot processes may share this database (PostgreSQL)."""
        return self.driver.shared

    async def close(self) -> None:
        """Finish pending work and close. Safe to call twice."""
        await self._ledger.wait_idle()
        await self.driver.close()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    # ---- what processes share: the job queue, DashScope's limits, named locks ----

    def job_queue(
        self,
        *,
        max_slots: int,
        ttl: float = 15.0,
        poll_interval: float = 1.0,
        own_jobs: bool = False,
    ) -> Any:
        """The queue of jobs waiting for a Wan slot shared by the processes on this database
        (`bot.jobs.queue.JobQueue`), or None for one process (the runner's own, in memory).
        `own_jobs`: the queue of a process that runs only the jobs it queues itself (`python -m
        bot edit`), within the same Wan slots."""
        if not self.shared:
            return None
        from bot.store.queue import PostgresQueue

        pool = cast(Any, self.driver).pool
        timing = dict(ttl=ttl, poll_interval=poll_interval)
        queue = PostgresQueue(pool, max_slots=max_slots, own_jobs=own_jobs, **timing)
        self._background.append(queue)
        return queue

    def shared_rate(self, name: str, limit: float) -> Callable[[], Awaitable[None]] | None:
        """A gate keeping every process together within `limit` requests/s; None: only this one."""
        if not self.shared:
            return None
        from bot.store.budget import SharedRate, rate_for

        gate = SharedRate(cast(Any, self.driver).pool, name, rate_for(limit))
        self._background.append(gate)
        return gate

    def report_outages_to(self, watch: OutageWatch) -> None:
        """Database trouble met in the background (the shared queue's lease renewals and LISTEN,
        the shared budget) goes to `watch`, which logs one line at each edge of an outage."""
        for part in self._background:
            part.outage = watch

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold a lock named `name` across the processes on this database (sqlite: only one)."""
        if not self.shared:
            yield
            return
        async with cast(Any, self.driver).exclusive(name):
            yield

    # ---- quotas ----

    async def reserve(
        self, scope: int, user: int, images: int, *, roles: Sequence[int] = ()
    ) -> m.Reservation:
        """Check every limit (`quota.Snapshot`; `roles`: the member's role ids here) and hold
        `images`, all or nothing: else `QuotaRefused`, counted, nothing held. The daily allowance
        goes first, then extra. A caller cancelled meanwhile has its images given back."""
        check_int("images", images, 1, MAX_LIMIT)
        reserve = Reserve(scope, user, images, tuple(roles), self._now())
        return await self._ledger.run(reserve)  # type: ignore[no-any-return]

    async def settle(self, reservation_id: int, generated: int) -> int:
        """Charge min(generated, held) to its day, give back the rest; what was charged."""
        check_int("generated", generated, 0, MAX_LIMIT)
        return await self._ledger.run(Close(reservation_id, generated, self._now())) or 0

    async def release(self, reservation_id: int) -> None:
        """Return every held image. No-op if the reservation is already closed."""
        await self._ledger.run(Close(reservation_id, 0, self._now(), settle=False))

    async def release_orphaned_reservations(self, older_than: timedelta = ORPHAN_MARGIN) -> int:
        """Release holds older than `older_than` that no unfinished job refers to; how many.
        A younger hold may belong to a live process between reserving and storing its job (two
        transactions), on this database from another process: the margin leaves it alone."""
        now = self._now()
        candidates = await self.driver.read(ledger.orphan_candidates, now - older_than)
        if not candidates:
            return 0
        count = await self.driver.write(
            ledger.release_orphans, candidates, now - older_than, now, self.policy
        )
        if count:
            log.warning("released %d reservation(s) left without a job by a crash", count)
        return count

    async def quota_status(
        self, scope: int, user: int, *, roles: Sequence[int] = ()
    ) -> m.QuotaStatus:
        """The member's allowance today; `remaining` is exactly what `reserve` could take now."""
        return await self.driver.read(
            ledger.quota_status, scope, user, tuple(roles), self._now(), self.policy
        )

    async def server_totals(self, scope: int) -> m.ServerTotals:
        """The scope's spending, cap, ceiling and default limit today, and what Wan billed."""
        return await self.driver.read(admin.server_totals, scope, self._now(), self.limits)

    async def usage_report(
        self, scope: int | None, *, days: int = 7, top: int = 10
    ) -> m.UsageReport:
        """The last `days` UTC days of one scope (None: all), today's top members and servers."""
        check_int("days", days, 1, 366)
        check_int("top", top, 1, 100)
        return await self.driver.snapshot(
            admin.usage_report, scope, self._now(), days, top, self.limits
        )

    async def busiest_scopes(self, *, days: int = 7, top: int = 4) -> list[tuple[int, int]]:
        """The `top` scopes charged the most (>0) over the last `days` days: (scope, images)."""
        check_int("days", days, 1, 366)
        check_int("top", top, 1, 100)
        return await self.driver.read(admin.busiest_scopes, self._now(), days, top)

    # ---- admin operations: each writes an audit entry and returns (old, new) ----

    async def _admin(
        self, change: Callable[..., Awaitable[Any]], scope: int, actor: int, *args: Any
    ) -> Any:
        who = admin.Change(scope, actor, self._now(), self.policy.ceiling(scope))
        return await self.driver.write(change, who, *args)

    async def set_user_limit(self, scope: int, actor: int, user: int, limit: int | None) -> Pair:
        """Set (or with None, clear) a user's own daily limit. 0 blocks the user."""
        check_limit("limit", limit)
        return await self._admin(admin.set_member, scope, actor, user, "daily_limit", limit)

    async def grant_extra(self, scope: int, actor: int, user: int, images: int) -> tuple[int, int]:
        """Add extra images to a user's balance (negative takes back, never below 0)."""
        check_int("images", images, -MAX_LIMIT, MAX_LIMIT)
        return await self._admin(admin.set_member, scope, actor, user, "extra", images)

    async def block_user(self, scope: int, actor: int, user: int) -> tuple[bool, bool]:
        """Refuse every further reservation from the user in this scope."""
        return await self._admin(admin.set_member, scope, actor, user, "blocked", True)

    async def unblock_user(self, scope: int, actor: int, user: int) -> tuple[bool, bool]:
        return await self._admin(admin.set_member, scope, actor, user, "blocked", False)

    async def set_server_default(self, scope: int, actor: int, limit: int | None) -> Pair:
        """Set (or with None, clear) the daily limit of members without their own."""
        check_limit("limit", limit)
        return await self._admin(admin.set_scope, scope, actor, "default_limit", limit)

    async def set_server_cap(self, scope: int, actor: int, cap: int | None) -> Pair:
        """Set the scope's total images per day; None or 0 turns the cap off."""
        check_limit("cap", cap)
        return await self._admin(admin.set_scope, scope, actor, "daily_cap", cap or None)

    async def reset_usage(self, scope: int, actor: int, user: int) -> tuple[int, int]:
        """Zero what the user used today (held images stay held; the server's total is kept)."""
        return await self._admin(admin.reset_usage, scope, actor, user)

    async def set_role_limit(self, scope: int, actor: int, role: int, limit: int | None) -> Pair:
        """Set (or with None, clear) the daily limit of members with `role`."""
        check_limit("limit", limit)
        return await self._admin(admin.set_role_limit, scope, actor, role, limit)

    async def role_limits(self, scope: int) -> dict[int, int]:
        """The scope's role limits, role id -> daily limit, highest first."""
        return await self.driver.read(admin.role_limits, scope)

    async def audit_log(
        self, scope: int, limit: int = 20, *, target: int | None = None
    ) -> list[m.AuditEntry]:
        """The scope's admin changes, newest first, optionally only those about one user."""
        check_int("limit", limit, 1, 10_000)
        return await self.driver.read(admin.audit_log, scope, limit, target)

    # ---- the owner's switches (bot-wide; audited in scope `BOT_SCOPE`) ----

    async def bot_state(self) -> m.BotState:
        """Whether new reservations are paused, and the bot-wide cap in force."""
        return await self.driver.read(admin.bot_state, self.limits)

    async def set_paused(self, actor: int, paused: bool) -> tuple[bool, bool]:
        """Pause (every `reserve` refused with "paused") or resume; survives a restart."""
        return await self._admin(
            admin.set_switch, m.BOT_SCOPE, actor, PAUSED, "1" if paused else "0", self.limits
        )

    async def set_global_cap(self, actor: int, cap: int | None) -> Pair:
        """Set the bot-wide cap (0: none; None: the configured one); (old, new) caps in force."""
        check_limit("cap", cap)
        value = None if cap is None else str(cap)
        return await self._admin(
            admin.set_switch, m.BOT_SCOPE, actor, GLOBAL_CAP, value, self.limits
        )

    # ---- jobs ----

    async def create_job(self, *, max_active: int | None = None, **values: Any) -> m.Job:
        """Write a new job from its columns (`Job`; `scope`, `channel_id`, `user_id`, `source`,
        `prompt` required). With `max_active`: `ActiveJobLimit`, nothing written, when the member
        already has that many unfinished (counted under a per-member lock on PostgreSQL)."""
        unknown, missing = set(values) - checks.UPDATABLE, checks.REQUIRED - set(values)
        if unknown or missing:
            raise TypeError(f"create_job: unknown {sorted(unknown)}, missing {sorted(missing)}")
        checked = checks.new_job(values)
        return await self.driver.write(jobs.create, checked, self._now(), max_active, self.shared)

    async def get_job(self, job_id: int) -> m.Job | None:
        return await self.driver.read(jobs.get, job_id)

    def _fenced(self, lease: m.Lease | None) -> m.Lease | None:
        # One process on sqlite: its queue has no leases.
        return lease if self.shared else None

    async def update_job(
        self, job_id: int, *, lease: m.Lease | None = None, **fields: Any
    ) -> m.Job:
        """Change the job's columns and `updated_at`; not its final state (`finish_job`), and a
        finished job keeps it. Fenced (`LeaseLost`): by `lease`, else by any live lease on it."""
        changes = checks.job_changes(fields)
        return await self.driver.write(
            jobs.update, job_id, changes, self._now(), self._fenced(lease), self.shared
        )

    async def set_task_id(self, job_id: int, task_id: str, *, lease: m.Lease | None = None) -> None:
        """Record the Wan task id; an unfinished job becomes SUBMITTED. Fenced by `lease`."""
        if not task_id:
            raise ValueError("task_id is empty")
        await self.driver.write(jobs.set_task_id, job_id, task_id, self._now(), self._fenced(lease))

    async def record_task(self, job_id: int, task_id: str) -> bool:
        """Record the task Wan made for the job when its lease was lost meanwhile: unfenced, only
        where the job is unfinished and has no task id (its new owner follows it); whether it was."""
        return await self.driver.write(jobs.record_task, job_id, task_id, self._now())

    async def finish_job(
        self,
        job_id: int,
        state: m.JobState,
        *,
        generated: int = 0,
        error_code: str | None = None,
        error_message: str | None = None,
        result_message_ids: list[int] | None = None,
        billed: int | None = None,
        extra: dict[str, Any] | None = None,
        lease: m.Lease | None = None,
    ) -> bool:
        """End the job and settle (`generated`: what the member is charged) or release its hold,
        in one transaction; False, changing nothing, if it had ended. `billed`: what Wan billed;
        `extra`: keys added to the job's `extra`. The interaction token is forgotten: what follows
        the end uses the job in hand."""
        state = checks.final_state(state, generated, billed)
        changes = dict(generated=generated, error_code=error_code, error_message=error_message)
        changes.update(result_message_ids=result_message_ids, billed=billed, extra=extra)
        changes.update(interaction_token=None)
        fenced, policy, shared = self._fenced(lease), self.policy, self.shared
        return await self.driver.write(
            jobs.finish, job_id, state, changes, self._now(), fenced, policy, shared
        )

    async def hold_jobs(self, owner: str, job_ids: Collection[int], ttl: float) -> set[int]:
        """Keep `owner`'s hold on these unfinished jobs for `ttl` more seconds, taking it where
        nobody holds them; the ids still held. A process that follows the jobs it makes itself
        (`python -m bot edit`) renews this while it runs, so that `end_abandoned_jobs` in any other
        process ends them only once it is gone."""
        if not job_ids:
            return set()
        held = await self.driver.write(
            jobs.hold, owner, list(job_ids), self._now(), ttl, self.shared
        )
        return set(held)

    async def end_abandoned_jobs(
        self,
        source: str,
        *,
        error_code: str,
        error_message: str,
        older_than: timedelta = ORPHAN_MARGIN,
    ) -> list[int]:
        """Fail, refunded, the unfinished jobs of `source` (one whose jobs only the process that
        made them follows) whose process is gone: its hold (`hold_jobs`) ran out, or it never took
        one and the job is older than `older_than`; their ids. A job still held is left alone."""
        now = self._now()
        changes: dict[str, Any] = dict(generated=0, error_code=error_code)
        changes.update(error_message=error_message, result_message_ids=None, billed=None)
        return await self.driver.write(
            jobs.end_abandoned, source, changes, now, now - older_than, self.policy, self.shared
        )

    async def unfinished_jobs(self) -> list[m.Job]:
        """Every job not done, failed or cancelled, oldest first (to resume after a restart)."""
        return await self.driver.read(jobs.unfinished)

    async def active_job_count(self, user: int) -> int:
        """How many unfinished jobs the user has, in all scopes."""
        return await self.driver.read(jobs.active_count, user)

    async def task_owners(self, task_ids: Collection[str]) -> dict[str, int]:
        """Which of these Wan task ids a job holds: task id -> job id."""
        return await self.driver.read(jobs.task_owners, list(task_ids)) if task_ids else {}

    async def uncertain_creates(self, since: datetime, until: datetime) -> list[m.Job]:
        """Jobs whose create was sent (`submitted_at`, else `updated_at`) between `since` and
        `until` and never answered (no task id; SUBMITTED or `CreateOutcomeUnknown`), oldest first."""
        check_time("since", since)
        check_time("until", until)
        return await self.driver.read(jobs.uncertain_creates, since, until)

    async def jobs_for_user(
        self, user: int, *, scope: int | None = None, limit: int = 20
    ) -> list[m.Job]:
        """The user's jobs, newest first."""
        check_int("limit", limit, 1, 10_000)
        return await self.driver.read(jobs.for_user, user, scope, limit)

    async def job_for_message(self, message_id: int) -> m.Job | None:
        """The job that posted this result message, else the job whose `message_id` it is."""
        return await self.driver.read(jobs.for_message, message_id)

    async def purge(self, days: int, *, batch: int = retention.BATCH) -> retention.Purged | None:
        """Delete finished jobs and their rows older than `days` days (`bot.store.retention`),
        `batch` rows a transaction, if a purge is due: once a day, by one process of those on the
        database. None when none was (0 days: everything is kept)."""
        check_int("days", days, 0, 100_000)
        check_int("batch", batch, 1, 100_000)
        return await retention.purge(self.driver, self._now(), days, batch) if days else None

    # ---- small settings ----

    async def get_meta(self, key: str) -> str | None:
        """A stored string (e.g. the hash of the synced command tree), or None."""
        return await self.driver.read(admin.get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        await self.driver.write(admin.set_meta, key, value)

    async def delete_meta(self, keys: Sequence[str]) -> None:
        """Forget these stored strings (e.g. the heartbeats of processes that are gone)."""
        await self.driver.write(admin.delete_meta, list(keys))

    async def meta_items(self, prefix: str) -> dict[str, str]:
        """Every stored string whose key starts with `prefix` (e.g. each process's heartbeat)."""
        return await self.driver.read(admin.meta_items, prefix)
