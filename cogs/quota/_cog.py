"""/wanquota: members see where they stand; server admins decide who may spend how much.

Every reply is an ephemeral embed, in the asking member's own language (`interaction.locale`).
Admin subcommands need Manage Server, checked in code (`cogs.quota._checks`); a refusal goes through
the tree's error handler (`cogs.errors`) as an ephemeral message and changes nothing.

Contexts: the group is allowed in servers and in DMs with the bot, because /wanedit works in DMs
too (their own quota scope, 0), so `show` for yourself answers there. Every admin subcommand, and
`show` for someone else, is refused in DMs: quota settings belong to a server. In a server not on
the owner's WAN_ALLOWED_GUILDS every subcommand is refused (`interaction_check`).

No admin can give anyone more than the owner's WAN_SERVER_DAILY_LIMIT: the store refuses such a
change (`CeilingExceeded`) inside its transaction, and the answer says what the ceiling is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import server_chart
from bot.i18n import Text, _
from bot.reports import images, number
from bot.store import CeilingExceeded, Store
from cogs.intake.requests import member_roles, scope_of
from cogs.quota._checks import QuotaCheckFailure, quota_admin, refuse_unless_admin
from cogs.quota._embeds import (
    cap_text,
    change_embed,
    limit_text,
    log_embed,
    not_set_default,
    refused_embed,
    reset_note,
    server_fields,
    source_text,
    status_embed,
    usage_embed,
)
from cogs.utils.admins import is_server_admin
from cogs.utils.charts import DAY_CHOICES, chart_files, days_of
from cogs.utils.language import private_language
from cogs.utils.quota_words import ceiling_text

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_LIMIT = 1000
LOG_ENTRIES = 20

Limit = app_commands.Range[int, 0, MAX_LIMIT]
Images = app_commands.Range[int, 1, MAX_LIMIT]


def _in_range(value: int | None, low: int, high: int, name: str) -> None:
    # Discord enforces the option ranges in its client; this guards requests that skip it.
    if value is not None and not low <= value <= high:
        raise QuotaCheckFailure(
            _(
                "`{name}` must be {low} to {high}. Nothing was changed.",
                name=name,
                low=number(low),
                high=number(high),
            )
        )


async def _defer(interaction: discord.Interaction[WanBot]) -> None:
    # Acknowledge before touching the database: a busy store must not cost the 3 s window.
    await interaction.response.defer(ephemeral=True, thinking=True)


async def _reply(interaction: discord.Interaction[WanBot], embed: discord.Embed) -> None:
    # Replace the private "thinking…" message itself: no second message, nothing public.
    await interaction.edit_original_response(embed=embed)


async def _changed(
    interaction: discord.Interaction[WanBot],
    title: Text,
    subject: Text,
    old: Text,
    new: Text,
    note: Text | None = None,
) -> None:
    """Echo an admin change privately, in the admin's own language."""
    embed = change_embed(title, subject, old, new, note, private_language(interaction))
    await _reply(interaction, embed)


async def _within_ceiling(
    interaction: discord.Interaction[WanBot], change: Awaitable[T]
) -> T | None:
    """Run an admin change; over the owner's ceiling, say so (nothing changed) and return None."""
    try:
        return await change
    except CeilingExceeded as refused:
        log.info("user %d: %s", interaction.user.id, refused)
        embed = refused_embed(
            _("Over the owner's limit"), ceiling_text(refused), private_language(interaction)
        )
        await _reply(interaction, embed)
        return None


