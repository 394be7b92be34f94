"""/wanowner: the bot owner's controls over the bill (usage and cost, pause and resume, bot-wide cap).

Where it is: with WANBOT_DEV_GUILD set, registered in that server only; otherwise a global command
allowed only in DMs with the bot, so it never shows in anyone's server. Either way every subcommand
checks in code that the caller is one of the bot's owners (`cogs.owner._checks`) and refuses
everyone else, server owners and admins included, with nothing changed.
Every answer is private, in the asking member's own language (`interaction.locale`).

Also here: the log line for each server not on WAN_ALLOWED_GUILDS, at start-up and when the bot joins
one. The bot does not leave such servers by itself; it refuses every request there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import owner_chart
from bot.i18n import N_, _
from bot.reports import cap_text
from bot.store import Store
from cogs.owner._checks import owner_only
from cogs.owner._embeds import owner_change_embed, owner_usage_embed
from cogs.owner.cost_notes import GuildNotes
from cogs.utils.charts import DAY_CHOICES, chart_files, days_of
from cogs.utils.language import private_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

MAX_CAP = 1_000_000
DM_ONLY = app_commands.AppCommandContext(guild=False, dm_channel=True, private_channel=False)
GUILD_INSTALL = app_commands.AppInstallationType(guild=True, user=False)


class OwnerCommands(app_commands.Group):
    """The /wanowner group."""

    def __init__(self, bot: WanBot, *, dm_only: bool) -> None:
        options = (
            {"allowed_contexts": DM_ONLY, "allowed_installs": GUILD_INSTALL} if dm_only else {}
        )
        super().__init__(
            name="wanowner", description=N_("The bot owner's cost controls"), **options
        )
        self.bot = bot

    @property
    def store(self) -> Store:
        return self.bot.store

    async def _defer(self, interaction: discord.Interaction[WanBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

    @app_commands.command(
        name="usage",
        description="Today's Wan images and cost across every server, and refusals, with a chart",
    )
    @app_commands.describe(days="The chart's period (default: the last 7 days)")
    @app_commands.choices(days=DAY_CHOICES)
    @owner_only()
    async def usage(
        self,
        interaction: discord.Interaction[WanBot],
        days: app_commands.Choice[int] | None = None,
    ) -> None:
        await self._defer(interaction)
        language = private_language(interaction)
        report = await self.store.usage_report(None, days=7, top=10)
        names = {g.id: g.name for g in self.bot.guilds}
        embed = owner_usage_embed(report, self.bot.settings, names, language)
        chart = await owner_chart(self.store, names, days=days_of(days))
        files = await chart_files(chart, language)
        await interaction.edit_original_response(embed=embed, attachments=files)

    @app_commands.command(
        name="pause", description="Refuse new Wan jobs everywhere; jobs in flight finish"
    )
    @owner_only()
    async def pause(self, interaction: discord.Interaction[WanBot]) -> None:
        await self._defer(interaction)
        old, _new = await self.store.set_paused(interaction.user.id, True)
        log.warning("owner %d paused new jobs", interaction.user.id)
        text = _(
            'New requests are refused with "paused by the owner, try later"; jobs already '
            "accepted finish. The pause survives a restart: `/wanowner resume` ends it."
        )
        if old:
            text = _("It was already paused. {text}", text=text)
        embed = owner_change_embed(_("Paused"), text, private_language(interaction))
        await interaction.edit_original_response(embed=embed)

    @app_commands.command(name="resume", description="Take new Wan jobs again after a pause")
    @owner_only()
    async def resume(self, interaction: discord.Interaction[WanBot]) -> None:
        await self._defer(interaction)
        old, _new = await self.store.set_paused(interaction.user.id, False)
        log.warning("owner %d resumed new jobs", interaction.user.id)
        note = _("New requests are accepted again.") if old else _("It wasn't paused.")
        embed = owner_change_embed(_("Resumed"), note, private_language(interaction))
        await interaction.edit_original_response(embed=embed)

    @app_commands.command(name="cap", description="Change the bot-wide daily image cap")
    @app_commands.describe(
        limit="Images per UTC day for the whole bot (0: no cap). Empty: back to "
        "WAN_GLOBAL_DAILY_LIMIT"
    )
    @owner_only()
    async def cap(
        self,
        interaction: discord.Interaction[WanBot],
        limit: app_commands.Range[int, 0, MAX_CAP] | None = None,
    ) -> None:
        await self._defer(interaction)
        old, new = await self.store.set_global_cap(interaction.user.id, limit)
        log.warning("owner %d set the bot-wide daily cap: %s -> %s", interaction.user.id, old, new)
        if limit is None:
            text = _(
                "Bot-wide daily cap: {old} → **{new}** (from WAN_GLOBAL_DAILY_LIMIT).",
                old=cap_text(old),
                new=cap_text(new),
            )
        else:
            text = _(
                "Bot-wide daily cap: {old} → **{new}** (kept in the database; it outlives "
                "restarts, and `/wanowner cap` with no limit goes back to the setting).",
                old=cap_text(old),
                new=cap_text(new),
            )
        if new is None:
            text = _("{text} Nothing bounds the daily bill now.", text=text)
        embed = owner_change_embed(_("Cap changed"), text, private_language(interaction))
        await interaction.edit_original_response(embed=embed)


class Owner(commands.Cog):
    """Adds /wanowner (to the dev server, or DMs only) and logs servers off the allowlist."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        dev_guild = bot.settings.dev_guild
        self.guild = discord.Object(dev_guild) if dev_guild else None
        self.group = OwnerCommands(bot, dm_only=self.guild is None)
        self.notes = GuildNotes(bot.settings)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.group, guild=self.guild)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.group.name, guild=self.guild)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        for guild in self.bot.guilds:
            self.notes.check(guild, "at start-up")

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        self.notes.check(guild, "joined")
