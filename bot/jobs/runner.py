"""The job runner: the one owner of jobs in flight, behind a short facade.

Every request (slash command, reply, menu, button) becomes a `JobSpec`; `submit` reserves quota and
writes the job row, then the queue feeds at most `max_concurrent` Wan tasks at a time. Each state change
is written to the store before anything else happens, so that after a crash `resume` can pick every job
up where it stopped: a job whose create call may have reached Wan is never created again.

The parts: `dispatcher` (admission, per-user cap, starting jobs), `queue` (waiting jobs and
positions), `job_life` with `creator` and `deliverer` (one job from create to delivery, with the retry
policy), `outcomes` (telling the requester, writing how it ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.i18n import _
from bot.images import CheckedImage
from bot.jobs.creator import Creator
from bot.jobs.deliverer import DELIVERING_NOTICE, Deliverer
from bot.jobs.dispatcher import ANNOUNCE_DELAY, PREFETCH, Dispatcher
from bot.jobs.inflight import InFlight
from bot.jobs.job_folders import remove_stale
from bot.jobs.job_life import INTERRUPTED, JobLife
from bot.jobs.models import TERMINAL_SOURCE, Delivery, JobSpec
from bot.jobs.outages import WRITE_PATIENCE, Outage, store_trouble
from bot.jobs.outcomes import Outcomes
from bot.jobs.queue import JobQueue, MemoryQueue
from bot.jobs.reconciler import MARGIN, Reconciler
from bot.jobs.retention import DailyPurge
from bot.jobs.running_times import RunningTimes
from bot.jobs.surface import Surface
from bot.metrics import Metrics
from bot.store import Job, JobState, Store
from bot.wan import TaskStatus, WanClient, WanError

log = logging.getLogger(__name__)

# How long `stop` waits for cancelled jobs to end (they end at once unless something is wrong).
STOP_WAIT = 10.0
# How often a running bot releases holds left without a job (`release_orphans`).
ORPHAN_SWEEP_EVERY = 300.0


class JobRunner:
    """start, stop, resume, precheck, submit, cancel, position, alive."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        surface: Surface,
        *,
        max_concurrent: int = 5,
        max_jobs_per_user: int = 2,
        prefetch: int = PREFETCH,
        announce_delay: float = ANNOUNCE_DELAY,
        delivery_attempts: int = 3,
        retry_delay: float = 2.0,
        redeliver_after: float = 300.0,
        delivering_notice: float = DELIVERING_NOTICE,
        shutdown_grace: float = 120.0,
        clock: Callable[[], float] = time.time,
        queue: JobQueue | None = None,
        metrics: Metrics | None = None,
        reconcile_margin: float = MARGIN,
        write_patience: float = WRITE_PATIENCE,
        orphan_sweep_every: float = ORPHAN_SWEEP_EVERY,
        retention_days: int = 0,
    ) -> None:
        self.store = store
        self.orphan_sweep_every = orphan_sweep_every
        # A start sweeps itself (`WanBot.setup_hook`): the first periodic one is a period later.
        self._next_sweep = time.monotonic() + orphan_sweep_every
        self._sweep_failing = False
        self.wan = wan
        self.surface = surface
        self.shutdown_grace = shutdown_grace
        self.queue: JobQueue = queue if queue is not None else MemoryQueue()
        # `wan_slots` is this process's Wan slot count (sqlite, one process); on a shared queue
        # the database counts them for every process and never lets more than `max_concurrent`
        # start, so the in-process semaphore then never has to wait.
        self.inflight = InFlight(
            wan_slots=asyncio.Semaphore(max_concurrent),
            delivery_slots=asyncio.Semaphore(max_concurrent),
            lease=self.queue.lease,
        )
        self.metrics = metrics if metrics is not None else Metrics()
        # Whether the database answers, as every part of the runner finds out (one log line at
        # each edge of an outage; `check --live` and the metrics read it).
        self.outage = outage = Outage(write_patience=write_patience)
        store.report_outages_to(outage)
        self.metrics.watch(
            queue_length=lambda: len(self.queue),
            tasks_in_flight=lambda: len(self.inflight.statuses),
            runner_alive=self.alive,
            wan_slots=max_concurrent,
        )
        limiter = wan.limiter
        self.metrics.watch_queries(
            granted=lambda: getattr(limiter, "granted", 0),
            # A budget shared by several processes is the database's (its gate), not this one's.
            budget=lambda: getattr(limiter, "gate_rate", None) or limiter.rate,
        )
        self.outcomes = Outcomes(
            store,
            surface,
            self.metrics,
            lease=self.queue.lease,
            release=self.queue.release,
            outage=outage,
        )
        self.creator = Creator(
            store,
            wan,
            surface,
            self.inflight,
            self.outcomes,
            clock=clock,
            metrics=self.metrics,
            reconciler=Reconciler(store, wan, margin=reconcile_margin),
            outage=outage,
        )
        self.deliverer = Deliverer(
            store,
            wan,
            surface,
            self.inflight,
            self.outcomes,
            relaunch=self._relaunch,
            delivery_attempts=delivery_attempts,
            retry_delay=retry_delay,
            redeliver_after=redeliver_after,
            metrics=self.metrics,
            outage=outage,
            delivering_notice=delivering_notice,
        )
        # Wan's running times, kept in the store for the polls of the next process.
        self.running_times = RunningTimes(store, wan)
        self.life = JobLife(
            store,
            wan,
            self.inflight,
            self.outcomes,
            self.creator,
            self.deliverer,
            clock=clock,
            metrics=self.metrics,
            outage=outage,
            running_times=self.running_times,
        )
        self.dispatcher = Dispatcher(
            store,
            self.queue,
            self.inflight,
            self.outcomes,
            self.life.run,
            max_concurrent=max_concurrent,
            max_jobs_per_user=max_jobs_per_user,
            metrics=self.metrics,
            prefetch=prefetch,
            outage=outage,
            announce_delay=announce_delay,
        )

        # What is older than WANBOT_RETENTION_DAYS goes once a day (0: kept).
        self.retention = DailyPurge(store, retention_days)

    def _relaunch(self, job_id: int) -> None:
        self.dispatcher.launch(job_id)

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching queued jobs (after clearing what a killed process left on disk)."""
        await asyncio.to_thread(remove_stale)
        # Before any job is followed: its polls are placed by the running times learned so far.
        await self.running_times.recall()
        await self.dispatcher.start()
        self.retention.start()

    async def release_orphans(self) -> None:
        """At most every `orphan_sweep_every` seconds (called more often, by a background loop):
        release the holds older than `ORPHAN_MARGIN` that have no job, left by a process that
        died between reserving and storing its job, without waiting for a restart. Never raises:
        a database outage is reported to `outage` (logged once), a bug logged once per run."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.orphan_sweep_every
        try:
            await self.store.release_orphaned_reservations()
        except Exception as err:
            if store_trouble(err):
                self.outage.failed(err)
            elif not self._sweep_failing:
                log.exception("could not release holds left without a job; trying again later")
            self._sweep_failing = True
            return
        self._sweep_failing = False
        self.outage.ok()

    def alive(self) -> bool:
        """True while the dispatcher runs (started, not stopped, not died of an error)."""
        task = self.dispatcher.loop_task
        return task is not None and not task.done()

    async def stop(self) -> None:
        """Stop everything in flight. Jobs keep their stored state and resume at the next start.

        Polls stop at once; a create call or a delivery under way is let finish (within
        `shutdown_grace`), since stopping it halfway could lose a task Wan has already billed or
        post a result twice.
        """
        inflight = self.inflight
        inflight.stopped = True
        inflight.unschedule()  # postponed deliveries, jobs waiting for the database: next start
        await self.retention.stop()  # a batch under way commits (store writes are shielded)
        dispatcher = self.dispatcher
        tasks = [
            t
            for t in (dispatcher.loop_task, dispatcher.announcer, *inflight.running.values())
            if t is not None
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            # A cancelled job ends at its next await; one that does not (a bug below it) must not
            # keep the process from stopping: its job stays as stored and resumes next start.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
            for task in stuck:
                log.warning(
                    "%s did not stop within %.0f s; left to resume", task.get_name(), STOP_WAIT
                )
        if inflight.critical_tasks:
            log.info(
                "waiting for %d create or delivery call(s) to finish", len(inflight.critical_tasks)
            )
            await asyncio.wait(set(inflight.critical_tasks), timeout=self.shutdown_grace)
        dispatcher.loop_task = dispatcher.announcer = None
        inflight.running.clear()
        await self.queue.close()

    async def resume(self) -> int:
        """Pick up every unfinished job from the store; return how many were resumed.

        On a shared queue there is nothing to pick up by hand: queued jobs wait in the table, and
        jobs of a process that died are taken over when their leases run out (the dispatcher).
        """
        if self.queue.shared:
            log.info("jobs come from the shared queue; a stopped process's are taken over")
            self.dispatcher.wake.set()
            return 0
        await self.end_abandoned()
        resumed = 0
        for job in await self.store.unfinished_jobs():
            if self.inflight.stopped:
                break
            if job.id in self.inflight.running or job.id in self.queue:
                continue
            if job.source == TERMINAL_SOURCE:
                continue  # `python -m bot edit` follows its own jobs (`end_abandoned`)
            resumed += 1
            if job.state == JobState.VALIDATING:
                await self.outcomes.fail(job, INTERRUPTED, "Interrupted")
            elif job.state == JobState.QUEUED:
                await self.queue.push(job.id)
            else:
                # With a task id: followed again. Without one, the create call was sent but its
                # answer was never stored: the job looks for its task in Wan's task list and is
                # never created again (`JobLife.run`).
                self.dispatcher.launch(job.id)
        log.info("resumed %d unfinished job(s)", resumed)
        self.dispatcher.wake.set()
        return resumed

    def following(self, job_id: int) -> bool:
        """Whether this runner runs the job now, or has a run of it scheduled."""
        return job_id in self.inflight.running or job_id in self.inflight.later

    async def end_abandoned(self) -> None:
        """End, refunded, the jobs of `python -m bot edit` whose process is gone; never one whose
        process still holds it (`Store.hold_jobs`). A process on a shared queue also does this
        every few seconds, so a killed edit's Wan slot comes back."""
        await self.dispatcher.end_abandoned()

    # ---- requests ---------------------------------------------------------------------------

    async def precheck(
        self, scope: int, user: int, count: int, roles: tuple[int, ...] = ()
    ) -> None:
        """Refuse early (before any download) what `submit` would refuse; reserves nothing.

        Paused by the owner, over any limit: refused here (the store decides, `submit` again).
        """
        await self.dispatcher.precheck(scope, user, count, roles)

    async def submit(self, spec: JobSpec, images: list[CheckedImage]) -> Job:
        """Reserve quota, store the job and queue it. Raises `JobRefused` with nothing spent.
        A job that starts at once takes `images` (the list is emptied); one that waits does not."""
        return await self.dispatcher.submit(spec, images)

    def holding_inputs(self) -> contextlib.AbstractContextManager[bool]:
        """`with runner.holding_inputs() as keep:` around a request from its checked images to its
        `submit`: whether its job will start at once and use them; if not, the request lets go of
        them at once (the job fetches them again when its turn comes)."""
        return self.dispatcher.holding_inputs()

    def unclaimed_result(self, job: Job) -> contextlib.AbstractAsyncContextManager[Delivery]:
        """`async with runner.unclaimed_result(job) as delivery:` the files of a result Wan billed
        that reached no one (the job ended `Undeliverable`), fetched again while Wan keeps it, for
        the member to have it posted where they are now. Nothing is charged for it: the member
        was told so when it could not be delivered. Raises `JobRefused` when it is gone."""
        return self.deliverer.unclaimed(job)

    async def position(self, job_id: int) -> int | None:
        """1-based place in the queue (shared by every process), or None when it is not waiting."""
        return await self.queue.position(job_id)

    async def cancel(self, job_id: int) -> str:
        """Cancel a job waiting in the queue or still PENDING at Wan; return what happened, for the user."""
        job = await self.store.get_job(job_id)
        if job is not None and job.state == JobState.CANCELLED:
            return _("Job #{job_id} is already cancelled. Nothing was charged.", job_id=job_id)
        if job is None or job.state in (JobState.DONE, JobState.FAILED):
            return _("This job has already finished.")
        inflight = self.inflight
        if job_id in inflight.cancelling or job_id in inflight.cancel_requested:
            return _("Already cancelling job #{job_id}. Nothing was charged.", job_id=job_id)
        if await self.queue.remove(job_id):
            inflight.images.pop(job_id, None)
            await self.outcomes.finish(job, JobState.CANCELLED)
            await self.outcomes.say(job, _("Cancelled before it started. Nothing was charged."))
            self.dispatcher.wake.set()
            return _("Cancelled. Nothing was charged.")
        if job_id in inflight.running and job.task_id is None:
            inflight.cancel_requested.add(job_id)
            if job_id not in inflight.submitting:
                # Fetching its images, waiting for a slot or to retry a throttled create: it is
                # stopped before anything is sent.
                return _("Cancelled. Nothing was charged.")
            # The create is on its way: the task it makes is cancelled as soon as it exists.
            return _("Cancelling… Nothing was charged.")
        # A job another process follows: Wan itself refuses to cancel a task that has started.
        elsewhere = self.queue.shared and job_id not in inflight.running
        pending = inflight.statuses.get(job_id) == TaskStatus.PENDING or (
            elsewhere and job.state == JobState.SUBMITTED
        )
        if job.task_id is None or not pending:
            return _("Too late to cancel: Wan is already working on it.")
        inflight.cancelling.add(job_id)
        try:
            await self.wan.cancel_task(job.task_id)
        except WanError as err:
            inflight.cancelling.discard(job_id)
            log.info("job %d: cancel refused by Wan (%s)", job_id, err.code)
            return _("Too late to cancel: Wan has already started on it.")
        return _("Cancelling… Nothing was charged.")
