"""The job runner: the one owner of jobs in flight.

Every request (slash command, reply, menu, button) becomes a `JobSpec`; `JobRunner.submit` reserves quota
and writes the job row, then a FIFO queue feeds at most `max_concurrent` Wan tasks at a time. Each state
change is written to the store before anything else happens, so that after a crash `resume` can pick every
job up where it stopped: a job whose create call may have reached Wan is never created again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from bot.images import CheckedImage, ImageRejected
from bot.store import Job, JobState, QuotaRefused, Store
from bot.wan import (
    CreatedTask,
    EditRequest,
    InputImage,
    TaskResult,
    TaskStatus,
    WanClient,
    WanError,
)
from bot.wan.errors import CLIENT_CLOSED

log = logging.getLogger(__name__)
T = TypeVar("T")

NOTHING_CHARGED = "Nothing was charged."


class JobRefused(Exception):
    """A request refused before anything was spent. `str()` is the message for the user."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class JobSpec:
    """Everything a job needs, gathered by a cog; the runner turns it into a stored job."""

    scope: int
    guild_id: int | None
    channel_id: int
    user_id: int
    source: str
    prompt: str
    count: int = 1
    negative_prompt: str | None = None
    seed: int | None = None
    watermark: bool = False
    prompt_extend: bool = True
    inputs: list[dict] = field(default_factory=list)
    thread_id: int | None = None
    message_id: int | None = None
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)
    token_expires_at: datetime | None = None
    parent_job_id: int | None = None
    parent_index: int | None = None
    extra: dict = field(default_factory=dict)

    def options(self) -> dict:
        return {
            "count": self.count,
            "seed": self.seed,
            "watermark": self.watermark,
            "prompt_extend": self.prompt_extend,
        }


@dataclass(frozen=True)
class Progress:
    """What a user should see about a job right now."""

    stage: str  # queued | pending | running | delivering
    position: int | None = None
    started_at: float | None = None  # wall-clock seconds, for a live Discord timestamp
    cancellable: bool = False


@dataclass(frozen=True)
class Delivery:
    """A finished job's files and the facts its result message shows."""

    files: list[bytes]
    result: TaskResult
    elapsed: float
    remaining: int | None
    # True when an earlier run may already have posted it (a restart mid-delivery): look first.
    redelivery: bool = False


class Surface(Protocol):
    """Where jobs meet Discord: progress, delivery, failures, and fetching inputs again after a restart."""

    async def progress(self, job: Job, progress: Progress) -> None: ...

    async def deliver(self, job: Job, delivery: Delivery) -> list[int]: ...

    async def finished_without_result(self, job: Job, text: str) -> None: ...

    async def fetch_inputs(self, job: Job) -> list[CheckedImage]: ...


