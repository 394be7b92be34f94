"""Where a job's messages go: the thread named for it, and its interaction's webhook while the token lasts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord

from bot.i18n import DEFAULT_LANGUAGE, N_, translate
from bot.store import Job
from cogs.utils.text import short

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


def thread_name(prompt: str, language: str = DEFAULT_LANGUAGE) -> str:
    """A thread name from the prompt (Discord allows 100 characters); public, so in the job's
    language when the prompt gives none."""
    return short(prompt, 90) or translate(language, N_("Wan edit"))


def token_alive(job: Job) -> bool:
    """True while the job's interaction token can still edit its response."""
    if not job.interaction_token or not job.application_id or job.token_expires_at is None:
        return False
    # A minute of margin: an edit that starts just before expiry may land just after it.
    return (job.token_expires_at - datetime.now(UTC)).total_seconds() > 60


def webhook(bot: WanBot, job: Job) -> discord.Webhook:
    """The job's interaction webhook (valid while `token_alive`)."""
    assert job.application_id is not None and job.interaction_token is not None
    return discord.Webhook.partial(job.application_id, job.interaction_token, client=bot)
