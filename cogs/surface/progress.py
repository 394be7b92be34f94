"""A job's progress as members see it: the response message's embed and Cancel button, or reactions
on a reply request; and the last word when a job ends without a result.

The response message is edited through the interaction's webhook while its token lives, and with the
bot's own token after that (a long queue, a restart, a token Discord already killed): a non-ephemeral
interaction response is a message the bot authored in that channel, so `PATCH
/channels/{channel}/messages/{message}` edits it (discord/discord-api-docs#3090: "it is possible to edit
a non-ephemeral interaction response through the Edit Message endpoint"; ephemeral ones can't be). When
neither works, the outcome is posted as a fresh message, so a job never ends with its message still
saying "queued" under a live Cancel button.

A progress edit is sent only when it changes what a member sees: the stage, the queue position, the
Cancel button, or the start time by more than `START_SLACK` (the elapsed time itself Discord counts
up on its own, from a `<t:...:R>` timestamp). A message gets at most `PROGRESS_EDITS` progress edits
in any `EDIT_WINDOW` seconds: a change beyond that waits until the oldest of them leaves the window,
and only the latest change is then sent. The last word (done, or ended without a result) goes at
once, after any edit still under way, never before it. So a message is edited at most five times in
any 5 s, what Discord allows per interaction token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from bot.i18n import _, render
from bot.jobs import Progress, from_text
from bot.store import Job
from cogs.surface.cancel import cancel_view
from cogs.surface.job_messages import token_alive, webhook
from cogs.surface.outcomes import done_embed, ended_embed
from cogs.utils.channels import channel_by_id
from cogs.utils.language import job_language
from cogs.utils.text import short

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

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
UNKNOWN_MESSAGE = 10008
PROGRESS_EDITS = 4
EDIT_WINDOW = 5.0
START_SLACK = 5.0


@dataclass
class _Shown:
    """What a job's response message shows now, as far as a member can tell, and when its last
    `PROGRESS_EDITS` progress edits were made (monotonic)."""

    looks: tuple[Any, ...]
    started_at: float | None
    edits: deque[float] = field(default_factory=lambda: deque(maxlen=PROGRESS_EDITS))


def token_refused(err: discord.HTTPException) -> bool:
    """Discord refused the interaction token itself (401 50027 once it is dead, or 404 10015)."""
    return err.status == 401 or err.code in (50027, 10015)


class ProgressMessages:
    """Edits a job's response message (or its reactions) as the job moves on."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        # Our current reaction on each reply request, so a stage change removes just that one.
        self._reacted: dict[int, str] = {}
        # Jobs whose interaction token Discord has refused: edited with the bot token from then on.
        self._dead_tokens: set[int] = set()
        self._unreactable: set[int] = set()  # channels where we were refused reactions, logged once
        self._shown: dict[int, _Shown] = {}
        # A change that came while the message had its fill of edits: the latest one, and the
        # task that sends it when the window allows.
        self._wanted: dict[int, tuple[Job, Progress]] = {}
        self._later: dict[int, asyncio.Task[None]] = {}
        self._sleeping: set[int] = set()  # jobs whose `_later` task has not begun its edit
        # One edit of a message at a time, so they reach Discord in the order they were made;
        # a lock lives while an edit holds or waits for it.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def _edit_response(self, job: Job, **kwargs: Any) -> bool:
        """Edit the job's response message: with its interaction token while it lives, else (or when
        Discord refuses it) with the bot's token. False if the job has no such message; raises
        `discord.HTTPException` if neither token can edit it."""
        if job.message_id is None:
            return False
        if token_alive(job) and job.id not in self._dead_tokens:
            try:
                await webhook(self.bot, job).edit_message(job.message_id, **kwargs)
                return True
            except discord.HTTPException as err:
                if not token_refused(err):
                    raise
                log.info("job %d: interaction token refused; editing with the bot token", job.id)
                self._dead_tokens.add(job.id)
        channel = await channel_by_id(self.bot, job.thread_id or job.channel_id)
        await channel.get_partial_message(job.message_id).edit(**kwargs)  # type: ignore[attr-defined]
        return True

    async def _react(self, job: Job, stage: str) -> None:
        if job.message_id is None:
            return
        channel = await channel_by_id(self.bot, job.thread_id or job.channel_id)
        message = channel.get_partial_message(job.message_id)  # type: ignore[attr-defined]
        emoji = REACTIONS[stage]
        # The last stage forgets the job first: a refused last reaction must not leave it here.
        last = stage in ("done", "failed")
        previous = self._reacted.pop(job.id, None) if last else self._reacted.get(job.id)
        if previous == emoji:
            return
        try:
            await message.add_reaction(emoji)
        except discord.Forbidden as err:
            # Missing Add Reactions (50013) there: the result still comes as a reply. Say so once
            # per channel, not with a traceback for every stage of every job.
            if channel.id not in self._unreactable:
                self._unreactable.add(channel.id)
                log.warning("can't add reactions in channel %d (%s)", channel.id, err.text)
            return
        if not last:
            self._reacted[job.id] = emoji
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
        looks = (progress.stage, progress.position, progress.cancellable)
        shown = self._shown.get(job.id)
        if shown is not None and self._same(shown, looks, progress.started_at):
            self._wanted.pop(job.id, None)  # a change still waiting is undone by this one
            return
        wait = 0.0
        if shown is not None and len(shown.edits) == PROGRESS_EDITS:
            wait = shown.edits[0] + EDIT_WINDOW - time.monotonic()
        if wait > 0:
            self._wanted[job.id] = (job, progress)
            if job.id not in self._later:
                self._later[job.id] = asyncio.create_task(
                    self._send_later(job.id, wait), name=f"wanbot-progress-{job.id}"
                )
            return
        self._wanted.pop(job.id, None)
        async with self._lock(job.id):
            await self._show_now(job, progress)

    @staticmethod
    def _same(shown: _Shown, looks: tuple[Any, ...], started_at: float | None) -> bool:
        if shown.looks != looks:
            return False
        if (shown.started_at is None) != (started_at is None):
            return False
        return started_at is None or abs(started_at - (shown.started_at or 0.0)) < START_SLACK

    def _lock(self, job_id: int) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    def forget(self, job_id: int) -> None:
        """Drop what was kept for the job's message: it is no longer this process's to edit."""
        self._reacted.pop(job_id, None)
        self._dead_tokens.discard(job_id)
        self._shown.pop(job_id, None)
        self._wanted.pop(job_id, None)  # a waiting change's task then sends nothing

    async def _send_later(self, job_id: int, wait: float) -> None:
        try:
            self._sleeping.add(job_id)
            try:
                await asyncio.sleep(wait)
            finally:
                self._sleeping.discard(job_id)
            async with self._lock(job_id):
                wanted = self._wanted.pop(job_id, None)
                if wanted is not None:
                    await self._show_now(*wanted)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Progress is cosmetic: a refused edit must not end anything else.
            log.exception("job %d: could not update Discord", job_id)
        finally:
            self._later.pop(job_id, None)

    async def _show_now(self, job: Job, progress: Progress) -> None:
        looks = (progress.stage, progress.position, progress.cancellable)
        shown = self._shown.get(job.id)
        if shown is not None and self._same(shown, looks, progress.started_at):
            return
        # Public (the channel sees it): the server's language, as the job remembers it.
        language = job_language(job)
        embed = discord.Embed(colour=COLOUR, description=short(job.prompt, 300))
        if progress.stage == "queued" and progress.position:
            title = _("⏳ Queued (position #{position})", position=progress.position)
        elif progress.stage == "queued":
            title = _("⏳ Queued (position soon)")
        elif progress.stage == "pending":
            title = _("⏳ Sent to Wan, waiting for a free slot")
        elif progress.stage == "running" and from_text(job):
            title = _("🎨 Wan is making your image")
        elif progress.stage == "running":
            title = _("🎨 Wan is editing")
        else:
            title = _("📦 Downloading and posting the result")
        embed.title = render(language, title)
        started_at = progress.started_at if progress.stage in ("pending", "running") else None
        if started_at:
            embed.add_field(name=render(language, _("Started")), value=f"<t:{int(started_at)}:R>")
        embed.set_footer(text=render(language, _("Job #{job_id}", job_id=job.id)))
        view = cancel_view(job) if progress.cancellable else None
        edits = shown.edits if shown is not None else deque(maxlen=PROGRESS_EDITS)
        edits.append(time.monotonic())
        self._shown[job.id] = _Shown(looks, started_at, edits)
        try:
            await self._edit_response(job, embed=embed, view=view)
        except BaseException:
            # Not shown after all: the next change is sent (its edit still counts for the limit).
            self._shown[job.id] = _Shown((), None, edits)
            raise

    @contextlib.asynccontextmanager
    async def _last_word(self, job_id: int) -> AsyncIterator[None]:
        """Around a job's last edit: a progress change still waiting is dropped, an edit under
        way finishes first, and what the message showed is forgotten afterwards."""
        self._wanted.pop(job_id, None)
        later = self._later.get(job_id)
        if later is not None and job_id in self._sleeping:
            later.cancel()
        try:
            async with self._lock(job_id):
                yield
        finally:
            self._shown.pop(job_id, None)

    async def close(self) -> None:
        """Drop the progress changes still waiting (the bot is stopping)."""
        tasks = list(self._later.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def finishing_touches(self, job: Job, message_id: int, where: Any) -> None:
        """Mark the request done: a ✅ on a reply request, or the progress message pointing to the result."""
        if job.source == "reply":
            await self._react_quietly(job, "done")
            return
        url = where.get_partial_message(message_id).jump_url
        self._dead_tokens.discard(job.id)
        # The result itself pings the member, so a response message we can't edit needs no stand-in.
        async with self._last_word(job.id):
            await self._edit_quietly(job, embed=done_embed(job, url), view=None)

    async def finished_without_result(self, job: Job, text: str) -> None:
        language = job_language(job)
        text = render(language, text)
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
        embed = ended_embed(job, text)
        try:
            async with self._last_word(job.id):
                if await self._edit_response(job, embed=embed, view=None):
                    return
        except discord.HTTPException as err:
            log.info("job %d: response message not editable (%s); posting the outcome", job.id, err)
        finally:
            self._dead_tokens.discard(job.id)
        # Gone (deleted) or out of our reach: say it in the channel (or the DM), to the requester.
        channel = await channel_by_id(self.bot, job.thread_id or job.channel_id)
        await channel.send(
            render(
                language,
                _(
                    "<@{user}> your Wan edit (job #{job_id}) was cancelled: {reason}",
                    user=job.user_id,
                    job_id=job.id,
                    reason=text,
                )
                if job.state == "cancelled"
                else _(
                    "<@{user}> your Wan edit (job #{job_id}) ended without a result: {reason}",
                    user=job.user_id,
                    job_id=job.id,
                    reason=text,
                ),
            ),
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
