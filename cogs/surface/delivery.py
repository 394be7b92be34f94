"""Posting a finished job's result: the place (a thread for the job, else the channel, else the
interaction's follow-up while its token lives, else the member's DMs), the files (re-encoded to fit
the upload limit), the embed and the buttons.

Results are posted as the bot's own messages, so delivery works after the 15-minute interaction token
has died, including after a restart. The follow-up is the place for a channel that refuses the bot
(403, Missing Permissions): Discord lets an app answer its own interaction there, since an
interaction response needs none of the channel's permissions to post (only those the response
carries: attach files, embed links), which is also how an app without a bot user answers at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot import aspects, images
from bot.i18n import N_, _, _n, render
from bot.jobs import Delivery, Posted, from_text
from bot.store import Job
from bot.wan import IMAGINE_MODEL
from cogs.surface.job_messages import thread_name, token_alive, webhook
from cogs.surface.progress import COLOUR, ProgressMessages
from cogs.utils.channels import channel_by_id
from cogs.utils.language import job_language
from cogs.utils.text import short

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
THREAD_ALREADY_EXISTS = 160004
SANDBOX_NOTE = N_("Sandbox result: made by the local emulator, not by Wan. Nothing was billed.")

ResultView = Callable[[Job, int], "discord.ui.View | None"]


class ResultPoster:
    """Posts results; `result_view` builds the buttons under a result (passed in by whoever assembles the bot)."""

    def __init__(self, bot: WanBot, progress: ProgressMessages, result_view: ResultView) -> None:
        self.bot = bot
        self.progress = progress
        self.result_view = result_view
        # Where each posted, not yet settled result is: (message id, channel), for `finish_up`.
        self._touches: dict[int, tuple[int, Any]] = {}

    async def finish_up(self, job: Job) -> None:
        """The finishing touches of a posted result (the progress message pointing to it, or a ✅
        on a reply), once the runner has settled the job: Discord's edit limits may make them
        wait seconds, and the member's slot must not wait with them."""
        where = self._touches.pop(job.id, None)
        if where is not None:
            await self.progress.finishing_touches(job, *where)

    def forget(self, job_id: int) -> None:
        """A result posted for a job whose settlement never came here (another process took it)."""
        self._touches.pop(job_id, None)

    async def deliver(self, job: Job, delivery: Delivery) -> Posted:
        limit = int(job.extra.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)
        # The files are made ready (worker threads) while the place is found (Discord).
        fitting = asyncio.ensure_future(self._fit(job, delivery, limit))
        try:
            target = await self._place(job)
        except BaseException:
            # The fit writes into the job's folder, which goes when the delivery ends.
            await asyncio.wait([fitting])
            if not fitting.cancelled():
                fitting.exception()  # the place's error is the one that counts
            raise
        files = await fitting
        if delivery.redelivery and not isinstance(target, Followup):
            posted, attachments = await self._already_posted(job, target)
            if posted and attachments >= len(files):
                log.info("job %d: result was already posted before the restart", job.id)
                self._touches[job.id] = (posted[0], target)
                return Posted(posted, target.id)  # type: ignore[attr-defined]
            for message_id in posted:
                # Only part of it made it: remove that part and post the whole result again.
                with contextlib.suppress(discord.HTTPException):
                    await target.get_partial_message(message_id).delete()  # type: ignore[attr-defined]
        embed = self._result_embed(job, delivery)
        content = f"<@{job.user_id}>"
        mentions = discord.AllowedMentions(
            users=[discord.Object(job.user_id)], everyone=False, roles=False
        )
        reference = None
        if (
            job.source == "reply"
            and job.message_id is not None
            and target.id == (job.thread_id or job.channel_id)
        ):
            reference = discord.MessageReference(
                message_id=job.message_id, channel_id=target.id, fail_if_not_exists=False
            )
        view = self.result_view(job, len(files))
        send_kwargs: dict[str, Any] = {
            "content": content,
            "embed": embed,
            "allowed_mentions": mentions,
        }
        if reference is not None:
            send_kwargs["reference"] = reference
        if view is not None:
            send_kwargs["view"] = view
        async with contextlib.aclosing(self._fallbacks(job, target)) as places:
            async for place in places:
                try:
                    ids, message = await self._send_files(place, job, files, send_kwargs)
                    break
                except discord.HTTPException as err:
                    if not _refused(err):
                        raise
                    # The thread was deleted or locked, or the channel closed to us: the result must
                    # still reach the member, so try the next place (channel, then their DMs).
                    log.warning(
                        "job %d: cannot post in %s (%s); trying the next place",
                        job.id,
                        place,
                        err.code,
                    )
                    send_kwargs.pop("reference", None)
            else:
                raise RuntimeError(f"job {job.id}: no place accepted the result")
        self._touches[job.id] = (message.id, message.channel)
        # Where it went (a thread made for it, or a fallback), for /wanjobs to link to.
        return Posted(ids, message.channel.id)

    async def _place(self, job: Job) -> discord.abc.Messageable | Followup:
        """Where the result goes first (see `_delivery_target`)."""
        try:
            return await self._delivery_target(job)
        except (discord.NotFound, discord.Forbidden):
            # The channel itself is gone or closed to us: the interaction's follow-up while its
            # token lives, else the member's DMs, are the places left.
            if token_alive(job):
                log.warning("job %d: its channel is unavailable; answering the interaction", job.id)
                return Followup(webhook(self.bot, job))
            log.warning("job %d: its channel is unavailable; sending the result by DM", job.id)
            return await self._dm(job)

    async def _fit(self, job: Job, delivery: Delivery, limit: int) -> list[tuple[Path, str]]:
        """Each file as it goes up: on disk (next to the download), streamed by the upload."""
        # Each file's place among the task's results (failed ones are not downloaded).
        places = [i for i, r in enumerate(delivery.result.results) if r.ok and r.url]
        if len(places) != len(delivery.files):
            places = list(range(len(delivery.files)))
        return await asyncio.gather(
            *(
                images.fit_file_async(
                    result.path,
                    result.path.with_name(f"upload-{i + 1}"),
                    f"wan-{job.id}-{i + 1}.png",
                    limit,
                    self._metadata(job, places[i], result.head),
                )
                for i, result in enumerate(delivery.files)
            )
        )

    def _metadata(self, job: Job, index: int, head: bytes) -> dict[str, str]:
        """How the task's result `index` was made, carried in the file itself (PNG text, or EXIF/XMP).

        `head`: the file's first bytes (a PNG's dimensions are in them)."""
        seed = job.options.get("seed")
        dimensions = images.png_dimensions(head)
        size = job.options.get("size") or (f"{dimensions[0]}*{dimensions[1]}" if dimensions else "")
        fields = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt or "",
            # Wan gives image k of one task the seed + k.
            "seed": str(seed + index) if isinstance(seed, int) else "",
            "size": size,
            "model": IMAGINE_MODEL if from_text(job) else self.bot.settings.wan_model,
        }
        return {key: value for key, value in fields.items() if value}

    async def _send_files(
        self,
        target: discord.abc.Messageable | Followup,
        job: Job,
        files: list[tuple[Path, str]],
        send_kwargs: dict[str, Any],
    ) -> tuple[list[int], discord.Message | discord.WebhookMessage]:
        # A spoiler is the file name's `SPOILER_` prefix, which discord.py adds.
        spoiler = bool(job.extra.get("spoiler"))
        try:
            message = await target.send(
                # A path: discord.py opens the file and aiohttp streams it (a BytesIO would be
                # copied whole by aiohttp's payload).
                files=[discord.File(path, filename=n, spoiler=spoiler) for path, n in files],
                # Discord drops a second message with the same nonce: a re-delivery after a crash is not doubled.
                nonce=f"{self.bot.nonce_prefix}{job.id}",
                **send_kwargs,
            )
            return [message.id], message
        except discord.HTTPException as err:
            if err.status != 413 or len(files) == 1:
                raise
        # Together they exceed the upload limit: one message per image. The first pings the member
        # (and replies to the request), the last carries the buttons; each names the job in its
        # embed's footer, which finds the parts again after a restart.
        ids = []
        first: discord.Message | None = None
        for index, (path, name) in enumerate(files, start=1):
            part = dict(send_kwargs)
            view = part.pop("view", None)
            if index > 1:
                part.pop("reference", None)
                part["content"] = None
                part["allowed_mentions"] = discord.AllowedMentions.none()
                part["embed"] = self._part_embed(job, index, len(files))
            if index == len(files) and view is not None:
                part["view"] = view
            message = await target.send(
                files=[discord.File(path, filename=name, spoiler=spoiler)],
                nonce=f"{self.bot.nonce_prefix}{job.id}p{index}",
                **part,
            )
            first = first or message
            ids.append(message.id)
        assert first is not None
        return ids, first

    def _part_embed(self, job: Job, index: int, total: int) -> discord.Embed:
        language = job_language(job)
        if from_text(job):
            title = _(
                "Wan image from text · job #{job_id} · image {index}/{total}",
                job_id=job.id,
                index=index,
                total=total,
            )
        else:
            title = _(
                "Wan edit · job #{job_id} · image {index}/{total}",
                job_id=job.id,
                index=index,
                total=total,
            )
        embed = discord.Embed(colour=COLOUR, title=render(language, title))
        return embed.set_footer(text=self._footer(job, language))

    async def _fallbacks(
        self, job: Job, target: discord.abc.Messageable | Followup
    ) -> AsyncIterator[discord.abc.Messageable | Followup]:
        """Where to post, in order: the chosen place, then its channel, then the member's DMs.

        Lazily: the next place is looked up only when the one before has refused.
        """
        yield target
        parent = getattr(target, "parent", None)
        if isinstance(target, discord.Thread) and parent is not None:
            yield parent
        elif getattr(target, "id", None) != job.channel_id:
            try:
                yield await channel_by_id(self.bot, job.channel_id)
            except discord.HTTPException:
                pass
        if token_alive(job) and not isinstance(target, Followup):
            # Where the member asked, though the channel refuses the bot's own messages.
            yield Followup(webhook(self.bot, job))
        if job.guild_id is not None and not isinstance(target, discord.DMChannel):
            try:
                yield await self._dm(job)
            except discord.HTTPException:
                pass

    async def _dm(self, job: Job) -> discord.DMChannel:
        """The member's DM channel (a channel, not a `User`: cleanup and links need one)."""
        user = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
        return user.dm_channel or await user.create_dm()

    async def _already_posted(
        self, job: Job, target: discord.abc.Messageable
    ) -> tuple[list[int], int]:
        """This job's result messages already in `target` (a delivery cut short by a restart), and
        how many images they carry."""
        footer = f"Job #{job.id}"
        found: list[int] = []
        attachments = 0
        try:
            async for message in target.history(limit=50):  # type: ignore[attr-defined]
                if message.author.id != self.bot.user.id or not message.attachments:  # type: ignore[union-attr]
                    continue
                if any((e.footer.text or "").endswith(footer) for e in message.embeds):
                    found.append(message.id)
                    attachments += len(message.attachments)
        except discord.HTTPException:
            return [], 0
        return sorted(found), attachments

    async def _delivery_target(self, job: Job) -> discord.abc.Messageable:
        if job.thread_id is not None:
            return await channel_by_id(self.bot, job.thread_id)
        channel = await channel_by_id(self.bot, job.channel_id)
        if job.source == "reply" or job.guild_id is None or job.message_id is None:
            return channel
        if not isinstance(channel, discord.TextChannel):
            return channel
        message = channel.get_partial_message(job.message_id)
        try:
            return await message.create_thread(
                name=thread_name(job.prompt, job_language(job)), auto_archive_duration=1440
            )
        except discord.HTTPException as err:
            if err.code == THREAD_ALREADY_EXISTS:
                # A re-delivery after a restart: the thread started from this message has its id.
                return await channel_by_id(self.bot, job.message_id)
            # Whatever the reason (no permission, the message gone, the server's active-thread cap
            # 160006, a 5xx after discord.py's retries), the result goes to the channel instead.
            log.warning(
                "job %d: could not create a thread in channel %d (HTTP %s, code %s); posting in "
                "the channel",
                job.id,
                channel.id,
                err.status,
                err.code,
            )
            return channel

    async def post_unclaimed(
        self, job: Job, delivery: Delivery, hook: discord.Webhook, limit: int | None
    ) -> Posted:
        """Post a result that reached no one when it was made, as a follow-up of the interaction
        asking for it now (where the member is); what was posted, and where."""
        files = await self._fit(job, delivery, limit or DEFAULT_UPLOAD_LIMIT)
        send_kwargs: dict[str, Any] = {
            "content": f"<@{job.user_id}>",
            "embed": self._result_embed(job, delivery),
            "allowed_mentions": discord.AllowedMentions(
                users=[discord.Object(job.user_id)], everyone=False, roles=False
            ),
        }
        ids, message = await self._send_files(Followup(hook), job, files, send_kwargs)
        return Posted(ids, message.channel.id)

    def _footer(self, job: Job, language: str) -> str:
        # "Job #N" stays as it is in every language: a re-delivery after a restart finds the
        # parts already posted by this footer (`_already_posted`).
        footer = f"Job #{job.id}"
        if self.bot.sandbox:
            footer = f"{render(language, _(SANDBOX_NOTE))} · {footer}"
        return footer

    def _result_embed(self, job: Job, delivery: Delivery) -> discord.Embed:
        # Public: the language the job was made with (the server's), also after a restart.
        language = job_language(job)

        def t(text: str) -> str:
            return render(language, text)

        result = delivery.result
        embed = discord.Embed(colour=COLOUR, description=short(job.prompt, 1500))
        if from_text(job):
            # Said on the result itself: no input image, the picture came from the words above.
            embed.title = t(_("Wan image from text · job #{job_id}", job_id=job.id))
            embed.add_field(
                name=t(_("Created from")), value=t(_("text alone (no input image)")), inline=False
            )
        else:
            embed.title = t(_("Wan edit · job #{job_id}", job_id=job.id))
        if job.parent_job_id is not None:
            if job.parent_index is not None:
                source = _(
                    "job #{job_id} image {number}",
                    job_id=job.parent_job_id,
                    number=job.parent_index + 1,
                )
            else:
                source = _("job #{job_id}", job_id=job.parent_job_id)
            embed.add_field(name=t(_("Edited from")), value=t(source), inline=False)
        actual = result.actual_prompt
        if actual and actual.strip() != job.prompt.strip():
            embed.add_field(
                name=t(_("Wan rewrote the prompt as")), value=short(actual, 1000), inline=False
            )
        seed = job.options.get("seed")
        embed.add_field(name=t(_("Seed")), value=str(seed) if seed is not None else t(_("random")))
        if job.options.get("aspect") in aspects.ASPECTS:
            shape = aspects.describe(job.options["aspect"], from_text=from_text(job))
            embed.add_field(name=t(_("Aspect")), value=shape)
        embed.add_field(
            name=t(_("Time")), value=t(_("{seconds} s", seconds=f"{delivery.elapsed:.0f}"))
        )
        if delivery.remaining is not None:
            embed.add_field(name=t(_("Your images left today")), value=str(delivery.remaining))
        if delivery.missing:
            embed.add_field(
                name=t(_("Missing")),
                value=t(
                    _n(
                        "{count} image Wan made could not be downloaded; you were charged only "
                        "for the ones shown.",
                        "{count} images Wan made could not be downloaded; you were charged only "
                        "for the ones shown.",
                        delivery.missing,
                    )
                ),
                inline=False,
            )
        failed = [r for r in result.results if not r.ok]
        if failed:
            embed.add_field(
                name=t(_("Not generated")),
                value=t(
                    _(
                        "{failed} of {total} image(s) failed at Wan; you were charged only for the "
                        "ones shown.",
                        failed=len(failed),
                        total=len(result.results),
                    )
                ),
                inline=False,
            )
        embed.set_footer(text=self._footer(job, language))
        return embed


class Followup:
    """An interaction's follow-up as a place to post, with a channel's `send` (what a follow-up
    does not take, a nonce and a reply reference, is left out)."""

    id = None

    def __init__(self, hook: discord.Webhook) -> None:
        self.hook = hook

    async def send(self, **kwargs: Any) -> discord.WebhookMessage:
        kwargs.pop("nonce", None)
        kwargs.pop("reference", None)
        return await self.hook.send(wait=True, **kwargs)

    def __str__(self) -> str:
        return "the interaction's follow-up"


def _refused(err: discord.HTTPException) -> bool:
    """A place that won't take the result (gone, closed to the bot, a dead interaction token):
    the next place is tried."""
    return isinstance(err, discord.NotFound | discord.Forbidden) or err.status == 401
