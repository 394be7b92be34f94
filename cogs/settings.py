"""/wansettings: a server's own choices (today whether results are spoilers by default).

Manage Server, checked in code as well as by Discord's default permissions. Each setting is one
optional option of the command and one field of `bot.guild_settings.GuildSettings`; naming none
shows them all. A new setting (a later `language`) is a field there, an option here, and a row of
`SHOWN`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import guild_settings
from bot.guild_settings import GuildSettings
from cogs.utils.admins import PERMISSION_NAME, is_server_admin
from cogs.utils.progress import COLOUR

if TYPE_CHECKING:
    from cogs.utils.wanbot import WanBot

log = logging.getLogger(__name__)

ON_OFF = [app_commands.Choice(name="on", value="on"), app_commands.Choice(name="off", value="off")]


def on_off(value: Any) -> str:
    return "on" if value else "off"


# Each setting: its label and how its value reads, in the order shown.
SHOWN: dict[str, tuple[str, Callable[[Any], str]]] = {
    "spoiler": ("Results as spoilers", on_off),
}


class SettingsCheckFailure(app_commands.CheckFailure):
    """A refused /wansettings; `str()` is the private answer. Nothing was changed."""


def settings_embed(settings: GuildSettings, changed: dict[str, tuple[Any, Any]]) -> discord.Embed:
    embed = discord.Embed(colour=COLOUR, title="Server settings")
    for name, (label, show) in SHOWN.items():
        value = show(getattr(settings, name))
        if name in changed:
            old, new = changed[name]
            value = f"{show(old)} → **{show(new)}**" if old != new else f"{show(new)} (unchanged)"
        embed.add_field(name=f"{label} (`{name}`)", value=value, inline=False)
    embed.set_footer(text="Members can still choose per request, e.g. /wanedit spoiler: False")
    return embed


class ServerSettings(commands.Cog):
    """The /wansettings command."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(name="wansettings", description="See or change wanbot's settings here")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(
        spoiler="Post every result hidden behind a spoiler, unless its request says otherwise",
    )
    @app_commands.choices(spoiler=ON_OFF)
    async def wansettings(
        self,
        interaction: discord.Interaction[WanBot],
        spoiler: app_commands.Choice[str] | None = None,
    ) -> None:
        if interaction.guild_id is None:
            raise SettingsCheckFailure("Settings belong to a server: use this in one.")
        if not is_server_admin(interaction):
            raise SettingsCheckFailure(
                f"You need the **{PERMISSION_NAME}** permission to change wanbot's settings here. "
                "Nothing was changed."
            )
        wanted: dict[str, Any] = {}
        if spoiler is not None:
            if spoiler.value not in (
                "on",
                "off",
            ):  # Discord offers only these; a raw request may not
                raise SettingsCheckFailure("`spoiler` is `on` or `off`. Nothing was changed.")
            wanted["spoiler"] = spoiler.value == "on"
        # Acknowledge before touching the database: a busy store must not cost the 3 s window.
        await interaction.response.defer(ephemeral=True, thinking=True)
        store, guild_id = self.bot.store, interaction.guild_id
        changed = {}
        for name, value in wanted.items():
            changed[name] = await guild_settings.save(store, guild_id, name, value)
            log.info(
                "user %d set %s in guild %d: %r -> %r",
                interaction.user.id,
                name,
                guild_id,
                *changed[name],
            )
        current = await guild_settings.load(store, guild_id)
        await interaction.edit_original_response(embed=settings_embed(current, changed))


async def setup(bot: WanBot) -> None:
    await bot.add_cog(ServerSettings(bot))
