"""Delivering a finished task: download the results at once (their URLs expire), post them, settle.

Retried a few times, then postponed (Wan keeps results for 24 hours), then given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bot.jobs.endings import Outcomes
from bot.jobs.inflight import InFlight
from bot.jobs.models import NOTHING_CHARGED, Delivery, Progress
from bot.jobs.surface import Surface
from bot.store import Job, JobState, LeaseLost, Store
from bot.wan import TaskResult, WanClient, WanError

log = logging.getLogger(__name__)

MAX_POSTPONEMENTS = 3


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
    ) -> None:
        self.store = store
        self.wan = wan
        self.surface = surface
        self.inflight = inflight
        self.outcomes = outcomes
        self.relaunch = relaunch
        self.delivery_attempts = delivery_attempts
        self.retry_delay = retry_delay
        self.redeliver_after = redeliver_after
        self._later: dict[int, asyncio.TimerHandle] = {}

    def cancel_postponed(self) -> None:
        """Forget every delivery postponed for later (a shutdown: they resume at the next start)."""
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()

    async def deliver(self, job: Job, result: TaskResult, *, redelivery: bool = False) -> None:
        job = await self.store.update_job(
            job.id, state=JobState.DELIVERING, lease=self.inflight.lease(job.id)
        )
        await self.outcomes.show(job, Progress("delivering"))
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
                await self.inflight.critical(self._post_and_settle(job, delivery, generated))
                return
            except (asyncio.CancelledError, LeaseLost):
                raise
            except WanError as err:
                if err.code == "ResultExpired" or not err.retryable:
                    log.warning("job %d: results are gone: %s", job.id, err.code)
                    text = f"Wan finished, but its images could no longer be downloaded. {NOTHING_CHARGED}"
                    await self.outcomes.fail(job, text, err.code)
                    return
                log.warning("job %d: download attempt %d failed: %s", job.id, attempt, err.code)
            except Exception:
                log.exception("job %d: delivery attempt %d failed", job.id, attempt)
            if attempt < self.delivery_attempts:
                await asyncio.sleep(self.retry_delay * attempt)
        self.outcomes.postponed[job.id] += 1
        if self.outcomes.postponed[job.id] > MAX_POSTPONEMENTS:
            # Nowhere accepts it (channel gone, DMs closed) and Discord keeps saying so.
            self.outcomes.postponed.pop(job.id, None)
            await self.outcomes.fail(
                job, f"The result could not be posted anywhere. {NOTHING_CHARGED}", "Undeliverable"
            )
            return
        # Still DELIVERING: Wan keeps results for 24 hours, so try again later rather than lose them.
        log.warning("job %d: delivery postponed by %.0f s", job.id, self.redeliver_after)
        self._later[job.id] = asyncio.get_running_loop().call_later(
            self.redeliver_after, self._retry_later, job.id
        )

    async def _post_and_settle(self, job: Job, delivery: Delivery, generated: int) -> None:
        lease = self.inflight.lease(job.id)
        if lease is not None:
            # Still ours, renewed for a whole lease: nobody else posts it meanwhile.
            await self.store.update_job(job.id, lease=lease)
        message_ids = await self.surface.deliver(job, delivery)
        await self.outcomes.finish(
            job, JobState.DONE, generated=generated, result_message_ids=message_ids
        )
        log.info("job %d done: %d image(s) delivered", job.id, generated)

    def _retry_later(self, job_id: int) -> None:
        self._later.pop(job_id, None)
        if job_id not in self.inflight.running:
            self.relaunch(job_id)

    async def _remaining_after(self, job: Job, generated: int) -> int | None:
        try:
            status = await self.store.quota_status(job.scope, job.user_id)
        except Exception:
            log.exception("job %d: quota status unavailable", job.id)
            return None
        held = int(job.options.get("count", 1))
        return status.remaining + max(0, held - generated)
