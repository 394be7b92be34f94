"""Telling the requester what happens to a job, and writing how it ended."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.jobs.models import Progress
from bot.jobs.outages import Outage, persist, store_trouble
from bot.jobs.surface import Surface
from bot.metrics import Metrics
from bot.store import Job, JobState, Lease, Store

log = logging.getLogger(__name__)


class Outcomes:
    """`show` progress, `say` a last word, `finish`/`fail` a job in the store (once)."""

    def __init__(
        self,
        store: Store,
        surface: Surface,
        metrics: Metrics,
        *,
        lease: Callable[[int], Lease | None] = lambda job_id: None,
        release: Callable[[int], None] = lambda job_id: None,
        outage: Outage | None = None,
    ) -> None:
        self.store = store
        self.outage = outage if outage is not None else Outage()
        self.lease = lease
        self.release = release
        self.surface = surface
        self.metrics = metrics
        # The queue position each waiting job's message shows, to skip edits that change nothing.
        self.shown_position: dict[int, int] = {}
        # How many times each job's delivery was postponed (see `Deliverer`).
        self.postponed: defaultdict[int, int] = defaultdict(int)

    async def fail(self, job: Job, text: str, code: str, *, billed: int | None = None) -> None:
        """End the job FAILED (its hold returned) and tell the requester; `billed` records images Wan
        billed anyway (a finished task whose images never reached the member)."""
        fields: dict[str, object] = {"error_code": code, "error_message": text}
        if billed:
            # The deliverer stores `billed` already when a task succeeded; kept here so `fail`
            # is right on its own.
            fields["billed"] = billed
        if await self.finish(job, JobState.FAILED, **fields):
            await self.say(job, text)

    async def finish(
        self, job: Job, state: JobState, *, lease: Lease | None = None, **fields: object
    ) -> bool:
        """End the job, fenced by `lease` (by default the one this process holds on it now)."""
        # Retried through a database outage: how a job ended (and what Wan billed for it) must
        # not be lost to one. Finishing twice is harmless: the second call changes nothing.
        first = await persist(
            self.outage,
            lambda: self.store.finish_job(
                job.id,
                state,
                lease=lease or self.lease(job.id),
                **fields,  # type: ignore[arg-type]
            ),
        )
        self.release(job.id)
        if first:
            self.metrics.jobs.labels(state.value).inc()
            if state == JobState.DONE:
                self.metrics.images_generated.inc(int(fields.get("generated") or 0))  # type: ignore[call-overload]
        self.shown_position.pop(job.id, None)
        self.postponed.pop(job.id, None)
        return first

    def forget(self, job_id: int) -> None:
        """Drop what was kept for a job this process no longer runs (ended, or taken over)."""
        self.shown_position.pop(job_id, None)
        self.postponed.pop(job_id, None)
        self.surface.forget(job_id)

    async def say(self, job: Job, text: str) -> None:
        try:
            fresh = await self.store.get_job(job.id) or job
        except Exception as err:
            if not store_trouble(err):
                raise
            fresh = job  # the row as this run last read it tells where to say it just as well
        # The store forgets the interaction token when the job ends; while it lives it can still
        # edit the response where the channel refuses the bot's own token.
        fresh = replace(fresh, interaction_token=job.interaction_token)
        await self.safely(self.surface.finished_without_result(fresh, text), job.id)

    async def show(self, job: Job, progress: Progress) -> None:
        if progress.stage == "queued":
            self.shown_position[job.id] = progress.position or 0
        else:
            self.shown_position.pop(job.id, None)
        await self.safely(self.surface.progress(job, progress), job.id)

    @staticmethod
    async def safely(call: Awaitable[None], job_id: int) -> None:
        # Telling the user is best effort: a Discord hiccup must never lose the job itself.
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %d: could not update Discord", job_id)
