"""Who counts as a server admin for wanbot's own admin commands, decided in code.

Discord's `default_permissions` only hides a command and a server owner can change who sees it, so
every admin action asks this about the member's resolved permissions in the channel.
"""

from __future__ import annotations

from typing import Any

import discord

PERMISSION_NAME = "Manage Server"


def is_server_admin(interaction: discord.Interaction[Any]) -> bool:
    """Manage Server (or Administrator) in a server; never in DMs."""
    if interaction.guild_id is None:
        return False
    perms = interaction.permissions
    return perms.manage_guild or perms.administrator
