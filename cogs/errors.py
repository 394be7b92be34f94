"""One place where every application-command error ends: logged with a reference, told to the user briefly."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import _, text_of
from bot.jobs.outages import store_trouble
from cogs.utils.privately import tell

log = logging.getLogger(__name__)

DATABASE_AWAY = _(
    "The bot can't reach its database right now; try again in a minute. Nothing was charged."
)


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
            await tell(interaction, text_of(error) or _("You can't use this command here."))
            return
        if isinstance(error, app_commands.TransformerError | app_commands.CommandSignatureMismatch):
            await tell(
                interaction,
                _("That option's value isn't valid; check the command's options and try again."),
            )
            return
        cause = getattr(error, "original", error)
        if store_trouble(cause):
            metrics = getattr(self.bot, "metrics", None)
            if metrics is not None:
                metrics.store_errors.labels("command").inc()
        job_id = interaction.extras.get("job_id")
        if store_trouble(cause) and not job_id:
            # An outage, logged once by the runner for all it meets; the member tries again.
            runner = getattr(self.bot, "runner", None)
            if runner is not None:
                runner.outage.failed(cause)
            await tell(interaction, DATABASE_AWAY)
            return
        reference = f"job #{job_id}" if job_id else f"ref {interaction.id}"
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error("error in /%s (%s)", command, reference, exc_info=error)
        if job_id:
            text = _(
                "Something went wrong on our side (job #{job_id}). Please try again.", job_id=job_id
            )
        else:
            text = _(
                "Something went wrong on our side (ref {ref}). Nothing was charged. Please try again.",
                ref=interaction.id,
            )
        await tell(interaction, text)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Errors(bot))
