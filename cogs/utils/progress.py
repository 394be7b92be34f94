"""A job's progress as members see it: the response message's embed and Cancel button, or reactions
on a reply request; and the last word when a job ends without a result.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.jobs import Progress
from bot.store import Job
from cogs.utils.components import cancel_view
from cogs.utils.places import channel_by_id, short, token_alive, webhook

if TYPE_CHECKING:
    from cogs.utils.wanbot import WanBot

log = logging.getLogger(__name__)

REACTIONS = {
    "queued": "⏳",
    "pending": "⏳",
    "running": "🎨",
    "delivering": "📦",
    "done": "✅",
    "failed": "❌",
}
COLOUR = discord.Colour.from_rgb(98, 70, 234)


class ProgressMessages:
    """Edits a job's response message (or its reactions) as the job moves on."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        # Our current reaction on each reply request, so a stage change removes just that one.
        self._reacted: dict[int, str] = {}

    async def _edit_response(self, job: Job, **kwargs: Any) -> None:
        if not token_alive(job) or job.message_id is None:
            return
        await webhook(self.bot, job).edit_message(job.message_id, **kwargs)

    async def _react(self, job: Job, stage: str) -> None:
        if job.message_id is None:
            return
        channel = await channel_by_id(self.bot, job.thread_id or job.channel_id)
        message = channel.get_partial_message(job.message_id)  # type: ignore[attr-defined]
        emoji = REACTIONS[stage]
        previous = self._reacted.get(job.id)
        if previous == emoji:
            return
        await message.add_reaction(emoji)
        self._reacted[job.id] = emoji
        if stage in ("done", "failed"):
            self._reacted.pop(job.id, None)
        if previous is not None:
            stale = [previous]
        elif stage == "queued":
            stale = []  # a new request: nothing of ours on it yet
        else:
            # A job resumed after a restart: we don't know which one is ours, so clear them once.
            stale = list(set(REACTIONS.values()) - {emoji})
        for other in stale:
            try:
                await message.remove_reaction(other, self.bot.user)  # type: ignore[arg-type]
            except discord.HTTPException:
                pass

    async def show(self, job: Job, progress: Progress) -> None:
        if job.source == "reply":
            await self._react(job, progress.stage)
            return
        embed = discord.Embed(colour=COLOUR, description=short(job.prompt, 300))
        if progress.stage == "queued":
            place = f"#{progress.position}" if progress.position else "soon"
            embed.title = f"⏳ Queued (position {place})"
        elif progress.stage == "pending":
            embed.title = "⏳ Sent to Wan, waiting for a free slot"
        elif progress.stage == "running":
            embed.title = "🎨 Wan is editing"
        else:
            embed.title = "📦 Downloading and posting the result"
        if progress.started_at and progress.stage in ("pending", "running"):
            embed.add_field(name="Started", value=f"<t:{int(progress.started_at)}:R>")
        embed.set_footer(text=f"Job #{job.id}")
        view = cancel_view(job.id) if progress.cancellable else None
        await self._edit_response(job, embed=embed, view=view)

    async def finishing_touches(self, job: Job, message_id: int, where: Any) -> None:
        """Mark the request done: a ✅ on a reply request, or the progress message pointing to the result."""
        if job.source == "reply":
            await self._react_quietly(job, "done")
            return
        url = where.get_partial_message(message_id).jump_url
        done = discord.Embed(
            colour=discord.Colour.green(),
            title="✅ Done",
            description=f"{short(job.prompt, 300)}\n\nResults: {url}",
        )
        done.set_footer(text=f"Job #{job.id}")
        await self._edit_quietly(job, embed=done, view=None)

    async def finished_without_result(self, job: Job, text: str) -> None:
        if job.source == "reply":
            await self._react_quietly(job, "failed")
            channel = await channel_by_id(self.bot, job.thread_id or job.channel_id)
            reference = discord.MessageReference(
                message_id=job.message_id or 0,
                channel_id=channel.id,
                fail_if_not_exists=False,  # type: ignore[attr-defined]
            )
            await channel.send(text, reference=reference, mention_author=True)
            return
        embed = discord.Embed(colour=discord.Colour.red(), title="❌ No result", description=text)
        embed.set_footer(text=f"Job #{job.id}")
        if token_alive(job):
            await self._edit_response(job, embed=embed, view=None)
            return
        # The token is gone (a long job, or a restart): say it in the channel, to the requester.
        channel = await channel_by_id(self.bot, job.thread_id or job.channel_id)
        await channel.send(
            f"<@{job.user_id}> your Wan edit (job #{job.id}) ended without a result: {text}",
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)]),
        )

    async def _react_quietly(self, job: Job, stage: str) -> None:
        try:
            await self._react(job, stage)
        except discord.HTTPException:
            log.info("job %d: could not react on the request message", job.id)

    async def _edit_quietly(self, job: Job, **kwargs: Any) -> None:
        try:
            await self._edit_response(job, **kwargs)
        except discord.HTTPException:
            log.info("job %d: could not edit the response message", job.id)
