"""/wanlanguage: the language of the bot's public messages in a server (progress, results, reply edits).

Private answers always follow each member's own Discord language; this sets only what everyone sees.
Manage Server is checked in code (Discord's `default_permissions` can be changed by the owner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import _
from cogs.utils.language import CHOICES, server_language, set_server_language
from cogs.utils.privately import tell

if TYPE_CHECKING:
    from cogs.utils.wanbot import WanBot

AUTO = "auto"


def language_name(language: str) -> str:
    return CHOICES.get(language, language)


class Language(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="wanlanguage",
        description="Choose the language of the bot's public messages in this server",
    )
    @app_commands.describe(
        language="The language for progress and results posted here; empty shows the current one"
    )
    @app_commands.choices(
        language=[
            *(app_commands.Choice(name=label, value=code) for code, label in CHOICES.items()),
            app_commands.Choice(name="Follow the server's Discord language", value=AUTO),
        ]
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def wanlanguage(
        self,
        interaction: discord.Interaction[WanBot],
        language: app_commands.Choice[str] | None = None,
    ) -> None:
        store = self.bot.store
        guild_id = interaction.guild_id
        if guild_id is None:  # guild_only already hides it in DMs; a stale client may still send it
            await tell(interaction, _("The language is set per server: use this in a server."))
            return
        if language is None:
            chosen = await store.get_guild_language(guild_id)
            current = await server_language(store, guild_id, interaction.guild_locale)
            if chosen:
                text = _(
                    "Public messages here are in {language} (chosen with /wanlanguage).",
                    language=language_name(current),
                )
            else:
                text = _(
                    "Public messages here are in {language}, the server's Discord language.",
                    language=language_name(current),
                )
            await tell(interaction, text)
            return
        perms = interaction.permissions
        if not (perms.manage_guild or perms.administrator):
            await tell(
                interaction,
                _(
                    "You need the **Manage Server** permission to change the bot's language. "
                    "Nothing was changed."
                ),
            )
            return
        await set_server_language(
            store, guild_id, None if language.value == AUTO else language.value
        )
        current = await server_language(store, guild_id, interaction.guild_locale)
        await tell(
            interaction,
            _(
                "Done: progress and results in this server are now in {language}. "
                "Private answers stay in each member's own Discord language.",
                language=language_name(current),
            ),
        )


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Language(bot))
