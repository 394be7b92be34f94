"""What the runner knows about jobs in flight in this process (none of it is needed after a restart:
the store has the truth, this is only what a running job and a cancel click share)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
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
    critical_tasks: set[asyncio.Future[Any]] = field(default_factory=set)
    stopped: bool = False
    # The lease this process holds on a job claimed from a shared queue (None: unshared queue).
    lease: Callable[[int], Lease | None] = lambda job_id: None

    def forget(self, job_id: int) -> None:
        """Drop what was kept for a job whose task has ended."""
        self.running.pop(job_id, None)
        self.statuses.pop(job_id, None)
        self.cancel_requested.discard(job_id)
        self.submitting.discard(job_id)

    async def critical(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to its end even if its job is cancelled by a shutdown; `stop` waits for it."""
        task = asyncio.ensure_future(coro)
        self.critical_tasks.add(task)
        task.add_done_callback(self.critical_tasks.discard)
        return await asyncio.shield(task)
