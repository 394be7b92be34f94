"""How a job's response message reads once the job has ended: done (with a link to the result), no
result (why, nothing charged), or cancelled. Shared by the progress messages and the Cancel button (which
puts the ending on a message whose last edit never landed). In the job's public language."""

from __future__ import annotations

import discord

from bot.i18n import _, render
from bot.store import Job, JobState
from cogs.utils.language import job_language
from cogs.utils.text import short


def done_embed(job: Job, url: str | None) -> discord.Embed:
    language = job_language(job)
    if url:
        where = render(language, _("Results: {url}", url=url))
    else:
        where = render(language, _("The results were posted (see the job's thread or DMs)."))
    embed = discord.Embed(
        colour=discord.Colour.green(),
        title=render(language, _("✅ Done")),
        description=f"{short(job.prompt, 300)}\n\n{where}",
    )
    return embed.set_footer(text=render(language, _("Job #{job_id}", job_id=job.id)))


def ended_embed(job: Job, text: str) -> discord.Embed:
    """A job that ended without a result: cancelled, or failed with `text` saying why."""
    language = job_language(job)
    if job.state == JobState.CANCELLED:
        embed = discord.Embed(
            colour=discord.Colour.light_grey(), title=render(language, _("✖️ Cancelled"))
        )
        embed.description = render(language, text)
    else:
        embed = discord.Embed(
            colour=discord.Colour.red(),
            title=render(language, _("❌ No result")),
            description=render(language, text),
        )
    return embed.set_footer(text=render(language, _("Job #{job_id}", job_id=job.id)))


def final_embed(job: Job) -> discord.Embed:
    """The ending of a finished job, from its stored row alone."""
    if job.state == JobState.DONE:
        return done_embed(job, None)
    text = job.error_message or _("Nothing was charged.")
    if job.state == JobState.CANCELLED and not job.error_message:
        text = _("Cancelled. Nothing was charged.")
    return ended_embed(job, text)
