"""/wanjobs: a member's own last jobs here (this server, or the DMs with the bot), privately.

Each line: the job, its state, its images, when it was asked for, and a link to the result or why it
ended without one. Admins (Manage Server, checked in code) may name another member of this server;
anyone else asking for another member is refused. Everything is in the asking member's own language
(`interaction.locale`); a stored reason is shown translated when it is one of the catalogue's
sentences as it stands (most are), else as it was recorded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import N_, Number, Text, _, _n, lookup, render
from bot.jobs import from_text
from bot.store import Job, JobState
from cogs.history.claim import CLAIMABLE_FOR, claim_view, claimable, claimed_link
from cogs.intake.requests import scope_of
from cogs.surface.progress import COLOUR
from cogs.utils.admins import is_server_admin
from cogs.utils.language import private_language
from cogs.utils.text import short

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

SHOWN_JOBS = 10
PROMPT_CHARS = 80
REASON_CHARS = 160
STATES = {
    JobState.DONE: N_("✅ done"),
    JobState.FAILED: N_("❌ failed"),
    JobState.CANCELLED: N_("✖️ cancelled"),
}
IN_PROGRESS = N_("⏳ in progress")


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


def reason_text(language: str, reason: str) -> str:
    """A recorded reason in `language`: its translation when the whole reason is a message of the
    catalogue without parameters (the store keeps the English sentence), else as recorded."""
    if "{" in reason:
        return reason
    return lookup(language, reason) or reason


def job_line(job: Job, language: str) -> str:
    """Two lines about one job: its facts, then its prompt and where its result is."""
    asked = int(job.options.get("count", 1))
    if job.state == JobState.DONE:
        images: Text = _n(
            "{made} of {count} image",
            "{made} of {count} images",
            asked,
            made=Number(job.generated or 0),
        )
    else:
        images = _n("{count} image asked", "{count} images asked", asked)
    when = f"<t:{int(job.created_at.timestamp())}:R>"
    state = _(STATES.get(job.state, IN_PROGRESS))
    head = f"**#{job.id}** · {render(language, state)} · {render(language, images)} · {when}"
    if from_text(job):
        made_from_text = render(language, _("from text"))
        head += f" · {made_from_text}"
    prompt = short(job.prompt, PROMPT_CHARS).replace("`", "'")
    link = result_link(job) or claimed_link(job)
    if link is not None:
        outcome = render(language, _("[result]({link})", link=link))
    elif claimable(job):
        until = (job.finished_at or job.updated_at) + CLAIMABLE_FOR
        outcome = render(
            language,
            _(
                "no place took its result: it waits for you (button below) until Wan drops it, "
                "{when}",
                when=f"<t:{int(until.timestamp())}:R>",
            ),
        )
    elif job.state in (JobState.FAILED, JobState.CANCELLED):
        if job.error_message:
            reason = reason_text(language, job.error_message)
        else:
            reason = render(language, _("no reason recorded"))
        outcome = short(reason, REASON_CHARS)
    else:
        outcome = render(language, _("not finished yet"))
    return f"{head}\n`{prompt}` · {outcome}"


def jobs_embed(jobs: list[Job], title: Text, language: str) -> discord.Embed:
    embed = discord.Embed(colour=COLOUR, title=render(language, title))
    embed.set_footer(text=render(language, _("Newest first, at most {count}.", count=SHOWN_JOBS)))
    if not jobs:
        embed.description = render(language, _("No jobs yet. Start one with `/wanedit`."))
    else:
        embed.description = "\n\n".join(job_line(job, language) for job in jobs)
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
            if interaction.guild_id is not None:
                refusal = _(
                    "You need the **Manage Server** permission here to see someone else's jobs; "
                    "`/wanjobs` on its own shows yours."
                )
            else:
                refusal = _(
                    "You need the **Manage Server** permission in a server to see someone else's "
                    "jobs; `/wanjobs` on its own shows yours."
                )
            raise HistoryCheckFailure(refusal)
        # Acknowledge before touching the database: a busy store must not cost the 3 s window.
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.bot.store.jobs_for_user(
            target.id, scope=scope_of(interaction.guild_id), limit=SHOWN_JOBS
        )
        if own:
            title = _("Your latest Wan jobs here")
        else:
            name = discord.utils.escape_markdown(target.display_name)
            title = _("{name}'s latest Wan jobs here", name=name)
        embed = jobs_embed(jobs, title, private_language(interaction))
        # Only the member may have a waiting result posted: their own list carries the buttons.
        view = claim_view(jobs, interaction) if own else None
        if view is not None:
            await interaction.edit_original_response(embed=embed, view=view)
        else:
            await interaction.edit_original_response(embed=embed)
