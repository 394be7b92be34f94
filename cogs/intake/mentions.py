"""Messages that @mention the bot: what they ask for, and a short public answer to them. Shared by
reply edits (cogs.edit) and messages asking it to imagine (cogs.imagine).

A message whose text, without the mention, starts with "imagine" (or "想象") asks for an image made
from the rest of the text; any other mention in a reply asks to edit the replied-to images.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord

from bot.i18n import DEFAULT_LANGUAGE, render
from cogs.utils.language import message_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

_IMAGINE = re.compile(r"^(?:imagine\b|想象)[\s:：,，]*", re.IGNORECASE)


def prompt_of(content: str, bot_id: int) -> str:
    """The message's text without the bot's mention(s)."""
    return " ".join(re.sub(rf"<@!?{bot_id}>", " ", content).split())


def mentions_explicitly(content: str, bot_id: int) -> bool:
    """Whether the text itself @mentions the bot (not only the reply toggle's ping)."""
    return re.search(rf"<@!?{bot_id}>", content) is not None


def imagine_prompt(text: str) -> str | None:
    """The prompt of a request to imagine ("imagine a lighthouse" -> "a lighthouse"; "" when only
    the word is there), or None when `text` asks for something else."""
    found = _IMAGINE.match(text)
    return None if found is None else text[found.end() :].strip()


async def answer(bot: WanBot, message: discord.Message, text: str) -> None:
    """A short reply to the request (best effort: the channel may not let us post), public, so in
    the server's language."""
    try:
        language = await message_language(bot.store, message)
    except Exception:  # a busy database must not keep the member from being told
        log.info("server language unavailable for message %d; answering in English", message.id)
        language = DEFAULT_LANGUAGE
    try:
        await message.reply(render(language, text), mention_author=False)
    except discord.HTTPException:
        log.info("could not answer request %d", message.id)
