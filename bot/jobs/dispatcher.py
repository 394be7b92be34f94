"""Admission and dispatch: the per-user cap and quota reservation at `submit`, then starting queued jobs
while fewer than `max_concurrent` Wan tasks are in flight (plus `PREFETCH` jobs fetching their inputs
for the next free slot; a job in delivery no longer counts), and showing the others their place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from bot.i18n import _n
from bot.images import CheckedImage
from bot.jobs.inflight import InFlight
from bot.jobs.models import (
    TERMINAL_INTERRUPTED,
    TERMINAL_SOURCE,
    JobRefused,
    JobSpec,
    Progress,
    uncharged,
)
from bot.jobs.outages import FIRST_WAIT, LONGEST_WAIT, Outage, store_trouble
from bot.jobs.outcomes import Outcomes
from bot.jobs.queue import JobQueue
from bot.metrics import Metrics
from bot.store import ActiveJobLimit, Job, JobState, QuotaRefused, Store

log = logging.getLogger(__name__)

# Jobs started beyond the Wan slots: they fetch their inputs while they wait for one (see InFlight).
PREFETCH = 2
# Seconds from a move of the queue to showing the waiting jobs their new places. Every start moves
# each of them up one, and starts come as often as Wan's tasks end (several a second on a busy
# account): the moves of those seconds are shown together, as one round of edits, and after the
# start that moved them, whose delivery of the job before and whose create go first.
ANNOUNCE_DELAY = 2.0
# The longest one pass over the queue may take: a database that stopped answering without closing
# the connection (a network partition) would otherwise hold the dispatcher until TCP gives up,
# minutes later, without one error to say so.
PASS_TIMEOUT = 30.0
# Seconds between looks, on a shared queue, for jobs of `python -m bot edit` whose process is gone.
ABANDONED_EVERY = 5.0


class Dispatcher:
    """Takes requests in (`precheck`, `submit`) and starts jobs from the queue (`launch`)."""

    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        inflight: InFlight,
        outcomes: Outcomes,
        run_job: Callable[[int], Awaitable[None]],
        *,
        max_concurrent: int,
        max_jobs_per_user: int,
        metrics: Metrics,
        prefetch: int = PREFETCH,
        outage: Outage | None = None,
        announce_delay: float = ANNOUNCE_DELAY,
    ) -> None:
        self.store = store
        self.outage = outage if outage is not None else Outage()
        self.queue = queue
        self.inflight = inflight
        self.outcomes = outcomes
        self.run_job = run_job
        self.max_concurrent = max_concurrent
        self.max_jobs_per_user = max_jobs_per_user
        self.prefetch = prefetch
        self.announce_delay = announce_delay
        self.metrics = metrics
        self.wake = inflight.wake
        # A member's lock lives while someone holds or waits for it: not one per member ever seen.
        self._user_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.loop_task: asyncio.Task[None] | None = None
        self.announcer: asyncio.Task[None] | None = None
        self._abandoned_due = 0.0  # time.monotonic() of the next look for abandoned jobs
        self._moved = False  # the queue moved since its places were last read
        self._holding = 0  # requests holding their checked images until they are submitted

    # ---- admission ------------------------------------------------------------------------------

    async def precheck(
        self, scope: int, user: int, count: int, roles: tuple[int, ...] = ()
    ) -> None:
        """Refuse early (before any download) what `submit` would refuse; reserves nothing."""
        try:
            await self._precheck(scope, user, count, roles)
        except JobRefused as refusal:
            self.metrics.refused(refusal.reason, count)
            raise

    async def _precheck(self, scope: int, user: int, count: int, roles: tuple[int, ...]) -> None:
        active = await self.store.active_job_count(user)
        if active >= self.max_jobs_per_user:
            raise self._busy(active)
        status = await self.store.quota_status(scope, user, roles=roles)
        if status.blocked or status.remaining < count:
            # The store decides refusals; ask it by trying, and hand back anything it granted
            # (only when a hold closed meanwhile).
            try:
                reservation = await self.store.reserve(scope, user, count, roles=roles)
            except QuotaRefused as refusal:
                raise JobRefused(uncharged(str(refusal)), refusal.reason, refusal) from None
            await self.store.release(reservation.id)

    def _starts_at_once(self, ahead: int = 0) -> bool:
        """Whether a job queued now (behind `ahead` others not queued yet) starts at once.

        Only such a job keeps the images checked at intake in memory; one that waits fetches them
        again when its turn comes, so a long queue holds ids, not megabytes. (On a shared queue
        another process may start it: it fetches the images itself.)"""
        waiting = self.inflight.before_wan() + len(self.queue) + ahead
        return not self.queue.shared and waiting < self.max_concurrent + self.prefetch

    @contextlib.contextmanager
    def holding_inputs(self) -> Iterator[bool]:
        """Around a request from its checked images to its `submit`: whether it may hold them
        meanwhile (its job will start at once), counting those already holding theirs, so
        requests arriving together hold no more than the jobs that start at once will use."""
        keep = self._starts_at_once(ahead=self._holding)
        self._holding += keep
        try:
            yield keep
        finally:
            self._holding -= keep

    def _busy(self, active: int) -> JobRefused:
        return JobRefused(
            _n(
                "You already have {count} job queued or running (the limit is {limit}). "
                "Wait for one to finish. Nothing was charged.",
                "You already have {count} jobs queued or running (the limit is {limit}). "
                "Wait for one to finish. Nothing was charged.",
                active,
                limit=self.max_jobs_per_user,
            ),
            "busy",
        )

    async def submit(self, spec: JobSpec, images: list[CheckedImage]) -> Job:
        """Reserve quota, store the job and queue it. Raises `JobRefused` with nothing spent.
        A job that starts at once takes `images` (the list is emptied); one that waits does not."""
        try:
            job = await self._admit(spec)
        except JobRefused as refusal:
            self.metrics.refused(refusal.reason, spec.count)
            raise
        self.metrics.jobs_submitted.inc()
        # None when the request let them go already (`holding_inputs` said no).
        if images and self._starts_at_once():
            # Taken, not shared: the caller's list is emptied, so once the job has written them
            # to its folder (at its start, moments from now) no reference keeps them in memory.
            self.inflight.images[job.id] = images.copy()
            images.clear()
        try:
            position: int | None = await self.queue.push(job.id)
        except Exception as err:
            if not (self.queue.shared and store_trouble(err)):
                raise
            # Stored QUEUED already: the shared queue is the jobs table, and the dispatcher finds
            # it there once the database answers again; only its place can't be shown yet.
            self.outage.failed(err)
            position = None
        log.info("job %d queued (user %d, %d image(s))", job.id, spec.user_id, spec.count)
        self.wake.set()
        await self.outcomes.show(job, Progress("queued", position=position, cancellable=True))
        return job

    async def _admit(self, spec: JobSpec) -> Job:
        """The per-user cap and the quota reservation, then the job row."""
        # One member's requests are admitted one at a time, so two at the same moment can't both
        # pass the job cap before either is stored (across processes, `create_job(max_active=)`
        # counts again under a lock in the database).
        lock = self._user_locks.get(spec.user_id)
        if lock is None:
            lock = self._user_locks[spec.user_id] = asyncio.Lock()
        async with lock:
            # Checked early so a member over the cap is told before anything is reserved;
            # `create_job(max_active=)` counts again under the database's lock for other processes.
            active = await self.store.active_job_count(spec.user_id)
            if active >= self.max_jobs_per_user:
                raise self._busy(active)
            try:
                reservation = await self.store.reserve(
                    spec.scope, spec.user_id, spec.count, roles=spec.roles
                )
            except QuotaRefused as refusal:
                raise JobRefused(uncharged(str(refusal)), refusal.reason, refusal) from None
            try:
                job = await self.store.create_job(
                    scope=spec.scope,
                    guild_id=spec.guild_id,
                    channel_id=spec.channel_id,
                    thread_id=spec.thread_id,
                    user_id=spec.user_id,
                    source=spec.source,
                    message_id=spec.message_id,
                    application_id=spec.application_id,
                    interaction_token=spec.interaction_token,
                    token_expires_at=spec.token_expires_at,
                    prompt=spec.prompt,
                    negative_prompt=spec.negative_prompt,
                    options=spec.options(),
                    inputs=spec.inputs,
                    parent_job_id=spec.parent_job_id,
                    parent_index=spec.parent_index,
                    state=JobState.QUEUED,
                    reservation_id=reservation.id,
                    extra=spec.extra,
                    max_active=self.max_jobs_per_user,
                )
            except ActiveJobLimit as busy:
                await self.store.release(reservation.id)
                raise self._busy(busy.active) from None
            except Exception:
                # Not on cancellation: the row may have been committed; a held reservation with no
                # job is returned once it is older than `ORPHAN_MARGIN` (at a start, and every few
                # minutes: `JobRunner.release_orphans`).
                await self.store.release(reservation.id)
                raise
        return job

    # ---- dispatch -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.loop_task is None:
            await self.queue.start(self.wake.set, self._lost)
            self.loop_task = asyncio.create_task(self._loop(), name="wanbot-dispatch")

    def _lost(self, job_id: int) -> None:
        """Another process took this job over (we stalled past its lease): stop our copy, and
        anything scheduled to run it again here (a postponed delivery)."""
        self.inflight.unschedule(job_id)
        self.outcomes.forget(job_id)  # (again once a running task of it has ended)
        task = self.inflight.running.get(job_id)
        if task is not None:
            task.cancel()

    async def _loop(self) -> None:
        # A shared queue is also polled: the table is the truth, notifications only hurry it.
        poll = self.queue.poll_interval
        while True:
            if poll is None:
                await self.wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), poll)
            self.wake.clear()
            if await self._pass():
                self._moved = True
                if self.announcer is None or self.announcer.done():
                    # In the background: the next job must not wait for Discord edits.
                    self.announcer = asyncio.create_task(self._announce_positions())

    async def _pass(self) -> bool:
        """One `_dispatch`, tried again with backoff until it goes through: through a database
        outage (logged once, by `outage`), and through a bug too (logged with its traceback once
        per run of failures), since nothing may stop this loop but `stop`."""

        def before_sleep(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome is not None else None
            if err is None:
                return
            if store_trouble(err):
                self.metrics.store_errors.labels("dispatch").inc()
                self.outage.failed(err)
            elif state.attempt_number == 1:
                log.error("could not take jobs from the queue; retrying", exc_info=err)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_random_exponential(multiplier=FIRST_WAIT, max=LONGEST_WAIT),
            before_sleep=before_sleep,
        )
        moved = False
        async for attempt in retrying:
            with attempt:
                async with asyncio.timeout(PASS_TIMEOUT):
                    moved = await self._dispatch()
        self.outage.ok()
        return moved

    async def _dispatch(self) -> bool:
        """Start what may start now; True if anything did."""
        moved = False
        # One process (sqlite): up to `max_concurrent + prefetch` jobs before Wan, the in-process
        # `InFlight.wan_slots` gate their creates. A shared queue counts the Wan slots itself, in
        # the database for every process (`pop` claims only with a free slot), so no prefetch.
        while self.queue.shared or self.inflight.before_wan() < self.max_concurrent + self.prefetch:
            if self.inflight.stopped:
                return moved
            claim = await self.queue.pop()
            if claim is None:
                break
            self.launch(claim[0])
            moved = True
        for job_id, _lease in await self.queue.take_over():
            if job_id not in self.inflight.running:
                self.launch(job_id)
        if self.queue.shared and time.monotonic() >= self._abandoned_due:
            await self.end_abandoned()
            self._abandoned_due = time.monotonic() + ABANDONED_EVERY
        return moved

    async def end_abandoned(self) -> None:
        """End, refunded, the jobs of `python -m bot edit` whose process is gone (killed): nobody
        else may follow them (their results go to its terminal), and one that had started holds a
        Wan slot until it ends. A job its process still holds is left alone."""
        ended = await self.store.end_abandoned_jobs(
            TERMINAL_SOURCE, error_code="Interrupted", error_message=TERMINAL_INTERRUPTED
        )
        if ended:
            log.warning(
                "ended %d job(s) of `python -m bot edit` whose process is gone (refunded): %s",
                len(ended),
                ", ".join(f"#{job_id}" for job_id in ended),
            )

    def launch(self, job_id: int) -> None:
        """Run the job now, in its own task."""
        inflight = self.inflight
        if inflight.stopped:
            return  # shutting down: the job keeps its stored state for the next start
        inflight.unschedule(job_id)
        task = asyncio.create_task(self.run_job(job_id), name=f"wanbot-job-{job_id}")
        inflight.running[job_id] = task
        task.add_done_callback(lambda finished: self._ended(job_id, finished))

    def _ended(self, job_id: int, finished: asyncio.Task[None]) -> None:
        """However the job's task ended, its Wan slot comes back, and its lease unless a later run
        here is scheduled (a postponed delivery): a job it left unfinished is then taken over on a
        shared queue once the lease runs out, and run again here after a pause on this process's
        own queue."""
        inflight = self.inflight
        inflight.forget(job_id)
        left = job_id in inflight.left
        inflight.left.discard(job_id)
        err = None if finished.cancelled() else finished.exception()
        if err is not None:
            left = left or store_trouble(err)
            log.error("job %d: its task ended with an error", job_id, exc_info=err)
        if not inflight.stopped and job_id not in inflight.later:
            # (A stop hands the leases over itself, at once: `JobQueue.close`.)
            self.queue.release(job_id)
            if left and not self.queue.shared:
                inflight.schedule(job_id, random.uniform(1.0, LONGEST_WAIT), self.launch)
        if job_id not in inflight.later:
            self.outcomes.forget(job_id)  # no further run of it here
        self.wake.set()

    async def _announce_positions(self) -> None:
        # A move while the places are being shown is shown in a round of its own after it.
        while self._moved:
            await asyncio.sleep(self.announce_delay)
            self._moved = False
            try:
                await self._show_positions()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # Only the places shown: the next start shows them again.
                if store_trouble(err):
                    self.outage.failed(err)
                else:
                    log.exception("could not show the queue's places")

    async def _show_positions(self) -> None:
        # Every start moves the whole queue up one place; editing every waiting message each time
        # would flood Discord with edits, so near the front every move is shown, further back every fifth.
        positions = await self.queue.positions()
        # Shown waiting here, now neither waiting nor running here: another process took it.
        waiting = {job_id for job_id, _ in positions}
        for job_id in self.outcomes.shown_position.keys() - waiting - self.inflight.running.keys():
            self.outcomes.forget(job_id)
        for job_id, index in positions:
            shown = self.outcomes.shown_position.get(job_id)
            if shown is not None and index > 10 and shown - index < 5:
                continue
            job = await self.store.get_job(job_id)
            # The queue moves while we edit: a job that has started since must not look queued again.
            if job is not None and await self.queue.position(job_id) is not None:
                await self.outcomes.show(job, Progress("queued", position=index, cancellable=True))
