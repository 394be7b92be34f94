"""A result Wan made and billed that reached no one (every place refused it: the channel, the
interaction's follow-up once its token died, the member's closed DMs) stays retrievable while Wan
keeps it: /wanjobs shows such a job with a button that posts the result where the member is now, as
the click's own answer (which needs none of the channel's permissions). Nothing is charged for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import discord

from bot.i18n import _, render, text_of
from bot.jobs import JobRefused
from bot.store import Job, JobState
from cogs.utils.job_buttons import JobButton
from cogs.utils.language import private_language
from cogs.utils.privately import tell

if TYPE_CHECKING:
    from cogs.surface import DiscordSurface
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

UNDELIVERABLE = "Undeliverable"
# Wan keeps a task's results for 24 hours after it ends; the job ended a little after that (its
# delivery was tried and postponed): an hour of margin.
CLAIMABLE_FOR = timedelta(hours=23)
CLAIMED = "claimed_message_ids"


def claimable(job: Job, now: datetime | None = None) -> bool:
    """Whether the job's result was billed, reached no one, and can still be fetched."""
    if job.state != JobState.FAILED or job.error_code != UNDELIVERABLE or not job.task_id:
        return False
    if not job.billed or job.extra.get(CLAIMED):
        return False
    ended = job.finished_at or job.updated_at
    return (now or datetime.now(UTC)) - ended < CLAIMABLE_FOR


class ClaimButton(JobButton, template=r"wan:claim:(?P<job_id>\d+)"):
    """Post a result that reached no one, here, for its own member."""

    action = "claim"
    style = discord.ButtonStyle.primary
    emoji = "📥"

    def __init__(self, job_id: int, language: str | None = None) -> None:
        super().__init__(job_id)
        if language is not None:
            self.item.label = render(language, _("Post #{job_id} here", job_id=job_id))

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        bot = interaction.client
        job = await bot.store.get_job(self.job_id)
        if job is None or job.user_id != interaction.user.id:
            await tell(interaction, _("Only the member who asked for this job can post it."))
            return
        if not claimable(job):
            await tell(interaction, _("This result is no longer waiting to be posted."))
            return
        # Public: the result is posted here, as this click's answer.
        await interaction.response.defer(thinking=True)
        surface = cast("DiscordSurface", bot.runner.surface)
        try:
            async with bot.runner.unclaimed_result(job) as delivery:
                posted = await surface.poster.post_unclaimed(
                    job, delivery, interaction.followup, interaction.filesize_limit
                )
        except JobRefused as err:
            await tell(interaction, text_of(err))
            return
        fresh = await bot.store.get_job(job.id) or job
        # Written without a lease, which only an unfinished job has: this one ended long ago.
        place = {CLAIMED: posted.message_ids, "result_channel_id": posted.channel_id}
        await bot.store.update_job(job.id, extra={**fresh.extra, **place})
        log.info("job %d: its undelivered result was posted on its member's request", job.id)


def claim_view(jobs: list[Job], interaction: discord.Interaction[WanBot]) -> discord.ui.View | None:
    """Buttons for the member's own jobs whose result waits to be posted (at most five)."""
    waiting = [job for job in jobs if claimable(job)][:5]
    if not waiting:
        return None
    language = private_language(interaction)
    view = discord.ui.View(timeout=None)
    for job in waiting:
        view.add_item(ClaimButton(job.id, language))
    return view


def claimed_link(job: Job) -> str | None:
    """The link to a result posted on its member's request, or None."""
    ids = job.extra.get(CLAIMED)
    channel = job.extra.get("result_channel_id")
    if not ids or not channel:
        return None
    place = job.guild_id if job.guild_id is not None else "@me"
    return f"https://discord.com/channels/{place}/{channel}/{ids[0]}"
