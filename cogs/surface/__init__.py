"""The job runner's one door to Discord: `DiscordSurface` implements `bot.jobs.Surface` with the
progress messages, the result posting and the refetch of a job's inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.images import CheckedImage
from bot.jobs import Delivery, Posted, Progress
from bot.store import Job
from cogs.intake import attachments
from cogs.surface.delivery import ResultPoster, ResultView
from cogs.surface.progress import ProgressMessages

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


class DiscordSurface:
    """Progress, results, failure notes and fresh inputs, each done by its own module."""

    def __init__(self, bot: WanBot, *, result_view: ResultView) -> None:
        self.bot = bot
        self.progress_messages = ProgressMessages(bot)
        self.poster = ResultPoster(bot, self.progress_messages, result_view)

    async def progress(self, job: Job, progress: Progress) -> None:
        await self.progress_messages.show(job, progress)

    async def deliver(self, job: Job, delivery: Delivery) -> Posted:
        return await self.poster.deliver(job, delivery)

    async def delivered(self, job: Job, message_ids: list[int]) -> None:
        await self.poster.finish_up(job)

    async def finished_without_result(self, job: Job, text: str) -> None:
        await self.progress_messages.finished_without_result(job, text)

    async def fetch_inputs(self, job: Job) -> list[CheckedImage]:
        return await attachments.refetch(self.bot, job)

    def forget(self, job_id: int) -> None:
        self.progress_messages.forget(job_id)
        self.poster.forget(job_id)

    async def close(self) -> None:
        await self.progress_messages.close()
