"""Delivering a finished task: download the results at once (their URLs expire), post them, settle.

Retried a few times, then postponed (Wan keeps results for 24 hours), then given up. The results are
downloaded into the job's temporary folder (`JobFolder`), never whole into memory, and the folder is
removed when the delivery ends, posted or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.i18n import _
from bot.jobs.inflight import InFlight
from bot.jobs.job_folders import JobFolder
from bot.jobs.models import Delivery, JobRefused, Progress, ResultFile
from bot.jobs.outages import Outage, persist, store_trouble
from bot.jobs.outcomes import Outcomes
from bot.jobs.surface import Surface
from bot.metrics import Metrics
from bot.store import Job, JobState, LeaseLost, QuotaStatus, Store
from bot.wan import TaskResult, TaskStatus, WanClient, WanError

log = logging.getLogger(__name__)

MAX_POSTPONEMENTS = 3
# Seconds a delivery may take before the member is shown that it is under way.
DELIVERING_NOTICE = 2.0
HEAD_BYTES = 64  # of each result kept in memory: its type and a PNG's dimensions


def billed_images(result: TaskResult) -> int:
    """Images Wan bills for a task: its usage count, else the images it made."""
    return result.image_count or len(result.urls)


class Deliverer:
    """Downloads, posts and settles a job's results."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        surface: Surface,
        inflight: InFlight,
        outcomes: Outcomes,
        *,
        relaunch: Callable[[int], None],
        delivery_attempts: int,
        retry_delay: float,
        redeliver_after: float,
        metrics: Metrics,
        outage: Outage | None = None,
        delivering_notice: float = DELIVERING_NOTICE,
    ) -> None:
        self.metrics = metrics
        self.delivering_notice = delivering_notice
        self.store = store
        self.outage = outage if outage is not None else Outage()
        self.wan = wan
        self.surface = surface
        self.inflight = inflight
        self.outcomes = outcomes
        self.relaunch = relaunch
        self.delivery_attempts = delivery_attempts
        self.retry_delay = retry_delay
        self.redeliver_after = redeliver_after

    async def deliver(self, job: Job, result: TaskResult, *, redelivery: bool = False) -> None:
        spool = JobFolder(job.id, "results")
        async with spool as folder:
            await self._deliver(job, result, folder, spool, redelivery=redelivery)

    async def _deliver(
        self,
        job: Job,
        result: TaskResult,
        folder: Path,
        spool: JobFolder,
        *,
        redelivery: bool,
    ) -> None:
        # What Wan billed is recorded before anything is posted: the owner pays it even if
        # delivery fails later. Retried through a database outage; if the database stays away
        # the job is left as it is (`JobLife.run`), its task followed again later: never ended
        # and refunded while billed. The download and the member's quota are read meanwhile:
        # neither reaches the member before the record is written.
        recording = asyncio.ensure_future(
            persist(
                self.outage,
                lambda: self.store.update_job(
                    job.id,
                    state=JobState.DELIVERING,
                    billed=result.image_count,
                    lease=self.inflight.lease(job.id),
                ),
            )
        )
        quota = asyncio.ensure_future(self._quota_status(job))
        notice = _Notice(
            self.delivering_notice, lambda: self.outcomes.show(job, Progress("delivering"))
        )
        try:
            await self._deliver_recorded(
                job, result, folder, spool, recording, quota, notice, redelivery=redelivery
            )
        finally:
            await notice.disarm()
            for pending in (recording, quota):
                _drop(pending)

    async def _deliver_recorded(
        self,
        job: Job,
        result: TaskResult,
        folder: Path,
        spool: JobFolder,
        recording: asyncio.Future[Job],
        quota: asyncio.Future[QuotaStatus | None],
        notice: _Notice,
        *,
        redelivery: bool,
    ) -> None:
        billed = billed_images(result)
        try:
            files, missing, retryable = await self._download(job, result, folder)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %d: downloading its results failed", job.id)
            files, missing, retryable = [], len(result.urls), True
        job = await recording
        # On a shared queue that write renewed the job's lease (fenced by it) just now.
        renewed_at = time.monotonic()
        if not files and not retryable:
            log.error(
                "job %d: billed but undelivered: Wan billed %d image(s) whose links are gone",
                job.id,
                billed,
            )
            text = _(
                "Wan finished, but its images could no longer be downloaded. Nothing was charged."
            )
            await notice.disarm()
            await self.outcomes.fail(job, text, "ResultExpired", billed=billed)
            return
        for attempt in range(1, self.delivery_attempts + 1):
            if not files:
                break  # nothing downloaded yet, but the links may still work: try again later
            try:
                delivered = len(files)
                elapsed = (datetime.now(UTC) - job.created_at).total_seconds()
                delivery = Delivery(
                    files=files,
                    result=result,
                    elapsed=elapsed,
                    remaining=_remaining_after(job, await quota, delivered),
                    redelivery=redelivery or attempt > 1,
                    missing=missing,
                )
                posting = asyncio.ensure_future(
                    self._post_and_settle(job, delivery, billed, notice, renewed_at)
                )
                # It reads the files: a shutdown lets it finish before they are removed.
                await self.inflight.critical(spool.keep_for(posting))
                return
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as err:
                if store_trouble(err):
                    # Retried already (`persist`); posting again now could post it twice. The
                    # job's next run looks for what was posted before posting (a redelivery).
                    raise
                log.exception("job %d: delivery attempt %d failed", job.id, attempt)
            if attempt < self.delivery_attempts:
                await asyncio.sleep(self.retry_delay * attempt)
        self.outcomes.postponed[job.id] += 1
        if self.outcomes.postponed[job.id] > MAX_POSTPONEMENTS:
            # Nowhere accepts it (channel gone, DMs closed) and Discord keeps saying so. The member
            # is not charged for what never reached them; the owner's report shows what Wan billed.
            self.outcomes.postponed.pop(job.id, None)
            await notice.disarm()
            log.error(
                "job %d: billed but undelivered: Wan billed %d image(s), no place accepted them",
                job.id,
                billed,
            )
            await self.outcomes.fail(
                job,
                _("The result could not be posted anywhere. Nothing was charged."),
                "Undeliverable",
                billed=billed,
            )
            return
        # Still DELIVERING: Wan keeps results for 24 hours, so try again later rather than lose them.
        log.warning("job %d: delivery postponed by %.0f s", job.id, self.redeliver_after)
        self.inflight.schedule(job.id, self.redeliver_after, self._retry_later)

    @contextlib.asynccontextmanager
    async def unclaimed(self, job: Job) -> AsyncIterator[Delivery]:
        """The result of a job Wan made and billed that no place took (`Undeliverable`), fetched
        again from Wan, which keeps results for 24 hours: its files, for the block to post.
        Raises `JobRefused` when Wan no longer has it."""
        gone = JobRefused(
            _("Wan no longer has this result (it keeps results for 24 hours)."), "result-gone"
        )
        if job.task_id is None:
            raise gone
        try:
            result = await self.wan.get_task(job.task_id)
        except WanError as err:
            log.info("job %d: its result could not be fetched again: %s", job.id, err.code)
            raise gone from None
        if result.status != TaskStatus.SUCCEEDED or not result.urls:
            raise gone
        async with JobFolder(job.id, "unclaimed") as folder:
            files, missing, _retryable = await self._download(job, result, folder)
            if not files:
                raise gone
            elapsed = (datetime.now(UTC) - job.created_at).total_seconds()
            yield Delivery(
                files=files, result=result, elapsed=elapsed, remaining=None, missing=missing
            )

    async def _download(
        self, job: Job, result: TaskResult, folder: Path
    ) -> tuple[list[ResultFile], int, bool]:
        """Each result image, fetched separately (into `folder`) so one broken link doesn't cost the
        others.

        Returns the images in result order, how many are missing, and whether a missing one may
        still come (a retryable failure after every attempt) rather than being gone for good.
        """
        urls = result.urls
        got: dict[int, ResultFile] = {}
        gone: set[int] = set()
        for attempt in range(1, self.delivery_attempts + 1):
            todo = [i for i in range(len(urls)) if i not in got and i not in gone]
            if not todo:
                break
            answers = await asyncio.gather(
                *(self._fetch(urls[i], folder / f"result-{i + 1}") for i in todo),
                return_exceptions=True,
            )
            for index, answer in zip(todo, answers, strict=True):
                if isinstance(answer, ResultFile):
                    got[index] = answer
                elif isinstance(answer, WanError) and (
                    answer.code == "ResultExpired" or not answer.retryable
                ):
                    log.warning(
                        "job %d: result image %d is gone: %s", job.id, index + 1, answer.code
                    )
                    gone.add(index)
                elif isinstance(answer, Exception):
                    log.warning(
                        "job %d: download of image %d failed (attempt %d): %r",
                        job.id,
                        index + 1,
                        attempt,
                        answer,
                    )
                else:
                    raise answer  # a cancellation
            if len(got) + len(gone) < len(urls) and attempt < self.delivery_attempts:
                await asyncio.sleep(self.retry_delay * attempt)
        missing = len(urls) - len(got)
        return [got[i] for i in sorted(got)], missing, missing > len(gone)

    async def _fetch(self, url: str, path: Path) -> ResultFile:
        size = await self.wan.download_to(url, path)
        head = await asyncio.to_thread(_head, path)
        return ResultFile(path=path, size=size, head=head)

    async def _post_and_settle(
        self, job: Job, delivery: Delivery, billed: int, notice: _Notice, renewed_at: float
    ) -> None:
        # Held from here to the finish, even if the job's own task is cancelled meanwhile (this
        # runs to its end): a finish after the lease was lost is refused, never written.
        lease = self.inflight.lease(job.id)
        # Only the shared PostgreSQL queue has leases; on sqlite `lease` is None. The job must be
        # still ours, with most of a lease ahead: nobody else posts it meanwhile. A renewal within
        # the last third of a lease (the DELIVERING write, as fresh as the queue's own renewals)
        # proves that already; after a failed attempt's pause (or a stall) it is renewed again.
        if lease is not None and time.monotonic() - renewed_at >= lease.ttl / 3:
            await persist(self.outage, lambda: self.store.update_job(job.id, lease=lease))
        posted = await self.surface.deliver(job, delivery)
        message_ids = posted.message_ids
        # Posted: no "delivering" from now on, and one on its way is shown before "done".
        await notice.disarm()
        delivered = len(delivery.files)
        # The member pays for what was delivered; what Wan billed is recorded apart (`deliver`
        # stored it already when the task succeeded). Where it went is kept for /wanjobs' link.
        place = {"result_channel_id": posted.channel_id} if posted.channel_id else None
        await self.outcomes.finish(
            job,
            JobState.DONE,
            lease=lease,
            generated=delivered,
            billed=billed,
            result_message_ids=message_ids,
            extra=place,
        )
        log.info("job %d done: %d image(s) delivered, %d billed", job.id, delivered, billed)
        self._observe_added(delivery)
        if delivery.missing:
            log.error(
                "job %d: billed but undelivered: %d of %d image(s) could not be downloaded",
                job.id,
                delivery.missing,
                billed,
            )
        # Settled first: the finishing touches (the Done edit, a ✅) can wait on Discord's rate
        # limits, and the member's slot is free as soon as the result is there.
        await self.outcomes.safely(self.surface.delivered(job, message_ids), job.id)

    def _observe_added(self, delivery: Delivery) -> None:  # pragma: no mutate block (metrics only)
        """The bot's share of the member's wait: all of it less Wan's own time. Not for a result
        delivered again later (after a restart or a failed post), whose wait says nothing of it."""
        result = delivery.result
        if delivery.redelivery or result.submit_time is None or result.end_time is None:
            return
        at_wan = (result.end_time - result.submit_time).total_seconds()
        self.metrics.added_latency.observe(max(0.0, delivery.elapsed - at_wan))

    def _retry_later(self, job_id: int) -> None:
        if job_id not in self.inflight.running:
            self.relaunch(job_id)

    async def _quota_status(self, job: Job) -> QuotaStatus | None:
        try:
            return await self.store.quota_status(job.scope, job.user_id)
        except Exception:
            log.exception("job %d: quota status unavailable", job.id)
            return None


