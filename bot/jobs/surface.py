"""`Surface`: the only way the job runner reaches the people who asked (Discord, or anything else)."""

from __future__ import annotations

from typing import Protocol

from bot.images import CheckedImage
from bot.jobs.models import Delivery, Posted, Progress
from bot.store import Job


class Surface(Protocol):
    """Where jobs meet their requesters: progress, delivery, failures, and fetching inputs again."""

    async def progress(self, job: Job, progress: Progress) -> None: ...

    async def deliver(self, job: Job, delivery: Delivery) -> Posted:
        """Post the result; what was posted and where (the runner writes it, not the surface)."""
        ...

    async def delivered(self, job: Job, message_ids: list[int]) -> None:
        """After the job was settled: the finishing touches that must not hold the member's slot."""
        ...

    async def finished_without_result(self, job: Job, text: str) -> None: ...

    async def fetch_inputs(self, job: Job) -> list[CheckedImage]: ...

    def forget(self, job_id: int) -> None:
        """Drop what was kept for a job this process no longer runs (it ended, or another
        process took it): memory must not grow with the jobs ever seen."""
        ...
