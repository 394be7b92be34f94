"""Reply edits: reply to a message with images, mention the bot, say what to change.

A request is a reply that @mentions the bot in its text. A reply to one of the bot's own messages that
pings it only through Discord's reply toggle ("thanks!") is not taken as a paid request: the bot answers
with an **Edit** button (the prompt and image count shown) that only the reply's author can click, and
the offer is deleted after a minute (`cogs.edit.reply_offer`). The text without the mention is the prompt; its images are the replied-to
message's (at most 3), then the reply's own, 3 in all. Progress shows as reactions on the request and
the result comes back as a reply in the same channel or thread (`cogs.surface.delivery`, `source="reply"`).

A reply to one of the bot's results edits ONE image of that result (the result's job becomes the new
job's parent): the first image, or image k when the prompt starts with `#k` ("#2 make it darker").

Without the Message Content intent Discord blanks other people's messages, so a reply to someone else's
image gets a pointer to the Edit with Wan menu instead, unless the reply carries images of its own (then
those are edited); the bot's own results always work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.i18n import Text, _, _n, render, text_of
from bot.images import ImageRejected
from bot.jobs import JobRefused
from bot.store import Job
from cogs.edit._form import first_images, image_attachments
from cogs.edit.reply_offer import OFFER_SECONDS, offer_age, offer_view
from cogs.intake.attachments import MAX_IMAGES
from cogs.intake.mentions import answer, imagine_prompt, mentions_explicitly, prompt_of
from cogs.intake.requests import (
    EditOptions,
    RequestRejected,
    refuse_unless_allowed,
    start_message_job,
)
from cogs.utils.language import message_language, private_language
from cogs.utils.quota_words import refused_text
from cogs.utils.text import short

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

PICK = re.compile(r"^#(\d)\b\s*")
FOOTER_JOB = re.compile(r"Job #(\d+)$")
NO_IMAGES = _(
    "I found no images to edit: reply to a message with a PNG, JPEG, WEBP or BMP attached (or attach "
    "one to your reply). Nothing was charged."
)
CANT_SEE = _(
    "I can't see the images of other people's messages here (this bot runs without Discord's Message "
    "Content access). Use the menu instead: right-click (or long-press) the message → **Apps** → "
    "**Edit with Wan**. Nothing was charged."
)
GONE = _("I can't find the message you replied to; it may have been deleted. Nothing was charged.")
GONE_REPLY = _("Your reply is gone (deleted?), so there is nothing to edit. Nothing was charged.")


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    return any(user.id == bot_id for user in message.mentions)


class Refusal(Exception):
    """A request the bot won't start, with nothing spent; its `Text` (`text_of`) says why, shown
    in the language of whoever is told."""


def not_charged(error: BaseException) -> Text:
    return _("{reason} Nothing was charged.", reason=text_of(error))


@dataclass
class ReplyRequest:
    """A checked reply request: what to edit and how, before anything is spent."""

    message: discord.Message
    options: EditOptions
    attachments: list[discord.Attachment]
    sources: list[discord.Message]


class Replies(commands.Cog):
    """Turns replies that mention the bot into edit jobs (or, for a bare reply-ping, an offer)."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        self.offer_seconds = OFFER_SECONDS
        # Timers deleting offers after `offer_seconds` (kept referenced until they run).
        self._expiring: set[asyncio.Task[None]] = set()

    async def cog_unload(self) -> None:
        for task in self._expiring:
            task.cancel()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.reference is None:
            return
        if message.type != discord.MessageType.reply or not mentions_bot(message, me.id):
            return
        explicit = mentions_explicitly(message.content, me.id)
        asks_to_imagine = imagine_prompt(prompt_of(message.content, me.id)) is not None
        if asks_to_imagine and self.bot.settings.text_to_image:
            return  # not an edit: cogs.imagine answers it
        try:
            request = await self.prepare(message, me.id)
            if explicit:
                await self.start(request)
            else:
                await self.offer(request)
        except Refusal as refusal:
            if explicit:
                await self.answer(message, text_of(refusal))
            else:
                # Only the reply toggle pinged us: most likely not meant as a request at all.
                log.info("reply-ping %d without a mention, not offered: %s", message.id, refusal)
        except Exception:
            log.exception("reply edit %d failed", message.id)
            await self.answer(
                message,
                _(
                    "Something went wrong on our side (ref {ref}). Nothing was charged.",
                    ref=message.id,
                ),
            )

    async def prepare(self, message: discord.Message, bot_id: int) -> ReplyRequest:
        """What the reply asks for; raises `Refusal` (nothing spent) when it can't be done."""
        try:  # before any fetch: a server off WAN_ALLOWED_GUILDS is told why, and nothing more
            await refuse_unless_allowed(
                self.bot, message.guild.id if message.guild else None, message.author.id
            )
        except RequestRejected as err:
            raise Refusal(not_charged(err)) from None
        referenced = await self.referenced(message)
        if referenced is None:
            raise Refusal(GONE)
        prompt = prompt_of(message.content, bot_id)
        options = EditOptions(prompt=prompt, source="reply")
        parent = await self.result_job(referenced, bot_id)
        if parent is not None:
            from_referenced = [self.pick_result_image(referenced, parent, options)]
        elif (
            not self.bot.message_content
            and referenced.author.id != bot_id
            and not referenced.attachments
        ):
            # Blanked by Discord: it may well have images we are not shown. The reply's own
            # images (a message that mentions us is never blanked) can still be edited.
            if not image_attachments(message):
                raise Refusal(CANT_SEE)
            from_referenced = []
        else:
            from_referenced = image_attachments(referenced)
        attachments, sources = first_images(
            [(referenced, from_referenced), (message, image_attachments(message))], MAX_IMAGES
        )
        if not attachments:
            raise Refusal(NO_IMAGES)
        return ReplyRequest(message, options, attachments, sources)

    async def start(self, request: ReplyRequest) -> Job:
        """Check, reserve and queue the request's job; raises `Refusal` with nothing spent."""
        try:
            job = await start_message_job(
                self.bot, request.message, request.options, request.attachments, request.sources
            )
        except (RequestRejected, ImageRejected) as err:
            raise Refusal(not_charged(err)) from None
        except JobRefused as err:
            raise Refusal(refused_text(err)) from None
        log.info("reply %d: job %d queued", request.message.id, job.id)
        return job

    # ---- the offer under a bare reply-ping ----------------------------------------------------

    async def offer(self, request: ReplyRequest) -> None:
        """Answer a reply that pinged us only through the reply toggle with an **Edit** button."""
        message = request.message
        if not request.options.prompt.strip():
            log.info("reply-ping %d without a prompt, not offered", message.id)
            return
        # Public (the thread sees it): the server's language.
        language = await message_language(self.bot.store, message)
        text = _(
            "Edit with Wan? Prompt: “{prompt}” · {images} image(s) in, {count} new image(s) from "
            "your daily images. Only <@{author}> can start it; this offer goes away in a minute.",
            prompt=short(request.options.prompt, 200),
            images=len(request.attachments),
            count=request.options.count,
            author=message.author.id,
        )
        try:
            sent = await message.reply(
                render(language, text),
                view=offer_view(message.id, message.author.id, language),
                mention_author=False,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException:
            log.info("could not offer an edit for reply %d", message.id)
            return
        task = asyncio.create_task(self._expire(sent))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, offer: discord.Message) -> None:
        await asyncio.sleep(self.offer_seconds)
        with contextlib.suppress(discord.HTTPException):
            await offer.delete()

    async def accept_offer(
        self, interaction: discord.Interaction[WanBot], request_id: int, author_id: int
    ) -> None:
        """A click on an offer's **Edit**: start the reply's edit, for its author only. Every answer
        is private: the clicker's own language."""
        language = private_language(interaction)
        if interaction.user.id != author_id:
            await interaction.response.send_message(
                render(
                    language,
                    _(
                        "Only <@{author}> can use this button: it starts the edit their reply "
                        "asked for. Reply to the result with an @mention of the bot to edit it "
                        "yourself.",
                        author=author_id,
                    ),
                ),
                ephemeral=True,
            )
            return
        offer = interaction.message
        if offer_age(offer) > self.offer_seconds:
            await interaction.response.send_message(
                render(
                    language,
                    _(
                        "This offer has expired. Reply again with an @mention of the bot to edit. "
                        "Nothing was charged."
                    ),
                ),
                ephemeral=True,
            )
            await self._drop_offer(offer)
            return
        # Acknowledged without a message of its own: the job shows on the reply (reactions).
        await interaction.response.defer()
        started = await self.bot.store.job_for_message(request_id)
        if started is not None and started.message_id == request_id:
            await interaction.followup.send(
                render(language, _("Already on it: job #{job_id}.", job_id=started.id)),
                ephemeral=True,
            )
            return
        me = self.bot.user
        assert me is not None and interaction.channel is not None
        try:
            message = await interaction.channel.fetch_message(request_id)  # type: ignore[union-attr]
        except discord.HTTPException:
            await interaction.followup.send(render(language, GONE_REPLY), ephemeral=True)
            await self._drop_offer(offer)
            return
        try:
            job = await self.start(await self.prepare(message, me.id))
        except Refusal as refusal:
            await interaction.followup.send(render(language, text_of(refusal)), ephemeral=True)
            return
        interaction.extras["job_id"] = job.id
        await self._drop_offer(offer)

    @staticmethod
    async def _drop_offer(offer: discord.Message | None) -> None:
        if offer is not None:
            with contextlib.suppress(discord.HTTPException):
                await offer.delete()

    def pick_result_image(
        self, result: discord.Message, job: Job, options: EditOptions
    ) -> discord.Attachment:
        """The result image the reply edits (the first, or `#k`); sets the parent on `options`."""
        found = image_attachments(result)
        number = 1
        pick = PICK.match(options.prompt)
        if pick is not None:
            number = int(pick[1])
            options.prompt = options.prompt[pick.end() :]
        if not found:
            raise Refusal(NO_IMAGES)
        if not 1 <= number <= len(found):
            raise Refusal(
                _n(
                    "That result has {count} image; start your prompt with #1 to pick it. "
                    "Nothing was charged.",
                    "That result has {count} images; start your prompt with #1 to #{count} to "
                    "pick one. Nothing was charged.",
                    len(found),
                )
            )
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
        """A short public reply to the request (best effort)."""
        await answer(self.bot, message, text)