def _drop(pending: asyncio.Future[Any]) -> None:
    """Stop what the delivery no longer waits for (cut short by a cancel or an error); its own
    error, if it had one, was that one or is moot."""
    if pending.done():
        if not pending.cancelled():
            pending.exception()
    else:
        pending.cancel()


def _remaining_after(job: Job, status: QuotaStatus | None, generated: int) -> int | None:
    """The member's images left today once the job is settled, from `status` read before."""
    if status is None:
        return None
    # The hold not yet settled: what Wan did not make comes back.
    held = int(job.options.get("count", 1))
    return status.remaining + max(0, held - generated)


class _Notice:
    """A progress change shown only if what it announces is still under way `delay` seconds
    later: a quick delivery goes from "Wan is editing" straight to the result, one edit fewer
    against Discord's limits and no round trip to Discord before the post."""

    def __init__(self, delay: float, show: Callable[[], Awaitable[None]]) -> None:
        self._show = show
        self._shown: asyncio.Future[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._shown = asyncio.ensure_future(self._show())

    async def disarm(self) -> None:
        """Never shown from now on; if it is being shown, that ends first, so whatever is shown
        next (the outcome) comes after it."""
        self._timer.cancel()
        shown, self._shown = self._shown, None
        if shown is not None:
            await shown


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(HEAD_BYTES)
