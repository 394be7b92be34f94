"""Creating a job's Wan task: once (the client retries only where Wan's answer proves no task was made)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.i18n import _, text_of
from bot.images import CheckedImage, ImageRejected
from bot.jobs.inflight import InFlight
from bot.jobs.job_folders import JobFolder
from bot.jobs.models import Progress, from_text, uncharged
from bot.jobs.outages import Outage, persist
from bot.jobs.outcomes import Outcomes
from bot.jobs.reconciler import Reconciler
from bot.jobs.surface import Surface
from bot.metrics import Metrics
from bot.store import Job, JobState, LeaseLost, Store
from bot.wan import (
    CreatedTask,
    CreateOutcomeUnknown,
    EditRequest,
    ImagineRequest,
    InputImage,
    TaskStatus,
    WanClient,
    WanError,
)
from bot.wan.errors import blames_request

log = logging.getLogger(__name__)

# Not Wan's: the code of a create stopped by a cancel before it was sent.
CANCELLED_BEFORE_SEND = "CancelledBeforeSend"

SLOT_CHECK = 0.5  # seconds between cancel checks while a job waits for a Wan slot

UNKNOWN_CREATE = _(
    "The bot restarted while sending this job to Wan, so it can't tell whether "
    "Wan received it. It was not sent again. Nothing was charged."
)


class Creator:
    """Fetches a job's inputs if needed and creates its Wan task, writing SUBMITTED before the call.
    A create left without an answer is looked for in Wan's task list (`Reconciler`), never resent."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        surface: Surface,
        inflight: InFlight,
        outcomes: Outcomes,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics,
        reconciler: Reconciler | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.store = store
        self.outage = outage if outage is not None else Outage()
        # Tasks Wan made whose id could not be stored (the database was away): the job's next run
        # here records it, rather than looking for it in Wan's task list (`unknown_outcome`).
        self.answered: dict[int, str] = {}
        self.reconciler = reconciler or Reconciler(store, wan)
        self.wan = wan
        self.surface = surface
        self.inflight = inflight
        self.outcomes = outcomes
        self._clock = clock
        self.metrics = metrics

    async def create(self, job: Job) -> Job | None:
        """The job with its task id, or None when it ended here (failed, cancelled)."""
        # Its images wait for a Wan slot, and go out with the create, from the job's folder on
        # disk: prefetched jobs and creates at once hold no image in memory.
        spool = JobFolder(job.id, "inputs")
        async with spool as folder:
            return await self._create(job, folder, spool)

    async def _create(self, job: Job, folder: Path, spool: JobFolder) -> Job | None:
        checked = self.inflight.images.pop(job.id, None)
        if from_text(job):
            checked = []  # made from the prompt alone: nothing to fetch
        elif checked is None:
            try:
                checked = await self.surface.fetch_inputs(job)
            except ImageRejected as err:
                await self.outcomes.fail(job, uncharged(text_of(err)), "InputGone")
                return None
        images = await _spool(checked, folder)
        del checked
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
        self.metrics.queue_wait.observe(max(0.0, self._clock() - job.created_at.timestamp()))
        if await self.cancelled_meanwhile(job):
            return None
        options = job.options
        settings = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt or None,
            "n": int(options.get("count", 1)),
            "seed": options.get("seed"),
            "size": options.get("size"),
            "prompt_extend": options.get("prompt_extend", True),
            "watermark": options.get("watermark", False),
        }
        request = (
            ImagineRequest(**settings) if from_text(job) else EditRequest(images=images, **settings)
        )

        inflight = self.inflight

        async def before_send() -> None:
            # Right before each POST, after its rate-limit wait: a cancel that came during a wait
            # (the rate limit, a retry after 429) stops the job here, before anything reaches Wan.
            if job.id in inflight.cancel_requested:
                raise WanError(
                    CANCELLED_BEFORE_SEND, "cancelled before it was sent", retryable=False
                )
            # SUBMITTED is written now, so the window in which a crash leaves "may exist" behind
            # is the call itself. Fenced by the lease on a shared queue: a process that lost the
            # job stops here (`LeaseLost`), before anything reaches Wan.
            # `submitted_at` marks the send: the window in which an unanswered create is looked for.
            await persist(
                self.outage,
                lambda: self.store.update_job(
                    job.id,
                    state=JobState.SUBMITTED,
                    submitted_at=datetime.fromtimestamp(self._clock(), UTC),
                    lease=lease,
                ),
            )
            # From now on the task may exist, so a cancel has to ask Wan.
            inflight.submitting.add(job.id)

        def after_refusal() -> None:
            inflight.submitting.discard(job.id)  # Wan said no task was made: waiting again

        lease = inflight.lease(job.id)

        async def create_and_record() -> CreatedTask:
            # After a crash while the call is in flight, resume will not create it again (the job
            # is SUBMITTED without a task id). A known failure means no task was made: back to QUEUED.
            try:
                created = await self.wan.create_task(
                    request, before_send=before_send, after_refusal=after_refusal
                )
            except WanError as err:
                if err.code != "CreateOutcomeUnknown":
                    await persist(
                        self.outage,
                        lambda: self.store.update_job(job.id, state=JobState.QUEUED, lease=lease),
                    )
                raise
            log.info("job %d: Wan task %s created", job.id, created.task_id)
            await self._record(job.id, created.task_id)
            return created

        try:
            # The client's retry policy is the only one for creates (at most 4 POSTs, and only
            # after answers that prove no task was made): no second loop here.
            # It reads the spooled images: a shutdown lets it finish before they are removed.
            created = await inflight.critical(
                spool.keep_for(asyncio.ensure_future(create_and_record()))
            )
            task_id, status = created.task_id, created.status
            self.metrics.wan_creates.labels("created").inc()
        except WanError as err:
            if err.code != "CreateOutcomeUnknown":
                inflight.submitting.discard(job.id)
            if err.code == CANCELLED_BEFORE_SEND:
                await self.cancelled_meanwhile(job)
                return None
            self.metrics.wan_errors.labels(err.code).inc()
            self.metrics.wan_creates.labels(create_outcome(err)).inc()
            log.warning("job %d: create failed: %s (request %s)", job.id, err.code, err.request_id)
            adopted = None
            if isinstance(err, CreateOutcomeUnknown):
                adopted = await self.adopt(job, err.span or self.reconciler.span_of(job))
            if adopted is None:
                await self.outcomes.fail(job, uncharged(err.user_message), err.code)
                return None
            task_id, status = adopted
        if job.id in inflight.cancel_requested:
            # Cancelled while the create was on its way: the new task is still PENDING, which
            # Wan cancels for free; the poll then sees CANCELED and ends the job.
            inflight.cancel_requested.discard(job.id)
            try:
                await self.wan.cancel_task(task_id)
            except WanError as err:
                log.info("job %d: cancel after the create refused by Wan (%s)", job.id, err.code)
        stored = await self.store.get_job(job.id)
        assert stored is not None
        self.inflight.statuses[stored.id] = status
        await self.outcomes.show(
            stored, Progress("pending", started_at=self._clock(), cancellable=True)
        )
        return stored

    async def unknown_outcome(self, job: Job) -> Job | None:
        """A job whose create call was sent but whose answer was never stored (a crash, a restart,
        a takeover): Wan may have made the task, and creating it again could bill twice. The job
        with the task it made when the task list shows it unambiguously, else None: ended, refunded."""
        followed = await self._task_arrived(job)
        if followed is not None:
            return followed
        log.warning(
            "job %d: its create call may have reached Wan (no task id stored); not sent again",
            job.id,
        )
        known = self.answered.get(job.id)
        if known is not None:
            # Its create was answered here; only the database was away when it came.
            await self._record(job.id, known)
            log.info("job %d: Wan task %s recorded now that the database is back", job.id, known)
            return await self.store.get_job(job.id)
        if await self.adopt(job, self.reconciler.span_of(job)) is not None:
            return await self.store.get_job(job.id)
        followed = await self._task_arrived(job)
        if followed is not None:
            return followed
        await self.outcomes.fail(job, UNKNOWN_CREATE, "CreateOutcomeUnknown")
        return None

    async def _task_arrived(self, job: Job) -> Job | None:
        """The job as stored, if the process that lost it has since recorded its task (`_hand_over`)."""
        stored = await self.store.get_job(job.id)
        if stored is None or stored.task_id is None:
            return None
        log.info(
            "job %d: its Wan task %s was recorded by its create's process", job.id, stored.task_id
        )
        return stored

    async def adopt(self, job: Job, span: tuple[float, float]) -> tuple[str, TaskStatus] | None:
        """Find the task an unanswered create made and record it as the job's (fenced by the
        lease); its id and listed status, or None when it can't be told for sure."""
        task = await self.reconciler.find(job, span)
        if task is None:
            return None
        await self._record(job.id, task.task_id)
        return task.task_id, task.status

    async def _record(self, job_id: int, task_id: str) -> None:
        """Store the job's task id, retried through a database outage (Wan runs the task and will
        bill it: the job must not be ended for want of the row). If the database stays away, the
        job stays SUBMITTED without it, which no other job's reconcile adopts from (it is a rival
        of every create in its window), and its next run records the id kept here."""
        self.answered[job_id] = task_id
        try:
            await persist(
                self.outage,
                lambda: self.store.set_task_id(job_id, task_id, lease=self.inflight.lease(job_id)),
            )
        except LeaseLost:
            self.answered.pop(job_id, None)
            await self._hand_over(job_id, task_id)
            raise
        self.answered.pop(job_id, None)

    async def _hand_over(self, job_id: int, task_id: str) -> None:
        """The lease was lost while the create was answered: the task is still this job's (its only
        one), so its id is recorded for the new owner to follow, rather than left for it to look
        for in Wan's task list, which can't tell it from a rival create's in the same window."""
        if await persist(self.outage, lambda: self.store.record_task(job_id, task_id)):
            log.info(
                "job %d: Wan task %s recorded for the process that took it over", job_id, task_id
            )
            return
        stored = await self.store.get_job(job_id)
        if stored is not None and stored.task_id is None:
            # Ended (refunded) before the id came: Wan runs and bills a task no job holds.
            log.error(
                "job %d: Wan task %s was created and will be billed, but the job had already"
                " ended (%s); its result is lost",
                job_id,
                task_id,
                stored.state.value,
            )

    async def cancelled_meanwhile(self, job: Job) -> bool:
        """End the job if its requester cancelled it while it was starting; True if so."""
        if job.id not in self.inflight.cancel_requested:
            return False
        self.inflight.cancel_requested.discard(job.id)
        await self.outcomes.finish(job, JobState.CANCELLED)
        await self.outcomes.say(job, _("Cancelled before it started. Nothing was charged."))
        return True


def create_outcome(err: WanError) -> str:
    """How a failed create counts (`wanbot_wan_creates_total`): `unknown` when it may have made a
    task, `rejected` when Wan refused the request itself (its input or content: the member's to
    change), else `failed` (the account, the service, the network: the owner's to look at)."""
    if isinstance(err, CreateOutcomeUnknown):
        return "unknown"
    return "rejected" if blames_request(err.code, err.http_status) else "failed"


async def _spool(images: list[CheckedImage], folder: Path) -> list[InputImage]:
    """The checked images as files in `folder`, for the create to read while it is sent."""
    spooled = []
    for index, image in enumerate(images, start=1):
        path = folder / f"input-{index}"
        await asyncio.to_thread(path.write_bytes, image.data)
        spooled.append(
            InputImage(
                data=None, mime=image.mime, url=image.url, filename=image.filename, path=path
            )
        )
    return spooled
