"""/wanjobs: a member's own last jobs here (this server, or the DMs with the bot), privately.

Each line: the job, its state, its images, when it was asked for, and a link to the result or why it
ended without one. Admins (Manage Server, checked in code) may name another member of this server;
anyone else asking for another member is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.store import Job, JobState
from cogs.utils.admins import PERMISSION_NAME, is_server_admin
from cogs.utils.edit_flow import scope_of
from cogs.utils.places import short
from cogs.utils.progress import COLOUR

if TYPE_CHECKING:
    from cogs.utils.wanbot import WanBot

log = logging.getLogger(__name__)

SHOWN_JOBS = 10
PROMPT_CHARS = 80
REASON_CHARS = 160
STATES = {
    JobState.DONE: "✅ done",
    JobState.FAILED: "❌ failed",
    JobState.CANCELLED: "✖️ cancelled",
}
IN_PROGRESS = "⏳ in progress"


class HistoryCheckFailure(app_commands.CheckFailure):
    """A refused /wanjobs; `str()` is the private answer."""


def result_link(job: Job) -> str | None:
    """The jump link to the job's (first) result message, or None when it has none."""
    if not job.result_message_ids:
        return None
    # Recorded at delivery; older jobs posted in their thread or channel.
    channel = job.extra.get("result_channel_id") or job.thread_id or job.channel_id
    place = job.guild_id if job.guild_id is not None else "@me"
    return f"https://discord.com/channels/{place}/{channel}/{job.result_message_ids[0]}"


def job_line(job: Job) -> str:
    """Two lines about one job: its facts, then its prompt and where its result is."""
    asked = int(job.options.get("count", 1))
    if job.state == JobState.DONE:
        images = f"{job.generated or 0} of {asked} image(s)"
    else:
        images = f"{asked} image(s) asked"
    when = f"<t:{int(job.created_at.timestamp())}:R>"
    state = STATES.get(job.state, IN_PROGRESS)
    head = f"**#{job.id}** · {state} · {images} · {when}"
    prompt = short(job.prompt, PROMPT_CHARS).replace("`", "'")
    link = result_link(job)
    if link is not None:
        outcome = f"[result]({link})"
    elif job.state in (JobState.FAILED, JobState.CANCELLED):
        outcome = short(job.error_message or "no reason recorded", REASON_CHARS)
    else:
        outcome = "not finished yet"
    return f"{head}\n`{prompt}` · {outcome}"


def jobs_embed(jobs: list[Job], whose: str) -> discord.Embed:
    embed = discord.Embed(colour=COLOUR, title=f"{whose} latest Wan jobs here")
    embed.set_footer(text=f"Newest first, at most {SHOWN_JOBS}.")
    if not jobs:
        embed.description = "No jobs yet. Start one with `/wanedit`."
    else:
        embed.description = "\n\n".join(job_line(job) for job in jobs)
    return embed


class History(commands.Cog):
    """The /wanjobs command."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(name="wanjobs", description="Your last 10 Wan edits here, privately")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.describe(
        member="Whose jobs to show (someone else's needs the Manage Server permission); "
        "empty for yours"
    )
    async def wanjobs(
        self, interaction: discord.Interaction[WanBot], member: discord.User | None = None
    ) -> None:
        target = member or interaction.user
        own = target.id == interaction.user.id
        if not own and not is_server_admin(interaction):
            where = "here" if interaction.guild_id is not None else "in a server"
            raise HistoryCheckFailure(
                f"You need the **{PERMISSION_NAME}** permission {where} to see someone else's "
                "jobs; `/wanjobs` on its own shows yours."
            )
        # Acknowledge before touching the database: a busy store must not cost the 3 s window.
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.bot.store.jobs_for_user(
            target.id, scope=scope_of(interaction.guild_id), limit=SHOWN_JOBS
        )
        whose = "Your" if own else f"{discord.utils.escape_markdown(target.display_name)}'s"
        await interaction.edit_original_response(embed=jobs_embed(jobs, whose))


async def setup(bot: WanBot) -> None:
    await bot.add_cog(History(bot))
