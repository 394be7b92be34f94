"""Creating a job's Wan task: once (the client retries only where Wan's answer proves no task was made)."""

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
from bot.store import Job, JobState, Store
from bot.wan import CreatedTask, EditRequest, InputImage, WanClient, WanError

log = logging.getLogger(__name__)

SLOT_CHECK = 0.5  # seconds between cancel checks while a job waits for a Wan slot


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.wan = wan
        self.surface = surface
        self.inflight = inflight
        self.outcomes = outcomes
        self._clock = clock

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
        # A Wan slot, given back when the task ends (or the job does); a cancel while waiting for
        # one is seen within half a second.
        while True:
            try:
                await asyncio.wait_for(self.inflight.take_wan_slot(job.id), SLOT_CHECK)
                break
            except TimeoutError:
                if await self.cancelled_meanwhile(job):
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
            prompt_extend=options.get("prompt_extend", True),
            watermark=options.get("watermark", False),
        )

        async def create_and_record() -> CreatedTask:
            # SUBMITTED is written before the call: after a crash while it is in flight, resume
            # will not create it again. A known failure means no task was made: back to QUEUED.
            await self.store.update_job(job.id, state=JobState.SUBMITTED)
            try:
                created = await self.wan.create_task(request)
            except WanError as err:
                if err.code != "CreateOutcomeUnknown":
                    await self.store.update_job(job.id, state=JobState.QUEUED)
                raise
            log.info("job %d: Wan task %s created", job.id, created.task_id)
            await self.store.set_task_id(job.id, created.task_id)
            return created

        # Synchronously after the last cancel check: a cancel now finds the job submitting.
        self.inflight.submitting.add(job.id)
        try:
            # The client's retry policy is the only one for creates (at most 4 POSTs, and only
            # after answers that prove no task was made): no second loop here.
            created = await self.inflight.critical(create_and_record())
        except WanError as err:
            if err.code != "CreateOutcomeUnknown":
                self.inflight.submitting.discard(job.id)
            log.warning("job %d: create failed: %s (request %s)", job.id, err.code, err.request_id)
            await self.outcomes.fail(job, f"{err.user_message} {NOTHING_CHARGED}", err.code)
            return None
        stored = await self.store.get_job(job.id)
        assert stored is not None
        self.inflight.statuses[stored.id] = created.status
        await self.outcomes.show(
            stored, Progress("pending", started_at=self._clock(), cancellable=True)
        )
        return stored

    async def cancelled_meanwhile(self, job: Job) -> bool:
        """End the job if its requester cancelled it while it was starting; True if so."""
        if job.id not in self.inflight.cancel_requested:
            return False
        self.inflight.cancel_requested.discard(job.id)
        await self.outcomes.finish(job, JobState.CANCELLED)
        await self.outcomes.say(job, f"Cancelled before it started. {NOTHING_CHARGED}")
        return True
