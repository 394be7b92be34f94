"""/wansettings: a server's own choices (results as spoilers by default, the language of its public
messages).

Manage Server, checked in code as well as by Discord's default permissions. Each setting is one
optional option of the command and one field of `bot.guild_settings.GuildSettings`; naming none
shows them all. A new setting is a field there, an option here, and a row of `SHOWN`. The answer is
private, so it is in the admin's own Discord language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import guild_settings, i18n
from bot.guild_settings import GuildSettings
from bot.i18n import N_, _, render, translate
from cogs.surface.progress import COLOUR
from cogs.utils.admins import is_server_admin
from cogs.utils.language import CHOICES, private_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

ON_OFF = [app_commands.Choice(name="on", value="on"), app_commands.Choice(name="off", value="off")]
# The language option's value for "follow the server's Discord language" (stored as "").
SERVER_DEFAULT = "default"
# Each language in its own name (the same in every client: no catalogue entry), then the default.
LANGUAGES = [
    *(app_commands.Choice(name=label, value=code) for code, label in CHOICES.items()),
    app_commands.Choice(
        name="Server default (its Discord language, else English)", value=SERVER_DEFAULT
    ),
]

# Each setting: its label (marked, rendered for the reader) in the order shown.
SHOWN: dict[str, str] = {
    "spoiler": N_("Results as spoilers"),
    "language": N_("Language of public messages"),
}


class SettingsCheckFailure(app_commands.CheckFailure):
    """A refused /wansettings; its message is the private answer. Nothing was changed."""


def settings_embed(
    settings: GuildSettings,
    changed: dict[str, tuple[Any, Any]],
    language: str,
    discord_language: str,
) -> discord.Embed:
    """The settings, in the reader's `language`; `discord_language` is what "server default"
    means here (the server's Discord language, else English)."""

    def show(name: str) -> Callable[[Any], str]:
        if name == "language":
            return lambda value: (
                CHOICES.get(value, value)
                if value
                else render(
                    language, _("server default ({language})", language=CHOICES[discord_language])
                )
            )
        return lambda value: translate(language, "on" if value else "off")

    embed = discord.Embed(colour=COLOUR, title=render(language, _("Server settings")))
    for name, label in SHOWN.items():
        shown = show(name)
        value = shown(getattr(settings, name))
        if name in changed:
            old, new = changed[name]
            value = (
                f"{shown(old)} → **{shown(new)}**"
                if old != new
                else render(language, _("{value} (unchanged)", value=shown(new)))
            )
        field = _("{label} (`{name}`)", label=translate(language, label), name=name)
        embed.add_field(name=render(language, field), value=value, inline=False)
    if "language" in changed:
        public = settings.language or discord_language
        embed.description = render(
            language,
            _(
                "Progress and results in this server are now in {language}. Private answers stay "
                "in each member's own Discord language.",
                language=CHOICES.get(public, public),
            ),
        )
    embed.set_footer(
        text=render(
            language, _("Members can still choose per request, e.g. /wanedit spoiler: False")
        )
    )
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
        language="The language of progress, results and reply answers posted in this server",
    )
    @app_commands.choices(spoiler=ON_OFF, language=LANGUAGES)
    async def wansettings(
        self,
        interaction: discord.Interaction[WanBot],
        spoiler: app_commands.Choice[str] | None = None,
        language: app_commands.Choice[str] | None = None,
    ) -> None:
        if interaction.guild_id is None:
            raise SettingsCheckFailure(_("Settings belong to a server: use this in one."))
        if not is_server_admin(interaction):
            raise SettingsCheckFailure(
                _(
                    "You need the **Manage Server** permission to change wanbot's settings here. "
                    "Nothing was changed."
                )
            )
        wanted: dict[str, Any] = {}
        # Discord offers only the choices; a raw request may send anything.
        if spoiler is not None:
            if spoiler.value not in ("on", "off"):
                raise SettingsCheckFailure(_("`spoiler` is `on` or `off`. Nothing was changed."))
            wanted["spoiler"] = spoiler.value == "on"
        if language is not None:
            if language.value != SERVER_DEFAULT and language.value not in CHOICES:
                raise SettingsCheckFailure(
                    _(
                        "`language` is one of {choices}. Nothing was changed.",
                        choices=", ".join(f"`{c.value}`" for c in LANGUAGES),
                    )
                )
            wanted["language"] = "" if language.value == SERVER_DEFAULT else language.value
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
        # What "server default" means here: the server's Discord language, else English.
        discord_language = i18n.language_of(interaction.guild_locale)
        embed = settings_embed(current, changed, private_language(interaction), discord_language)
        await interaction.edit_original_response(embed=embed)
