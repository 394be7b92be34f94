"""One clear line for the start-up failures people meet, instead of a traceback."""

from __future__ import annotations

import discord

from bot.store import StoreError
from bot.wan import WanError


def describe(err: BaseException) -> str | None:
    """The line to log for a known start-up failure, or None to let it raise."""
    if isinstance(err, discord.LoginFailure):
        return "Discord refused the token: copy it again from the developer portal (Bot tab) into DISCORD_TOKEN."
    if isinstance(err, discord.PrivilegedIntentsRequired):
        return "Discord refused a privileged intent: enable it in the developer portal or leave it off."
    if isinstance(err, StoreError):
        return f"Database: {err}"
    if isinstance(err, WanError):
        return f"DashScope: {err.user_message}"
    if isinstance(err, OSError | discord.GatewayNotFound):
        return f"Could not reach Discord: {err.__class__.__name__}. Check the network or DISCORD_API_BASE."
    return None
