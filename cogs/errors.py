"""One place where every application-command error ends: logged with a reference, told to the user briefly."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

log = logging.getLogger(__name__)


async def tell(
    interaction: discord.Interaction[Any], text: str, *, keep_original: bool = False
) -> None:
    """Tell the user `text` privately, whatever state the interaction's response is in.

    After a public deferral Discord makes the first follow-up replace the public "thinking…"
    placeholder (keeping its visibility), so that placeholder is resolved first, the user is told
    privately, and the placeholder removed, unless `keep_original` (it became a job's message).
    """
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if not keep_original:
            try:
                await interaction.edit_original_response(
                    content="Request not accepted.", embed=None, view=None
                )
            except discord.HTTPException:
                pass
        await interaction.followup.send(text, ephemeral=True)
        if not keep_original:
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                pass
    except discord.HTTPException:
        log.info("could not tell the user about an error (interaction %s)", interaction.id)


class Errors(commands.Cog):
    """Installs the tree's error handler (as Red-DiscordBot's `RedTree.on_error` does)."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self._previous = bot.tree.on_error

    async def cog_load(self) -> None:
        self.bot.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        self.bot.tree.on_error = self._previous  # type: ignore[method-assign]

    async def on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CheckFailure):
            await tell(interaction, str(error) or "You can't use this command here.")
            return
        if isinstance(error, app_commands.TransformerError | app_commands.CommandSignatureMismatch):
            await tell(
                interaction,
                "That option's value isn't valid; check the command's options and try again.",
            )
            return
        job_id = interaction.extras.get("job_id")
        reference = f"job #{job_id}" if job_id else f"ref {interaction.id}"
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error("error in /%s (%s)", command, reference, exc_info=error)
        charged = "" if job_id else " Nothing was charged."
        await tell(
            interaction,
            f"Something went wrong on our side ({reference}).{charged} Please try again.",
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Errors(bot))
