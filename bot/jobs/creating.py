"""Creating a job's Wan task: once, with retries only where Wan's answer proves no task was made."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.images import ImageRejected
from bot.jobs.endings import Outcomes
from bot.jobs.inflight import InFlight
from bot.jobs.models import NOTHING_CHARGED, Progress
from bot.jobs.surface import Surface
from bot.metrics import Metrics
from bot.store import Job, JobState, Store
from bot.wan import CreatedTask, EditRequest, InputImage, WanClient, WanError

log = logging.getLogger(__name__)

UNKNOWN_CREATE = (
    "The bot restarted while sending this job to Wan, so it can't tell whether Wan received it. "
    f"It was not sent again. {NOTHING_CHARGED}"
)


class Creator:
    """Fetches a job's inputs if needed and creates its Wan task, writing SUBMITTED before the call."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        surface: Surface,
        inflight: InFlight,
        outcomes: Outcomes,
        *,
        create_attempts: int,
        retry_delay: float,
        clock: Callable[[], float] = time.time,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.wan = wan
        self.surface = surface
        self.inflight = inflight
        self.outcomes = outcomes
        self.create_attempts = create_attempts
        self.retry_delay = retry_delay
        self._clock = clock
        self.metrics = metrics

    async def create(self, job: Job) -> Job | None:
        """The job with its task id, or None when it ended here (failed, cancelled)."""
        images = self.inflight.images.pop(job.id, None)
        if images is None:
            try:
                images = await self.surface.fetch_inputs(job)
            except ImageRejected as err:
                await self.outcomes.fail(job, f"{err} {NOTHING_CHARGED}", "InputGone")
                return None
        if await self.cancelled_meanwhile(job):
            return None
        options = job.options
        request = EditRequest(
            prompt=job.prompt,
            images=[
                InputImage(data=i.data, mime=i.mime, url=i.url, filename=i.filename) for i in images
            ],
            negative_prompt=job.negative_prompt or None,
            n=int(options.get("count", 1)),
            seed=options.get("seed"),
            size=options.get("size"),
            prompt_extend=options.get("prompt_extend", True),
            watermark=options.get("watermark", False),
        )

        async def create_and_record() -> CreatedTask:
            # SUBMITTED is written before the call: after a crash while it is in flight, resume
            # will not create it again. A known failure means no task was made: back to QUEUED.
            lease = self.inflight.lease(job.id)

            async def submitted() -> None:
                # After the rate-limit wait, just before sending: the window in which a crash
                # leaves "may exist" behind is the call itself. Fenced: a process that lost the
                # job stops here, before anything reaches Wan.
                await self.store.update_job(job.id, state=JobState.SUBMITTED, lease=lease)

            try:
                created = await self.wan.create_task(request, before_send=submitted)
            except WanError as err:
                if err.code != "CreateOutcomeUnknown":
                    await self.store.update_job(job.id, state=JobState.QUEUED, lease=lease)
                raise
            log.info("job %d: Wan task %s created", job.id, created.task_id)
            await self.store.set_task_id(job.id, created.task_id, lease=lease)
            return created

        for attempt in range(1, self.create_attempts + 1):
            # Synchronously after the last cancel check: a cancel now finds the job submitting.
            self.inflight.submitting.add(job.id)
            try:
                created = await self.inflight.critical(create_and_record())
                break
            except WanError as err:
                if err.code != "CreateOutcomeUnknown":
                    self.inflight.submitting.discard(job.id)
                self.metrics.wan_errors.labels(err.code).inc()
                log.warning(
                    "job %d: create failed: %s (request %s, attempt %d)",
                    job.id,
                    err.code,
                    err.request_id,
                    attempt,
                )
                # The client already retried quickly. A throttled or failed create made no task, so it
                # is safe to try again later; an unknown outcome (no answer) is never retried.
                if (
                    not err.retryable
                    or err.code == "CreateOutcomeUnknown"
                    or attempt == self.create_attempts
                ):
                    await self.outcomes.fail(job, f"{err.user_message} {NOTHING_CHARGED}", err.code)
                    return None
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
                if await self.cancelled_meanwhile(job):
                    return None
        stored = await self.store.get_job(job.id)
        assert stored is not None
        self.inflight.statuses[stored.id] = created.status
        await self.outcomes.show(
            stored, Progress("pending", started_at=self._clock(), cancellable=True)
        )
        return stored

    async def unknown_outcome(self, job: Job) -> None:
        """End a job whose create call was sent but whose answer was never stored (a crash, a
        restart): Wan may have made the task, and creating it again could bill twice. Refunded."""
        log.warning(
            "job %d: its create call may have reached Wan (no task id stored); not sent again",
            job.id,
        )
        await self.outcomes.fail(job, UNKNOWN_CREATE, "CreateOutcomeUnknown")

    async def cancelled_meanwhile(self, job: Job) -> bool:
        """End the job if its requester cancelled it while it was starting; True if so."""
        if job.id not in self.inflight.cancel_requested:
            return False
        self.inflight.cancel_requested.discard(job.id)
        await self.outcomes.finish(job, JobState.CANCELLED)
        await self.outcomes.say(job, f"Cancelled before it started. {NOTHING_CHARGED}")
        return True
