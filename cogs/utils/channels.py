"""Finding a channel or thread by id, from the cache or from Discord."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def channel_by_id(bot: WanBot, channel_id: int) -> discord.abc.Messageable:
    """A channel or thread from the cache, else from Discord."""
    channel = bot.get_channel(channel_id)
    if channel is None:
        channel = await bot.fetch_channel(channel_id)
    return channel  # type: ignore[return-value]
