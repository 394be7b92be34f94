"""One click, one job: a second click on the same button (or a second submit of the same form) while the
first is still being handled is answered privately instead of starting another job.

Two layers, because the clicks race in two ways:
- in memory (`ClickGuard`), per (message, member, action): two interactions arriving together are both
  dispatched by discord.py before either has stored anything, so only a claim taken before the first
  `await` can tell them apart. The later click waits for the first to finish and names its job.
- in the store (`running_job_for_click`), for a click that arrives after the first one's handler has
  returned, or after a restart: the job row carries the click's key in `extra["click"]`, and while that
  job is unfinished the same click by the same member names it instead of starting another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import discord

from bot.i18n import N_, translate
from bot.store import Job, Store
from cogs.utils.language import private_language

log = logging.getLogger(__name__)

Key = tuple[int, int, str]
# How long a repeated click waits for the first one's job number before answering without it
# (well inside the 15 minutes its follow-up may be sent in).
WAIT_FOR_FIRST = 30.0

# What a repeated click is told, by what the first one is doing: (with its job, before it has one).
# Whole sentences, so each language words them its own way.
REPEATS: dict[str, tuple[str, str]] = {
    "on it": (
        N_("Already on it: job #{job_id}."),
        N_("Already on it: see the answer to your first click."),
    ),
    "cancelling it": (
        N_("Already cancelling it: job #{job_id}."),
        N_("Already cancelling it: see the answer to your first click."),
    ),
    "deleting it": (
        N_("Already deleting it: job #{job_id}."),
        N_("Already deleting it: see the answer to your first click."),
    ),
}


class ClickGuard:
    """The clicks being handled right now, each with a future that ends with its job id (or None)."""

    def __init__(self) -> None:
        self._busy: dict[Key, asyncio.Future[int | None]] = {}

    def claim(self, key: Key) -> asyncio.Future[int | None] | None:
        """Take `key`: None if it was free (now ours), else the future of the click holding it."""
        holder = self._busy.get(key)
        if holder is not None:
            return holder
        self._busy[key] = asyncio.get_running_loop().create_future()
        return None

    def release(self, key: Key, job_id: int | None) -> None:
        holder = self._busy.pop(key, None)
        if holder is not None and not holder.done():
            holder.set_result(job_id)


class HasClicks(Protocol):
    """The bot, as far as this module needs it (no import of `WanBot`: it imports us)."""

    clicks: ClickGuard


def click_key(interaction: discord.Interaction[Any], action: str) -> Key:
    """(the clicked message, or 0 for a form without one; the member; the action)."""
    message = interaction.message
    return (message.id if message is not None else 0, interaction.user.id, action)


@contextlib.asynccontextmanager
async def first_click(
    interaction: discord.Interaction[Any], action: str, *, doing: str = "on it"
) -> AsyncIterator[bool]:
    """Yield True for the first click of (message, member, `action`) in flight; for a repeat, answer
    it privately ("already on it", with the job number once known) and yield False. `doing` is a
    key of `REPEATS`."""
    bot: HasClicks = interaction.client
    guard = bot.clicks
    key = click_key(interaction, action)
    holder = guard.claim(key)
    if holder is not None:
        await _answer_repeat(interaction, holder, doing)
        yield False
        return
    try:
        yield True
    finally:
        guard.release(key, interaction.extras.get("job_id"))


async def _answer_repeat(
    interaction: discord.Interaction[Any], holder: asyncio.Future[int | None], doing: str
) -> None:
    log.info("repeated click %s by %d answered privately", interaction.id, interaction.user.id)
    try:
        if interaction.response.is_done():
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        job_id = None
        with contextlib.suppress(TimeoutError):
            job_id = await asyncio.wait_for(asyncio.shield(holder), WAIT_FOR_FIRST)
        with_job, without = REPEATS.get(doing, REPEATS["on it"])
        language = private_language(interaction)
        text = (
            translate(language, with_job, job_id=job_id) if job_id else translate(language, without)
        )
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException:
        log.info("could not answer repeated click %s", interaction.id)


async def running_job_for_click(store: Store, user_id: int, click: str) -> Job | None:
    """The member's unfinished job started by `click` (see `extra["click"]`), if any."""
    for job in await store.jobs_for_user(user_id, limit=20):
        if not job.finished and job.extra.get("click") == click:
            return job
    return None
