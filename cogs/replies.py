"""Reply edits: reply to a message with images, mention the bot, say what to change.

A request is a reply that mentions the bot (an explicit @mention, or the reply-ping when replying to one
of the bot's own messages). Its text without the mention is the prompt; its images are the replied-to
message's (at most 3), then the reply's own, 3 in all. Progress shows as reactions on the request and
the result comes back as a reply in the same channel or thread (`cogs.utils.delivery`, `source="reply"`).

A reply to one of the bot's results edits ONE image of that result (the result's job becomes the new
job's parent): the first image, or image k when the prompt starts with `#k` ("#2 make it darker").

Without the Message Content intent Discord blanks other people's messages, so a reply to someone else's
image gets a pointer to the Edit with Wan menu instead, unless the reply carries images of its own (then
those are edited); the bot's own results always work.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.images import ImageRejected
from bot.jobs import JobRefused
from bot.store import Job
from cogs.utils.edit_flow import (
    EditOptions,
    RequestRejected,
    refuse_unless_allowed,
    start_message_job,
)
from cogs.utils.edit_modal import first_images, image_attachments
from cogs.utils.inputs import MAX_IMAGES

if TYPE_CHECKING:
    from cogs.utils.wanbot import WanBot

log = logging.getLogger(__name__)

PICK = re.compile(r"^#(\d)\b\s*")
FOOTER_JOB = re.compile(r"Job #(\d+)$")
NO_IMAGES = (
    "I found no images to edit: reply to a message with a PNG, JPEG, WEBP or BMP attached (or attach "
    "one to your reply). Nothing was charged."
)
CANT_SEE = (
    "I can't see the images of other people's messages here (this bot runs without Discord's Message "
    "Content access). Use the menu instead: right-click (or long-press) the message → **Apps** → "
    "**Edit with Wan**. Nothing was charged."
)
GONE = "I can't find the message you replied to; it may have been deleted. Nothing was charged."


def prompt_of(content: str, bot_id: int) -> str:
    """The reply's text without the bot's mention(s)."""
    return " ".join(re.sub(rf"<@!?{bot_id}>", " ", content).split())


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    return any(user.id == bot_id for user in message.mentions)


class Replies(commands.Cog):
    """Turns replies that mention the bot into edit jobs."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.reference is None:
            return
        if message.type != discord.MessageType.reply or not mentions_bot(message, me.id):
            return
        try:
            await self.handle(message, me.id)
        except Exception:
            log.exception("reply edit %d failed", message.id)
            await self.answer(
                message,
                f"Something went wrong on our side (ref {message.id}). Nothing was charged.",
            )

    async def handle(self, message: discord.Message, bot_id: int) -> None:
        try:  # before any fetch: a server off WAN_ALLOWED_GUILDS is told why, and nothing more
            refuse_unless_allowed(self.bot, message.guild.id if message.guild else None)
        except RequestRejected as err:
            await self.answer(message, f"{err} Nothing was charged.")
            return
        referenced = await self.referenced(message)
        if referenced is None:
            await self.answer(message, GONE)
            return
        prompt = prompt_of(message.content, bot_id)
        options = EditOptions(prompt=prompt, source="reply")
        parent = await self.result_job(referenced, bot_id)
        if parent is not None:
            picked = await self.pick_result_image(message, referenced, parent, options)
            if picked is None:
                return
            from_referenced = [picked]
        elif (
            not self.bot.message_content
            and referenced.author.id != bot_id
            and not referenced.attachments
        ):
            # Blanked by Discord: it may well have images we are not shown. The reply's own
            # images (a message that mentions us is never blanked) can still be edited.
            if not image_attachments(message):
                await self.answer(message, CANT_SEE)
                return
            from_referenced = []
        else:
            from_referenced = image_attachments(referenced)
        attachments, sources = first_images(
            [(referenced, from_referenced), (message, image_attachments(message))], MAX_IMAGES
        )
        if not attachments:
            await self.answer(message, NO_IMAGES)
            return
        try:
            job = await start_message_job(self.bot, message, options, attachments, sources)
        except (RequestRejected, ImageRejected) as err:
            await self.answer(message, f"{err} Nothing was charged.")
            return
        except JobRefused as err:
            await self.answer(message, str(err))
            return
        log.info("reply %d: job %d queued", message.id, job.id)

    async def pick_result_image(
        self, message: discord.Message, result: discord.Message, job: Job, options: EditOptions
    ) -> discord.Attachment | None:
        """The result image the reply edits (the first, or `#k`); sets the parent on `options`."""
        found = image_attachments(result)
        number = 1
        pick = PICK.match(options.prompt)
        if pick is not None:
            number = int(pick[1])
            options.prompt = options.prompt[pick.end() :]
        if not found:
            await self.answer(message, NO_IMAGES)
            return None
        if not 1 <= number <= len(found):
            await self.answer(
                message,
                f"That result has {len(found)} image(s); start your prompt with #1"
                f"{f' to #{len(found)}' if len(found) > 1 else ''} to pick one. Nothing was charged.",
            )
            return None
        # Results too big to post together are one message per image: count the earlier ones.
        ids = job.result_message_ids
        offset = ids.index(result.id) if len(ids) > 1 and result.id in ids else 0
        options.parent_job_id = job.id
        options.parent_index = offset + number - 1
        return found[number - 1]

    async def referenced(self, message: discord.Message) -> discord.Message | None:
        """The replied-to message: as Discord sent it along, else fetched."""
        reference = message.reference
        assert reference is not None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        if isinstance(reference.resolved, discord.DeletedReferencedMessage):
            return None
        if reference.message_id is None:
            return None
        channel = message.channel
        if reference.channel_id != channel.id:
            found = self.bot.get_channel(reference.channel_id)
            if not isinstance(found, discord.abc.Messageable):
                return None
            channel = found  # type: ignore[assignment]
        try:
            return await channel.fetch_message(reference.message_id)
        except discord.HTTPException:
            return None

    async def result_job(self, referenced: discord.Message, bot_id: int) -> Job | None:
        """The job whose result `referenced` is, if it is one of ours."""
        if referenced.author.id != bot_id or not referenced.attachments:
            return None
        job = await self.bot.store.job_for_message(referenced.id)
        if job is not None and referenced.id in job.result_message_ids:
            return job
        # Posted, but the job row not yet marked done (a reply within milliseconds): our own
        # result embeds name their job in the footer.
        footer = referenced.embeds[0].footer.text if referenced.embeds else None
        found = FOOTER_JOB.search(footer or "")
        return await self.bot.store.get_job(int(found[1])) if found else None

    async def answer(self, message: discord.Message, text: str) -> None:
        """A short reply to the request (best effort: the channel may not let us post)."""
        try:
            await message.reply(text, mention_author=False)
        except discord.HTTPException:
            log.info("could not answer reply request %d", message.id)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Replies(bot))
