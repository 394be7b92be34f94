"""Who is the bot's owner, decided in code from the interaction itself.

The owners are read from Discord at start-up (`cogs.gateway.read_application`: the application's
owner, or its team's admins and developers) plus WANBOT_OWNER_IDS, and kept in discord.py's own
`Bot.owner_ids`. Being a server's owner or admin counts for nothing here: the bill is the bot owner's.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.i18n import _

OWNER_ONLY = _("Only the bot's owner can use `/wanowner`. Nothing was changed.")


class OwnerCheckFailure(app_commands.CheckFailure):
    """A refused owner command. Its `Text` is the (ephemeral) answer, in the member's language;
    nothing was changed."""


def is_owner(interaction: discord.Interaction[Any]) -> bool:
    owners = getattr(interaction.client, "owner_ids", None) or set()
    return interaction.user.id in owners


def owner_only() -> Any:
    """Check decorator: refuse everyone but the bot's owners, before anything runs."""

    def predicate(interaction: discord.Interaction[Any]) -> bool:
        if not is_owner(interaction):
            raise OwnerCheckFailure(OWNER_ONLY)
        return True

    return app_commands.check(predicate)