class JobRunner:
    """Queue, concurrency cap, per-user cap, and the life of each job from queue to delivery."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        surface: Surface,
        *,
        max_concurrent: int = 5,
        max_jobs_per_user: int = 2,
        delivery_attempts: int = 3,
        create_attempts: int = 4,
        retry_delay: float = 2.0,
        redeliver_after: float = 300.0,
        shutdown_grace: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.wan = wan
        self.surface = surface
        self.max_concurrent = max_concurrent
        self.max_jobs_per_user = max_jobs_per_user
        self.delivery_attempts = delivery_attempts
        self.create_attempts = create_attempts
        self.redeliver_after = redeliver_after
        self.shutdown_grace = shutdown_grace
        self.retry_delay = retry_delay
        self._clock = clock
        self._queue: deque[int] = deque()
        self._images: dict[int, list[CheckedImage]] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._statuses: dict[int, TaskStatus] = {}
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._shown_position: dict[int, int] = {}
        self._critical_tasks: set[asyncio.Future[Any]] = set()
        self._later: dict[int, asyncio.TimerHandle] = {}
        self._cancel_requested: set[int] = set()
        self._announcer: asyncio.Task[None] | None = None
        self._stopped = False
        # Jobs whose create call has started (or succeeded): too late for a cancel by flag.
        self._submitting: set[int] = set()
        self._postponed: defaultdict[int, int] = defaultdict(int)

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching queued jobs."""
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="wanbot-dispatch")

    async def stop(self) -> None:
        """Stop everything in flight. Jobs keep their stored state and resume at the next start.

        Polls stop at once; a create call or a delivery under way is let finish (within
        `shutdown_grace`), since stopping it halfway could lose a task Wan has already billed or
        post a result twice.
        """
        self._stopped = True
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()
        tasks = [
            t for t in (self._dispatcher, self._announcer, *self._running.values()) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._critical_tasks:
            log.info(
                "waiting for %d create or delivery call(s) to finish", len(self._critical_tasks)
            )
            await asyncio.wait(set(self._critical_tasks), timeout=self.shutdown_grace)
        self._dispatcher = self._announcer = None
        self._running.clear()

    async def resume(self) -> int:
        """Pick up every unfinished job from the store; return how many were resumed."""
        resumed = 0
        for job in await self.store.unfinished_jobs():
            if self._stopped:
                break
            if job.id in self._running or job.id in self._queue:
                continue
            resumed += 1
            if job.state == JobState.VALIDATING:
                await self._finish(job, JobState.FAILED, error_code="Interrupted")
            elif job.state == JobState.QUEUED:
                self._queue.append(job.id)
            elif job.task_id is None:
                # The create call was sent but its answer was never stored: Wan may have made the task.
                # Creating it again could bill twice, so the job ends here, refunded.
                await self._fail(
                    job,
                    "The bot restarted while sending this job to Wan, so it can't tell whether Wan "
                    f"received it. It was not sent again. {NOTHING_CHARGED}",
                    "CreateOutcomeUnknown",
                )
            else:
                self._launch(job.id)
        log.info("resumed %d unfinished job(s)", resumed)
        self._wake.set()
        return resumed

    # ---- requests ---------------------------------------------------------------------------

    async def precheck(self, scope: int, user: int, count: int) -> None:
        """Refuse early (before any download) what `submit` would refuse; reserves nothing."""
        active = await self.store.active_job_count(user)
        if active >= self.max_jobs_per_user:
            raise self._busy(active)
        status = await self.store.quota_status(scope, user)
        if status.blocked or status.remaining < count:
            # The store words refusals; ask it by trying, and hand back anything it granted.
            try:
                reservation = await self.store.reserve(scope, user, count)
            except QuotaRefused as refusal:
                raise JobRefused(f"{refusal} {NOTHING_CHARGED}", refusal.reason) from None
            await self.store.release(reservation.id)

    def _busy(self, active: int) -> JobRefused:
        return JobRefused(
            f"You already have {active} job(s) queued or running (the limit is "
            f"{self.max_jobs_per_user}). Wait for one to finish. {NOTHING_CHARGED}",
            "busy",
        )

    async def submit(self, spec: JobSpec, images: list[CheckedImage]) -> Job:
        """Reserve quota, store the job and queue it. Raises `JobRefused` with nothing spent."""
        async with self._user_locks[spec.user_id]:
            active = await self.store.active_job_count(spec.user_id)
            if active >= self.max_jobs_per_user:
                raise self._busy(active)
            try:
                reservation = await self.store.reserve(spec.scope, spec.user_id, spec.count)
            except QuotaRefused as refusal:
                raise JobRefused(f"{refusal} {NOTHING_CHARGED}", refusal.reason) from None
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
                )
            except Exception:
                # Not on cancellation: the row may have been committed; a held reservation with no
                # job is returned by `release_orphaned_reservations` at the next start.
                await self.store.release(reservation.id)
                raise
        # Only a job that starts at once keeps its images in memory; one that waits fetches them
        # again when its turn comes, so a long queue holds ids, not megabytes.
        if len(self._running) + len(self._queue) < self.max_concurrent:
            self._images[job.id] = images
        self._queue.append(job.id)
        log.info("job %d queued (user %d, %d image(s))", job.id, spec.user_id, spec.count)
        position = len(self._queue)
        self._wake.set()
        await self._show(job, Progress("queued", position=position, cancellable=True))
        return job

    def position(self, job_id: int) -> int | None:
        """1-based place in our queue, or None when the job is not waiting in it."""
        try:
            return self._queue.index(job_id) + 1
        except ValueError:
            return None

    async def cancel(self, job_id: int) -> str:
        """Cancel a job waiting in our queue or still PENDING at Wan; return what happened, for the user."""
        job = await self.store.get_job(job_id)
        if job is None or job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
            return "This job has already finished."
        if job_id in self._queue:
            self._queue.remove(job_id)
            self._images.pop(job_id, None)
            await self._finish(job, JobState.CANCELLED)
            await self._say(job, f"Cancelled before it started. {NOTHING_CHARGED}")
            self._wake.set()
            return f"Cancelled. {NOTHING_CHARGED}"
        if job_id in self._running and job.task_id is None and job_id not in self._submitting:
            # Fetching its images or waiting to retry a throttled create: stopped before the call.
            self._cancel_requested.add(job_id)
            return f"Cancelled. {NOTHING_CHARGED}"
        if job.task_id is None or self._statuses.get(job_id) != TaskStatus.PENDING:
            return "Too late to cancel: Wan is already working on it."
        try:
            await self.wan.cancel_task(job.task_id)
        except WanError as err:
            log.info("job %d: cancel refused by Wan (%s)", job_id, err.code)
            return "Too late to cancel: Wan has already started on it."
        return f"Cancelling… {NOTHING_CHARGED}"

    # ---- dispatch -----------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            moved = False
            while self._queue and len(self._running) < self.max_concurrent:
                self._launch(self._queue.popleft())
                moved = True
            if moved and (self._announcer is None or self._announcer.done()):
                # In the background: the next job must not wait for Discord edits.
                self._announcer = asyncio.create_task(self._announce_positions())

    def _launch(self, job_id: int) -> None:
        if self._stopped:
            return  # shutting down: the job keeps its stored state for the next start
        task = asyncio.create_task(self._run(job_id), name=f"wanbot-job-{job_id}")
        self._running[job_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)
            self._statuses.pop(job_id, None)
            self._cancel_requested.discard(job_id)
            self._submitting.discard(job_id)
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "job %d: its task ended with an error", job_id, exc_info=finished.exception()
                )
            self._wake.set()

        task.add_done_callback(done)

    async def _announce_positions(self) -> None:
        # Every start moves the whole queue up one place; editing every waiting message each time
        # would flood Discord with edits, so near the front every move is shown, further back every fifth.
        for index, job_id in enumerate(list(self._queue), start=1):
            shown = self._shown_position.get(job_id)
            if shown is not None and index > 10 and shown - index < 5:
                continue
            job = await self.store.get_job(job_id)
            # The queue moves while we edit: a job that has started since must not look queued again.
            if job is not None and job_id in self._queue:
                await self._show(job, Progress("queued", position=index, cancellable=True))

    # ---- one job --------------------------------------------------------------------------------

    async def _run(self, job_id: int) -> None:
        job = await self.store.get_job(job_id)
        if job is None:
            return
        try:
            if job.task_id is None:
                job = await self._create(job)
                if job is None:
                    return
            await self._follow(job)
        except asyncio.CancelledError:
            raise
        except WanError as err:
            if err.code == CLIENT_CLOSED:
                return  # shutting down: the task is followed again at the next start
            # Polling gave up (a revoked key, a long outage): the task's fate is unknown to us,
            # and the user is not charged for a result they never got.
            log.warning("job %d: Wan error while following the task: %s", job_id, err.code)
            await self._fail(job, f"{err.user_message} {NOTHING_CHARGED}", err.code)
        except Exception:
            log.exception("job %d failed unexpectedly", job_id)
            await self._fail(
                job,
                f"Something went wrong on our side (job #{job_id}). {NOTHING_CHARGED}",
                "InternalBotError",
            )

    async def _create(self, job: Job) -> Job | None:
        images = self._images.pop(job.id, None)
        if images is None:
            try:
                images = await self.surface.fetch_inputs(job)
            except ImageRejected as err:
                await self._fail(job, f"{err} {NOTHING_CHARGED}", "InputGone")
                return None
        if await self._cancelled_meanwhile(job):
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

        for attempt in range(1, self.create_attempts + 1):
            # Synchronously after the last cancel check: a cancel now finds the job submitting.
            self._submitting.add(job.id)
            try:
                created = await self._critical(create_and_record())
                break
            except WanError as err:
                if err.code != "CreateOutcomeUnknown":
                    self._submitting.discard(job.id)
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
                    await self._fail(job, f"{err.user_message} {NOTHING_CHARGED}", err.code)
                    return None
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
                if await self._cancelled_meanwhile(job):
                    return None
        job = await self.store.get_job(job.id)
        assert job is not None
        self._statuses[job.id] = created.status
        await self._show(job, Progress("pending", started_at=self._clock(), cancellable=True))
        return job

    async def _cancelled_meanwhile(self, job: Job) -> bool:
        """End the job if its requester cancelled it while it was starting; True if so."""
        if job.id not in self._cancel_requested:
            return False
        self._cancel_requested.discard(job.id)
        await self._finish(job, JobState.CANCELLED)
        await self._say(job, f"Cancelled before it started. {NOTHING_CHARGED}")
        return True

    async def _follow(self, job: Job) -> None:
        assert job.task_id is not None
        started = self._clock()

        async def on_update(update: TaskResult) -> None:
            self._statuses[job.id] = update.status
            if update.status == TaskStatus.RUNNING:
                nonlocal started
                started = self._clock()
                await self.store.update_job(job.id, state=JobState.RUNNING)
                await self._show(job, Progress("running", started_at=started))
            elif update.status == TaskStatus.PENDING:
                await self._show(job, Progress("pending", started_at=started, cancellable=True))

        redelivery = job.state == JobState.DELIVERING
        if redelivery:
            result = await self.wan.get_task(job.task_id)
        else:
            result = await self.wan.wait(job.task_id, on_update=on_update)
        self._statuses[job.id] = result.status
        if result.status == TaskStatus.SUCCEEDED:
            await self._deliver(job, result, redelivery=redelivery)
        elif result.status == TaskStatus.CANCELED:
            await self._finish(job, JobState.CANCELLED)
            await self._say(job, f"Cancelled. {NOTHING_CHARGED}")
        elif result.status == TaskStatus.UNKNOWN:
            await self._fail(
                job,
                "Wan no longer knows this task (task ids expire after 24 hours), so its result is "
                f"lost. {NOTHING_CHARGED}",
                "TaskExpired",
            )
        else:
            err = result.error
            text = err.user_message if err is not None else "Wan couldn't finish this edit."
            await self._fail(job, f"{text} {NOTHING_CHARGED}", result.code or "TaskFailed")

    async def _deliver(self, job: Job, result: TaskResult, *, redelivery: bool = False) -> None:
        job = await self.store.update_job(job.id, state=JobState.DELIVERING)
        await self._show(job, Progress("delivering"))
        files: list[bytes] | None = None
        for attempt in range(1, self.delivery_attempts + 1):
            try:
                if files is None:
                    files = await self.wan.download_results(result)
                generated = len(files)
                elapsed = (datetime.now(UTC) - job.created_at).total_seconds()
                delivery = Delivery(
                    files=files,
                    result=result,
                    elapsed=elapsed,
                    remaining=await self._remaining_after(job, generated),
                    redelivery=redelivery or attempt > 1,
                )
                await self._critical(self._post_and_settle(job, delivery, generated))
                return
            except asyncio.CancelledError:
                raise
            except WanError as err:
                if err.code == "ResultExpired" or not err.retryable:
                    log.warning("job %d: results are gone: %s", job.id, err.code)
                    text = f"Wan finished, but its images could no longer be downloaded. {NOTHING_CHARGED}"
                    await self._fail(job, text, err.code)
                    return
                log.warning("job %d: download attempt %d failed: %s", job.id, attempt, err.code)
            except Exception:
                log.exception("job %d: delivery attempt %d failed", job.id, attempt)
            if attempt < self.delivery_attempts:
                await asyncio.sleep(self.retry_delay * attempt)
        self._postponed[job.id] += 1
        if self._postponed[job.id] > 3:
            # Nowhere accepts it (channel gone, DMs closed) and Discord keeps saying so.
            self._postponed.pop(job.id, None)
            await self._fail(
                job, f"The result could not be posted anywhere. {NOTHING_CHARGED}", "Undeliverable"
            )
            return
        # Still DELIVERING: Wan keeps results for 24 hours, so try again later rather than lose them.
        log.warning("job %d: delivery postponed by %.0f s", job.id, self.redeliver_after)
        self._later[job.id] = asyncio.get_running_loop().call_later(
            self.redeliver_after, self._retry_later, job.id
        )

    async def _post_and_settle(self, job: Job, delivery: Delivery, generated: int) -> None:
        message_ids = await self.surface.deliver(job, delivery)
        await self._finish(job, JobState.DONE, generated=generated, result_message_ids=message_ids)
        log.info("job %d done: %d image(s) delivered", job.id, generated)

    def _retry_later(self, job_id: int) -> None:
        self._later.pop(job_id, None)
        if job_id not in self._running:
            self._launch(job_id)

    async def _critical(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to its end even if this job is cancelled by a shutdown; `stop` waits for it."""
        task = asyncio.ensure_future(coro)
        self._critical_tasks.add(task)
        task.add_done_callback(self._critical_tasks.discard)
        return await asyncio.shield(task)

    async def _remaining_after(self, job: Job, generated: int) -> int | None:
        try:
            status = await self.store.quota_status(job.scope, job.user_id)
        except Exception:
            log.exception("job %d: quota status unavailable", job.id)
            return None
        held = int(job.options.get("count", 1))
        return status.remaining + max(0, held - generated)

    # ---- endings ----------------------------------------------------------------------------

    async def _fail(self, job: Job, text: str, code: str) -> None:
        if await self._finish(job, JobState.FAILED, error_code=code, error_message=text):
            await self._say(job, text)

    async def _finish(self, job: Job, state: JobState, **fields: object) -> bool:
        first = await self.store.finish_job(job.id, state, **fields)  # type: ignore[arg-type]
        self._shown_position.pop(job.id, None)
        self._postponed.pop(job.id, None)
        return first

    async def _say(self, job: Job, text: str) -> None:
        fresh = await self.store.get_job(job.id) or job
        await self._safely(self.surface.finished_without_result(fresh, text), job.id)

    async def _show(self, job: Job, progress: Progress) -> None:
        if progress.stage == "queued":
            self._shown_position[job.id] = progress.position or 0
        else:
            self._shown_position.pop(job.id, None)
        await self._safely(self.surface.progress(job, progress), job.id)

    @staticmethod
    async def _safely(call: Awaitable[None], job_id: int) -> None:
        # Telling the user is best effort: a Discord hiccup must never lose the job itself.
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %d: could not update Discord", job_id)
