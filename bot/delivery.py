"""The Discord side of a job: progress, result messages, failure notes and fresh inputs after a restart.

Results are posted as the bot's own messages (never as interaction follow-ups), so delivery works after
the 15-minute interaction token has died, including after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord

from bot import images
from bot.images import CheckedImage, ImageRejected
from bot.jobs import Delivery, Progress
from bot.store import Job
from bot.views import cancel_view

if TYPE_CHECKING:
    from bot.app import WanBot

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
THREAD_ALREADY_EXISTS = 160004
REACTIONS = {
    "queued": "⏳",
    "pending": "⏳",
    "running": "🎨",
    "delivering": "📦",
    "done": "✅",
    "failed": "❌",
}
SANDBOX_NOTE = "Sandbox result: made by the local emulator, not by Wan. Nothing was billed."
COLOUR = discord.Colour.from_rgb(98, 70, 234)


def short(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def thread_name(prompt: str) -> str:
    """A thread name from the prompt (Discord allows 100 characters)."""
    return short(prompt, 90) or "Wan edit"


class DiscordSurface:
    """Implements `bot.jobs.Surface` with discord.py."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        # Our current reaction on each reply request, so a stage change removes just that one.
        self._reacted: dict[int, str] = {}

    # ---- helpers ----------------------------------------------------------------------------

    def _token_alive(self, job: Job) -> bool:
        if not job.interaction_token or not job.application_id or job.token_expires_at is None:
            return False
        # A minute of margin: an edit that starts just before expiry may land just after it.
        return (job.token_expires_at - datetime.now(UTC)).total_seconds() > 60

    def _webhook(self, job: Job) -> discord.Webhook:
        assert job.application_id is not None and job.interaction_token is not None
        return discord.Webhook.partial(job.application_id, job.interaction_token, client=self.bot)

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            channel = await self.bot.fetch_channel(channel_id)
        return channel  # type: ignore[return-value]

    async def _edit_response(self, job: Job, **kwargs: Any) -> None:
        if not self._token_alive(job) or job.message_id is None:
            return
        await self._webhook(job).edit_message(job.message_id, **kwargs)

    async def _react(self, job: Job, stage: str) -> None:
        if job.message_id is None:
            return
        channel = await self._channel(job.thread_id or job.channel_id)
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

    # ---- Surface ------------------------------------------------------------------------------

    async def progress(self, job: Job, progress: Progress) -> None:
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

    async def deliver(self, job: Job, delivery: Delivery) -> list[int]:
        limit = int(job.extra.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)
        files: list[tuple[bytes, str]] = await asyncio.gather(
            *(
                images.fit_async(data, f"wan-{job.id}-{i + 1}.png", limit)
                for i, data in enumerate(delivery.files)
            )
        )
        try:
            target = await self._delivery_target(job)
        except (discord.NotFound, discord.Forbidden):
            # The channel itself is gone or closed to us: the member's DMs are the last place left.
            log.warning("job %d: its channel is unavailable; sending the result by DM", job.id)
            target = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
        if delivery.redelivery:
            posted, attachments = await self._already_posted(job, target)
            if posted and attachments >= len(files):
                log.info("job %d: result was already posted before the restart", job.id)
                await self._finishing_touches(job, posted[0], target)
                return posted
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
        view = self.bot.result_view(job, len(files))
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
                except (discord.NotFound, discord.Forbidden) as err:
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
        await self._finishing_touches(job, message.id, message.channel)
        return ids

    async def _finishing_touches(self, job: Job, message_id: int, where: Any) -> None:
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

    async def _send_files(
        self,
        target: discord.abc.Messageable,
        job: Job,
        files: list[tuple[bytes, str]],
        send_kwargs: dict[str, Any],
    ) -> tuple[list[int], discord.Message]:
        try:
            message = await target.send(
                files=[discord.File(io.BytesIO(d), filename=n) for d, n in files],
                # Discord drops a second message with the same nonce: a re-delivery after a crash is not doubled.
                nonce=f"{self.bot.nonce_prefix}{job.id}",
                **send_kwargs,
            )
            return [message.id], message
        except discord.HTTPException as err:
            if err.status != 413 or len(files) == 1:
                raise
        # Together they exceed the upload limit: one message per image.
        ids = []
        for index, (data, name) in enumerate(files, start=1):
            message = await target.send(
                files=[discord.File(io.BytesIO(data), filename=name)],
                nonce=f"{self.bot.nonce_prefix}{job.id}p{index}",
                **send_kwargs,
            )
            ids.append(message.id)
        return ids, message

    async def _fallbacks(
        self, job: Job, target: discord.abc.Messageable
    ) -> AsyncIterator[discord.abc.Messageable]:
        """Where to post, in order: the chosen place, then its channel, then the member's DMs.

        Lazily: the next place is looked up only when the one before has refused.
        """
        yield target
        parent = getattr(target, "parent", None)
        if isinstance(target, discord.Thread) and parent is not None:
            yield parent
        elif getattr(target, "id", None) != job.channel_id:
            try:
                yield await self._channel(job.channel_id)
            except discord.HTTPException:
                pass
        if job.guild_id is not None:
            try:
                yield self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
            except discord.HTTPException:
                pass

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

    async def finished_without_result(self, job: Job, text: str) -> None:
        if job.source == "reply":
            await self._react_quietly(job, "failed")
            channel = await self._channel(job.thread_id or job.channel_id)
            reference = discord.MessageReference(
                message_id=job.message_id or 0,
                channel_id=channel.id,
                fail_if_not_exists=False,  # type: ignore[attr-defined]
            )
            await channel.send(text, reference=reference, mention_author=True)
            return
        embed = discord.Embed(colour=discord.Colour.red(), title="❌ No result", description=text)
        embed.set_footer(text=f"Job #{job.id}")
        if self._token_alive(job):
            await self._edit_response(job, embed=embed, view=None)
            return
        # The token is gone (a long job, or a restart): say it in the channel, to the requester.
        channel = await self._channel(job.thread_id or job.channel_id)
        await channel.send(
            f"<@{job.user_id}> your Wan edit (job #{job.id}) ended without a result: {text}",
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)]),
        )

    async def fetch_inputs(self, job: Job) -> list[CheckedImage]:
        """The job's input images again, from fresh URLs where Discord can give them."""
        async with images.load_slot():
            return await self._fetch_inputs(job)

    async def _fetch_inputs(self, job: Job) -> list[CheckedImage]:
        checked: list[CheckedImage] = []
        for index, spec in enumerate(job.inputs, start=1):
            url = spec.get("url")
            filename = spec.get("filename") or f"image{index}.png"
            source_message = spec.get("source_message_id")
            if source_message:
                try:
                    channel = await self._channel(int(spec["source_channel_id"]))
                    message = await channel.fetch_message(int(source_message))  # type: ignore[attr-defined]
                    fresh = discord.utils.get(
                        message.attachments, id=int(spec.get("attachment_id") or 0)
                    )
                    if fresh is not None:
                        url = fresh.url
                except discord.HTTPException:
                    raise ImageRejected(
                        f"Image {index} is gone: its message was deleted."
                    ) from None
            if not url:
                raise ImageRejected(f"Image {index} is no longer available.")
            try:
                data = await self.bot.http.get_from_cdn(url)
            except discord.HTTPException:
                raise ImageRejected(f"Image {index} is no longer available from Discord.") from None
            checked.append(await images.check(index, filename, data, url))
        return checked

    # ---- delivery details ---------------------------------------------------------------------

    async def _delivery_target(self, job: Job) -> discord.abc.Messageable:
        if job.thread_id is not None:
            return await self._channel(job.thread_id)
        channel = await self._channel(job.channel_id)
        if job.source == "reply" or job.guild_id is None or job.message_id is None:
            return channel
        if not isinstance(channel, discord.TextChannel):
            return channel
        message = channel.get_partial_message(job.message_id)
        try:
            return await message.create_thread(
                name=thread_name(job.prompt), auto_archive_duration=1440
            )
        except discord.Forbidden:
            log.warning(
                "job %d: no permission to create threads in channel %d; posting in the channel",
                job.id,
                channel.id,
            )
            return channel
        except discord.NotFound:
            log.info("job %d: its response message is gone; posting in the channel", job.id)
            return channel
        except discord.HTTPException as err:
            if err.code == THREAD_ALREADY_EXISTS:
                # A re-delivery after a restart: the thread started from this message has its id.
                return await self._channel(job.message_id)
            raise

    def _result_embed(self, job: Job, delivery: Delivery) -> discord.Embed:
        result = delivery.result
        embed = discord.Embed(colour=COLOUR, description=short(job.prompt, 1500))
        embed.title = f"Wan edit · job #{job.id}"
        if job.parent_job_id is not None:
            which = f" image {job.parent_index + 1}" if job.parent_index is not None else ""
            embed.add_field(
                name="Edited from", value=f"job #{job.parent_job_id}{which}", inline=False
            )
        actual = result.actual_prompt
        if actual and actual.strip() != job.prompt.strip():
            embed.add_field(
                name="Wan rewrote the prompt as", value=short(actual, 1000), inline=False
            )
        seed = job.options.get("seed")
        embed.add_field(name="Seed", value=str(seed) if seed is not None else "random")
        embed.add_field(name="Time", value=f"{delivery.elapsed:.0f} s")
        if delivery.remaining is not None:
            embed.add_field(name="Your images left today", value=str(delivery.remaining))
        failed = [r for r in result.results if not r.ok]
        if failed:
            embed.add_field(
                name="Not generated",
                value=f"{len(failed)} of {len(result.results)} image(s) failed at Wan; "
                "you were charged only for the ones shown.",
                inline=False,
            )
        footer = f"Job #{job.id}"
        if self.bot.sandbox:
            footer = f"{SANDBOX_NOTE} · {footer}"
        embed.set_footer(text=footer)
        return embed

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
