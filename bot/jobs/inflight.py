"""What the runner knows about jobs in flight in this process (none of it is needed after a restart:
the store has the truth, this is only what a running job and a cancel click share)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.images import CheckedImage
from bot.store import Lease
from bot.wan import TaskStatus

T = TypeVar("T")


@dataclass
class InFlight:
    """Running tasks, their last Wan status, cancel flags, and the calls a shutdown must let finish."""

    running: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    # Input images of jobs that start at once (queued jobs fetch theirs again when their turn comes).
    images: dict[int, list[CheckedImage]] = field(default_factory=dict)
    statuses: dict[int, TaskStatus] = field(default_factory=dict)
    cancel_requested: set[int] = field(default_factory=set)
    # Jobs whose create call has started (or succeeded): too late for a cancel by flag.
    submitting: set[int] = field(default_factory=set)
    # Jobs whose cancel has been sent to Wan: a second Cancel click is told so, not "too late".
    cancelling: set[int] = field(default_factory=set)
    critical_tasks: set[asyncio.Future[Any]] = field(default_factory=set)
    stopped: bool = False
    # Wan slots (WAN_MAX_CONCURRENT_TASKS): taken right before a create and given back the moment
    # the task is final, so the next job's inputs are fetched while it waits for a slot and its
    # create overlaps the previous job's delivery: Wan's slots stay busy.
    wan_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(5))
    holding: set[int] = field(default_factory=set)
    # Deliveries at once (also WAN_MAX_CONCURRENT_TASKS): each holds its results in memory, and
    # when Discord is slower than Wan they must not pile up.
    delivery_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(5))
    # Running jobs whose Wan task has ended (delivering, finishing).
    left_wan: set[int] = field(default_factory=set)
    # Set when a slot may have freed up (or a job was queued): the dispatcher waits on it.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The lease this process holds on a job claimed from a shared queue (None: unshared queue).
    lease: Callable[[int], Lease | None] = lambda job_id: None
    # What is scheduled to run a job again later (a postponed delivery, a job left during a
    # database outage): cancelled when the job is lost to another process, and at a stop.
    later: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    # Jobs whose task stopped on a database outage, leaving the job as it was (see `JobLife.run`).
    left: set[int] = field(default_factory=set)

    def schedule(self, job_id: int, delay: float, callback: Callable[[int], None]) -> None:
        """`callback(job_id)` in `delay` seconds, instead of anything scheduled for it before."""
        self.unschedule(job_id)

        def fire() -> None:
            self.later.pop(job_id, None)
            callback(job_id)

        self.later[job_id] = asyncio.get_running_loop().call_later(delay, fire)

    def unschedule(self, job_id: int | None = None) -> None:
        """Cancel what is scheduled for `job_id` (for every job: None)."""
        for key in list(self.later) if job_id is None else [job_id]:
            handle = self.later.pop(key, None)
            if handle is not None:
                handle.cancel()

    def before_wan(self) -> int:
        """Running jobs whose task is not final yet (fetching inputs, waiting for a slot, at Wan)."""
        return len(self.running.keys() - self.left_wan)

    async def take_wan_slot(self, job_id: int) -> None:
        await self.wan_slots.acquire()
        self.holding.add(job_id)

    def give_back_wan_slot(self, job_id: int) -> None:
        if job_id in self.holding:
            self.holding.discard(job_id)
            self.wan_slots.release()
            self.wake.set()

    def task_ended(self, job_id: int) -> None:
        """The job's Wan task is final: its slot is free for the next job."""
        self.left_wan.add(job_id)
        self.give_back_wan_slot(job_id)
        self.wake.set()

    def forget(self, job_id: int) -> None:
        """Drop what was kept for a job whose task has ended."""
        self.running.pop(job_id, None)
        self.images.pop(job_id, None)  # a later run fetches its inputs again
        self.statuses.pop(job_id, None)
        self.cancel_requested.discard(job_id)
        self.submitting.discard(job_id)
        self.cancelling.discard(job_id)
        self.left_wan.discard(job_id)
        self.give_back_wan_slot(job_id)

    async def critical(self, coro: Awaitable[T]) -> T:
        """Run `coro` (a coroutine, or a task already started) to its end even if its job is
        cancelled by a shutdown; `stop` waits for it."""
        task = asyncio.ensure_future(coro)
        self.critical_tasks.add(task)
        task.add_done_callback(self._critical_done)
        return await asyncio.shield(task)

    def _critical_done(self, task: asyncio.Future[Any]) -> None:
        self.critical_tasks.discard(task)
        if not task.cancelled():
            # Retrieved here: a caller cancelled meanwhile (a stop, a lease lost to another
            # process) no longer waits for it, and its end (LeaseLost, say) is no news.
            task.exception()
