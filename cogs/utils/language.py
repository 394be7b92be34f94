"""Which language a message is in: the member's own for private answers, the server's for public ones.

Private answers (ephemeral replies, refusals, the Edit form) follow `interaction.locale`, the member's
Discord client. Public messages (progress in the channel, results in the thread, reply-edit answers)
follow the server's language: what an admin chose (`/wansettings language:`, a server setting in
`bot.guild_settings`), else the server's Discord language (`guild_locale`), else English. A job keeps both in its `extra`, so what it
says after a restart or after its interaction token expired is in the same language.
"""

from __future__ import annotations

from typing import Any

import discord

from bot import guild_settings, i18n
from bot.store import Job, Store

# job.extra keys.
JOB_LANGUAGE = "language"  # the server's language when the job was made: its public messages
JOB_MEMBER_LANGUAGE = "member_language"  # the requester's own: what is told to them alone

# What an admin may choose, shown in each language's own name.
CHOICES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}


def private_language(interaction: discord.Interaction[Any]) -> str:
    """The member's own language (their Discord client's)."""
    return i18n.language_of(interaction.locale)


async def server_language(store: Store, guild_id: int | None, discord_locale: object = None) -> str:
    """A server's language for public messages: the admins' choice, else `discord_locale` (the
    server's Discord language, when Discord sent one), else English."""
    if guild_id is not None:
        chosen = (await guild_settings.load(store, guild_id)).language
        if chosen:
            return i18n.language_of(chosen)
    return i18n.language_of(discord_locale)


async def public_language(store: Store, interaction: discord.Interaction[Any]) -> str:
    """The language of what this interaction makes public; in DMs the member's own."""
    if interaction.guild_id is None:
        return private_language(interaction)
    return await server_language(store, interaction.guild_id, interaction.guild_locale)


async def message_language(store: Store, message: discord.Message) -> str:
    """The language for answering a plain message (a reply edit): its server's."""
    guild = message.guild
    if guild is None:
        return i18n.DEFAULT_LANGUAGE
    return await server_language(store, guild.id, guild.preferred_locale)


def job_language(job: Job) -> str:
    """A job's public language (English for jobs made before languages existed)."""
    return i18n.language_of(job.extra.get(JOB_LANGUAGE))


def job_member_language(job: Job) -> str:
    """The requester's own language, for what is told to them alone."""
    return i18n.language_of(job.extra.get(JOB_MEMBER_LANGUAGE) or job.extra.get(JOB_LANGUAGE))