@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
class Quota(commands.GroupCog, group_name="wanquota", group_description="Daily Wan image quotas"):
    """The /wanquota command group."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def store(self) -> Store:
        return self.bot.store

    async def interaction_check(self, interaction: discord.Interaction[WanBot]) -> bool:
        # Before every subcommand: a server the owner did not allow gets nothing, not even `show`.
        if not self.bot.settings.allowed_here(interaction.guild_id):
            raise QuotaCheckFailure(
                _(
                    "This bot's owner hasn't enabled it in this server, so it makes no images "
                    "here (not on the owner's list of servers). Nothing was changed."
                )
            )
        return True

    # ---- members ------------------------------------------------------------------------------

    @app_commands.command(name="show", description="See how many Wan images you have left today")
    @app_commands.describe(
        user="Whose quota to show (someone else's needs the Manage Server permission); "
        "empty for yours"
    )
    async def show(
        self, interaction: discord.Interaction[WanBot], user: discord.User | None = None
    ) -> None:
        target = user or interaction.user
        own = target.id == interaction.user.id
        if not own:
            refuse_unless_admin(interaction, _("see someone else's Wan quota"))
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        status = await self.store.quota_status(scope, target.id, roles=member_roles(target))
        language = private_language(interaction)
        embed = status_embed(status, target, scope, own=own, language=language)
        if is_server_admin(interaction):
            totals = await self.store.server_totals(scope)
            server_fields(embed, totals, self.bot.settings.default_daily_limit, language)
        await _reply(interaction, embed)

    # ---- admins -------------------------------------------------------------------------------

    @app_commands.command(name="set", description="Set one member's daily image limit here")
    @app_commands.describe(
        user="The member whose daily limit to set",
        limit="Images per day (0-1000). 0 blocks them. Leave empty to use the server default again",
    )
    @quota_admin(_("set a member's daily limit"))
    async def set_user(
        self,
        interaction: discord.Interaction[WanBot],
        user: discord.User,
        limit: Limit | None = None,
    ) -> None:
        _in_range(limit, 0, MAX_LIMIT, "limit")
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        changed = await _within_ceiling(
            interaction, self.store.set_user_limit(scope, interaction.user.id, user.id, limit)
        )
        if changed is None:
            return
        old, new = changed
        status = await self.store.quota_status(scope, user.id, roles=member_roles(user))
        log.info(
            "user %d set user %d's limit in %d: %s -> %s",
            interaction.user.id,
            user.id,
            scope,
            old,
            new,
        )
        limit, source = number(status.limit), source_text(status.limit_source)
        if status.blocked:
            effective = _(
                "Effective limit now: {limit} ({source}); they are blocked and can't make images "
                "here.",
                limit=limit,
                source=source,
            )
        else:
            effective = _(
                "Effective limit now: {limit} ({source}); {left} left today.",
                limit=limit,
                source=source,
                left=number(status.remaining),
            )
        await _changed(
            interaction,
            _("Daily limit changed"),
            _("{member}'s own limit", member=user.mention),
            limit_text(old),
            limit_text(new, unset=_("not set (server default applies)")),
            effective,
        )

    @app_commands.command(name="default", description="Set the daily image limit for every member")
    @app_commands.describe(
        limit="Images per day for members without their own limit (0-1000). "
        "Leave empty for the bot's default",
    )
    @quota_admin(_("set the server's default limit"))
    async def default(
        self, interaction: discord.Interaction[WanBot], limit: Limit | None = None
    ) -> None:
        _in_range(limit, 0, MAX_LIMIT, "limit")
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        changed = await _within_ceiling(
            interaction, self.store.set_server_default(scope, interaction.user.id, limit)
        )
        if changed is None:
            return
        old, new = changed
        bot_default = self.bot.settings.default_daily_limit
        log.info(
            "user %d set the default limit in %d: %s -> %s", interaction.user.id, scope, old, new
        )
        unset = not_set_default(bot_default)
        await _changed(
            interaction,
            _("Server default limit changed"),
            _("Daily limit for members without their own"),
            limit_text(old, unset=unset),
            limit_text(new, unset=unset),
            _("Members with their own limit (`/wanquota set`) keep it."),
        )

    @app_commands.command(
        name="grant", description="Give a member extra images on top of their limit"
    )
    @app_commands.describe(
        user="The member who gets the extra images",
        images="How many (1-1000). Used after the daily limit runs out; they never expire",
    )
    @quota_admin(_("grant extra images"))
    async def grant(
        self, interaction: discord.Interaction[WanBot], user: discord.User, images: Images
    ) -> None:
        _in_range(images, 1, MAX_LIMIT, "images")
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        changed = await _within_ceiling(
            interaction, self.store.grant_extra(scope, interaction.user.id, user.id, images)
        )
        if changed is None:
            return
        old, new = changed
        status = await self.store.quota_status(scope, user.id, roles=member_roles(user))
        log.info(
            "user %d granted user %d %d extra image(s) in %d",
            interaction.user.id,
            user.id,
            images,
            scope,
        )
        note = _(
            "{left} left for them today, extra images included.", left=number(status.remaining)
        )
        if status.blocked:
            note = _("They are blocked here, so they can't use them until unblocked.")
        await _changed(
            interaction,
            _("Extra images granted"),
            _("{member}'s extra images", member=user.mention),
            number(old),
            number(new),
            note,
        )

    @app_commands.command(name="reset", description="Clear a member's image usage for today")
    @app_commands.describe(user="The member whose usage today goes back to 0")
    @quota_admin(_("reset a member's usage"))
    async def reset(self, interaction: discord.Interaction[WanBot], user: discord.User) -> None:
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        old, new = await self.store.reset_usage(scope, interaction.user.id, user.id)
        status = await self.store.quota_status(scope, user.id, roles=member_roles(user))
        log.info(
            "user %d reset user %d's usage in %d (%d -> %d)",
            interaction.user.id,
            user.id,
            scope,
            old,
            new,
        )
        await _changed(
            interaction,
            _("Usage reset"),
            _("{member}'s images used today", member=user.mention),
            number(old),
            number(new),
            _(
                "{left} left for them now. {note}",
                left=number(status.remaining),
                note=reset_note(status.resets_at),
            ),
        )

    @app_commands.command(
        name="server", description="Cap the images the whole server makes per day"
    )
    @app_commands.describe(
        limit="Total images per day for everyone here together (0-1000). 0 turns the cap off",
    )
    @quota_admin(_("set the server's daily cap"))
    async def server(self, interaction: discord.Interaction[WanBot], limit: Limit) -> None:
        _in_range(limit, 0, MAX_LIMIT, "limit")
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        changed = await _within_ceiling(
            interaction, self.store.set_server_cap(scope, interaction.user.id, limit or None)
        )
        if changed is None:
            return
        old, new = changed
        totals = await self.store.server_totals(scope)
        log.info("user %d set the server cap in %d: %s -> %s", interaction.user.id, scope, old, new)
        note = _(
            "Used today so far: {used} (+{held} held by jobs in progress).",
            used=number(totals.used),
            held=number(totals.held),
        )
        if totals.cap_in_force:
            left = _("{left} left today.", left=number(totals.cap_remaining or 0))
            note = _("{first} {second}", first=note, second=left)
        if not totals.cap and totals.ceiling:
            ceiling = _(
                "The bot's owner still allows at most {images} a day here.",
                images=images(totals.ceiling),
            )
            note = _("{first} {second}", first=note, second=ceiling)
        await _changed(
            interaction,
            _("Server daily cap changed"),
            _("Server daily cap"),
            cap_text(old),
            cap_text(new),
            note,
        )

    @app_commands.command(
        name="role", description="Set the daily image limit for members with a role"
    )
    @app_commands.describe(
        role="The role",
        limit="Images per day for its members (0-1000); own limits win, then the highest role. "
        "Empty clears it",
    )
    @quota_admin(_("set a role's daily limit"))
    async def role(
        self,
        interaction: discord.Interaction[WanBot],
        role: discord.Role,
        limit: Limit | None = None,
    ) -> None:
        _in_range(limit, 0, MAX_LIMIT, "limit")
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        changed = await _within_ceiling(
            interaction, self.store.set_role_limit(scope, interaction.user.id, role.id, limit)
        )
        if changed is None:
            return
        old, new = changed
        log.info(
            "user %d set role %d's limit in %d: %s -> %s",
            interaction.user.id,
            role.id,
            scope,
            old,
            new,
        )
        zero = number(0)
        await _changed(
            interaction,
            _("Role limit changed"),
            _("Daily limit for {role}", role=role.mention),
            limit_text(old, zero=zero),
            limit_text(new, unset=_("not set (server default applies)"), zero=zero),
            _(
                "Members with their own limit (`/wanquota set`) keep it; members with several "
                "roles get the highest of their roles' limits."
            ),
        )

    @app_commands.command(
        name="usage", description="This server's Wan images and their cost, with a chart"
    )
    @app_commands.describe(days="The chart's period (default: the last 7 days)")
    @app_commands.choices(days=DAY_CHOICES)
    @quota_admin(_("see the server's usage"))
    async def usage(
        self,
        interaction: discord.Interaction[WanBot],
        days: app_commands.Choice[int] | None = None,
    ) -> None:
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        language = private_language(interaction)
        report = await self.store.usage_report(scope, days=7, top=10)
        embed = usage_embed(report, self.bot.settings, language)
        name = interaction.guild.name if interaction.guild is not None else None
        chart = await server_chart(self.store, scope, name, days=days_of(days))
        files = await chart_files(chart, language)
        await interaction.edit_original_response(embed=embed, attachments=files)

    @app_commands.command(name="log", description="The last 20 quota changes made by admins")
    @quota_admin(_("read the quota log"))
    async def show_log(self, interaction: discord.Interaction[WanBot]) -> None:
        scope = scope_of(interaction.guild_id)
        await _defer(interaction)
        entries = await self.store.audit_log(scope, LOG_ENTRIES)
        await _reply(interaction, log_embed(entries, scope, private_language(interaction)))
