"""The life of one job once it leaves the queue: create its task (unless it has one), follow the task
until it ends, then deliver, or end the job with the reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.i18n import _
from bot.jobs.creator import Creator
from bot.jobs.deliverer import Deliverer
from bot.jobs.inflight import InFlight
from bot.jobs.models import Progress, uncharged
from bot.jobs.outages import Outage, persist, store_trouble
from bot.jobs.outcomes import Outcomes
from bot.jobs.running_times import RunningTimes
from bot.metrics import Metrics
from bot.store import Job, JobState, LeaseLost, Store
from bot.wan import TaskResult, TaskStatus, WanClient, WanError
from bot.wan.errors import CLIENT_CLOSED

log = logging.getLogger(__name__)

# Told, not only written: the job's message would otherwise stay "queued" for ever.
INTERRUPTED = _("The bot restarted before this job was queued. Nothing was charged.")


class JobLife:
    """Runs one job from its start to its end (`run`)."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        inflight: InFlight,
        outcomes: Outcomes,
        creator: Creator,
        deliverer: Deliverer,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics,
        outage: Outage | None = None,
        running_times: RunningTimes | None = None,
    ) -> None:
        self.store = store
        self.outage = outage if outage is not None else Outage()
        self.wan = wan
        self.running_times = running_times or RunningTimes(store, wan)
        self.inflight = inflight
        self.outcomes = outcomes
        self.creator = creator
        self.deliverer = deliverer
        self._clock = clock
        self.metrics = metrics

    async def run(self, job_id: int) -> None:
        try:
            job = await persist(self.outage, lambda: self.store.get_job(job_id))
        except Exception as err:
            if not store_trouble(err):
                raise
            self._leave(job_id)
            return
        if job is None or job.finished:
            return  # (finished: a run scheduled before it ended, by this process or another)
        try:
            if job.state == JobState.VALIDATING:
                # Left by a process that stopped before the job was queued: taken over on
                # PostgreSQL (sqlite's `resume` fails these itself).
                await self.outcomes.fail(job, INTERRUPTED, "Interrupted")
                return
            if job.task_id is None and job.state == JobState.SUBMITTED:
                # Taken over from a process that died during the create call (or resumed after a
                # restart): Wan may have made the task, so it is never created again; it is
                # looked for in Wan's task list instead.
                job = await self.creator.unknown_outcome(job)
                if job is None:
                    return
            elif job.task_id is None:
                job = await self.creator.create(job)
                if job is None:
                    return
            await self._follow(job)
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            # This process stalled past its lease and another one has the job now: it carries on.
            log.info("job %d: taken over by another process; dropped here", job_id)
        except WanError as err:
            if err.code == CLIENT_CLOSED:
                return  # shutting down: the task is followed again at the next start
            # Polling gave up (a revoked key, a long outage): the task's fate is unknown to us,
            # and the user is not charged for a result they never got.
            self.metrics.wan_errors.labels(err.code).inc()
            log.warning("job %d: Wan error while following the task: %s", job_id, err.code)
            await self.outcomes.fail(job, uncharged(err.user_message), err.code)
        except Exception as err:
            if store_trouble(err):
                # The database stayed away longer than a write after Wan's answer is retried:
                # ending the job now could refund a task Wan runs or has billed. It stays as it
                # is stored, for this process or another to take up when the database is back.
                self._leave(job_id)
                return
            # A last resort for a bug of ours: the job ends, refunded, instead of hanging.
            log.exception("job %d failed unexpectedly", job_id)
            await self.outcomes.fail(
                job,
                _(
                    "Something went wrong on our side (job #{job_id}). Nothing was charged.",
                    job_id=job_id,
                ),
                "InternalBotError",
            )

    def _leave(self, job_id: int) -> None:
        log.warning("job %d: left as it is stored until the database answers again", job_id)
        self.inflight.left.add(job_id)

    async def _follow(self, job: Job) -> None:
        assert job.task_id is not None
        started = self._clock()
        show = self.outcomes.show

        async def on_update(update: TaskResult) -> None:
            self.inflight.statuses[job.id] = update.status
            if update.status == TaskStatus.RUNNING:
                nonlocal started
                started = self._clock()
                try:
                    await self.store.update_job(
                        job.id, state=JobState.RUNNING, lease=self.inflight.lease(job.id)
                    )
                except Exception as err:
                    if not store_trouble(err):
                        raise
                    # Only the stage is lost (SUBMITTED counts the same Wan slot): the task is
                    # followed on, and what it ends in is written with retries.
                    self.outage.failed(err)
                await show(job, Progress("running", started_at=started))
            elif update.status == TaskStatus.PENDING:
                await show(job, Progress("pending", started_at=started, cancellable=True))

        redelivery = job.state == JobState.DELIVERING
        if redelivery:
            result = await self.wan.get_task(job.task_id)
        else:
            result = await self.wan.wait(job.task_id, on_update=on_update)
        self.inflight.statuses[job.id] = result.status
        if result.status.is_final:
            self.inflight.task_ended(job.id)
        if not redelivery:
            self._observe(result)
        if result.status == TaskStatus.SUCCEEDED:
            async with self.inflight.delivery_slots:
                await self.deliverer.deliver(job, result, redelivery=redelivery)
        elif result.status == TaskStatus.CANCELED:
            await self.outcomes.finish(job, JobState.CANCELLED)
            await self.outcomes.say(job, _("Cancelled. Nothing was charged."))
        elif result.status == TaskStatus.UNKNOWN:
            await self.outcomes.fail(
                job,
                _(
                    "Wan no longer knows this task (task ids expire after 24 hours), so its result "
                    "is lost. Nothing was charged."
                ),
                "TaskExpired",
            )
        else:
            err = result.error
            self.metrics.wan_errors.labels(result.code or "TaskFailed").inc()
            text = err.user_message if err is not None else _("Wan couldn't finish this edit.")
            await self.outcomes.fail(job, uncharged(text), result.code or "TaskFailed")
        if not redelivery:
            # After the member has the result: kept for the next process's polls.
            await self.running_times.remember(result)

    def _observe(self, result: TaskResult) -> None:  # pragma: no mutate block (metrics only)
        """Task duration and detection lag, from the times Wan reports."""
        if result.end_time is None:
            return
        if result.submit_time is not None:
            self.metrics.task_duration.observe(
                max(0.0, (result.end_time - result.submit_time).total_seconds())
            )
        self.metrics.detection_lag.observe(max(0.0, self._clock() - result.end_time.timestamp()))
