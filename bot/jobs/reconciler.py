"""Finding the Wan task of a create whose answer never came (a timeout, a dropped connection, a process
that died during the call), through the task list, instead of creating it again.

Creates are not idempotent and carry no key of ours, so the only trace of such a
task is its creation time. A task is adopted only when the match can't be wrong:
- exactly one task of the job's model (editing or text-to-image) was created in the window around
  the attempt that no job in the store holds, and
- no other job's create of that model with an unknown outcome falls in that window (its task could
  be the one).
Anything else (no task, two tasks, a rival, the list unreachable or longer than we read) ends the
job as before: failed, refunded, and the reason logged. The list call is a query: it takes tokens
from the same query budget as polls (`WanClient.list_tasks`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot.jobs.models import from_text
from bot.store import Job, Store
from bot.wan import WanClient, WanError
from bot.wan.client import IMAGINE_BODY_MAX
from bot.wan.models import ListedTask

log = logging.getLogger(__name__)

# Seconds added on both sides of a create's span: the clocks of this host and of Wan may differ,
# and Wan may finish taking a request a moment after we gave up on its answer.
MARGIN = 5.0


class Reconciler:
    """`find(job, span)`: the task to adopt for a create with an unknown outcome, or None."""

    def __init__(
        self,
        store: Store,
        wan: WanClient,
        *,
        margin: float = MARGIN,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.wan = wan
        self.margin = margin
        self._clock = clock
        self._sleep = sleep

    def span_of(self, job: Job) -> tuple[float, float]:
        """The span of a create found cut short in the store (a restart, a takeover, another job):
        from its send, which wrote SUBMITTED, for as long as a create of its inputs may take."""
        sent = (job.submitted_at or job.updated_at).timestamp()
        return sent, sent + self.wan.create_timeout(_body_estimate(job))

    async def find(self, job: Job, span: tuple[float, float]) -> ListedTask | None:
        """The one task the create in `span` (Unix seconds) made, or None (logged why)."""
        start, end = span[0] - self.margin, span[1] + self.margin
        # Wan may still be taking the request: look once the window has passed.
        if await self._recorded(job):
            return None
        await self._until(end)
        try:
            model = self.wan.model_of(from_text=from_text(job))
            listing = await self.wan.list_tasks(_utc(start), _utc(end), model=model)
        except WanError as err:
            log.warning("job %d: could not list Wan's tasks to find its task: %s", job.id, err.code)
            return None
        if not listing.complete:
            log.warning(
                "job %d: %d tasks in its create window, more than were read; not adopting any",
                job.id,
                listing.total,
            )
            return None
        rivals = await self._rivals(job, start, end)
        if await self._recorded(job):
            return None
        if rivals:
            log.warning(
                "job %d: the creates of jobs %s also went unanswered in its window;"
                " any of their tasks could be its: not adopting any",
                job.id,
                ", ".join(str(r.id) for r in rivals),
            )
            return None
        owners = await self.store.task_owners([t.task_id for t in listing.tasks])
        free = [t for t in listing.tasks if t.task_id not in owners]
        if len(free) != 1:
            log.warning(
                "job %d: %d task(s) in its create window that no job holds (%d listed): %s",
                job.id,
                len(free),
                len(listing.tasks),
                "its create never reached Wan" if not free else "ambiguous, not adopting any",
            )
            return None
        task = free[0]
        log.warning(
            "job %d: adopting Wan task %s (%s), the one its unanswered create made",
            job.id,
            task.task_id,
            task.status.value,
        )
        return task

    async def _rivals(self, job: Job, start: float, end: float) -> list[Job]:
        """Other jobs whose create went unanswered and whose window overlaps [start, end]. A create
        still under way (another process's, or this one's) is waited for, once: when it is answered,
        its job holds its task and is no rival."""
        reach = self.wan.create_timeout() + self.margin
        for last_look in (False, True):
            near = await self.store.uncertain_creates(_utc(start - reach), _utc(end + self.margin))
            # A create of the other model made a task the list of this one never shows.
            rivals = [
                r
                for r in near
                if r.id != job.id
                and from_text(r) == from_text(job)
                and self._overlaps(r, start, end)
            ]
            live = [r for r in rivals if not r.finished]
            if last_look or not live or await self._recorded(job):
                return rivals
            await self._until(max(self.span_of(r)[1] for r in live) + self.margin)
        return []  # not reached

    async def _recorded(self, job: Job) -> bool:
        """Whether the job's task id was stored meanwhile (by the process its create was answered
        in, which lost the job's lease): then there is nothing to look for."""
        stored = await self.store.get_job(job.id)
        return stored is not None and stored.task_id is not None

    def _overlaps(self, other: Job, start: float, end: float) -> bool:
        first, last = self.span_of(other)
        return first - self.margin <= end and last + self.margin >= start

    async def _until(self, moment: float) -> None:
        wait = moment - self._clock()
        if wait > 0:
            await self._sleep(wait)


def _body_estimate(job: Job) -> int | None:
    """Bytes the job's create body may have had: its inputs as base64, with room for re-encoding;
    None (the largest) when an input's size is not known."""
    if from_text(job):
        return IMAGINE_BODY_MAX  # a prompt and a few parameters
    sizes = [i.get("size") for i in job.inputs]
    if not sizes or not all(isinstance(s, int) and s > 0 for s in sizes):
        return None
    return 2 * sum(sizes) * 4 // 3 + 64 * 1024  # type: ignore[operator]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
