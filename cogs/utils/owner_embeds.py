"""The embeds /wanowner replies with: the bot-wide usage and cost, and the owner's changes."""

from __future__ import annotations

import discord

from bot.config import Settings
from bot.reports import cap_text, cost, price_text, refused_text, worst_case_text
from bot.store import UsageReport, discord_timestamp

COLOUR = discord.Colour.dark_gold()
WARN = discord.Colour.orange()


def owner_usage_embed(
    report: UsageReport, settings: Settings, names: dict[int, str]
) -> discord.Embed:
    """`/wanowner usage`: today across every server and DM, the caps, the last days."""
    today = report.today
    embed = discord.Embed(title="Wan usage across the bot, today (UTC)", colour=COLOUR)
    lines = [
        f"**{today.billed}** image(s) billed by Wan: **{cost(today.billed, settings)}**",
        f"Bot-wide cap: {cap_text(report.global_cap)}; counted {report.global_used} "
        f"(+{report.global_held} held by jobs in progress); resets "
        f"{discord_timestamp(report.resets_at)}",
        f"Refused today (images): {refused_text(today.refused)}",
    ]
    if report.paused:
        embed.colour = WARN
        lines.insert(0, "**Paused**: new requests are refused (`/wanowner resume`).")
    embed.description = "\n".join(lines)
    servers = [
        f"{_place(scope, names)}: {billed} billed ({cost(billed, settings)}), {charged} charged"
        + _refused(report.refused_by_scope.get(scope))
        for scope, charged, billed in report.servers
    ]
    listed = {scope for scope, _, _ in report.servers}
    servers += [
        f"{_place(scope, names)}: refused {refused_text(refused)}"
        for scope, refused in sorted(report.refused_by_scope.items())
        if scope not in listed
    ]
    embed.add_field(name="Servers today", value="\n".join(servers) or "none yet", inline=False)
    top = [
        f"<@{user}> in {_place(scope, names)}: {images}"
        for scope, user, images in report.top_members
    ]
    embed.add_field(name="Top members today", value="\n".join(top) or "nobody yet", inline=False)
    days = [f"{d.day.isoformat()}: {d.billed} ({cost(d.billed, settings)})" for d in report.days]
    embed.add_field(name="Last days", value="\n".join(days), inline=False)
    embed.set_footer(
        text=f"Price {price_text(settings)}. Worst case per day: "
        f"{worst_case_text(report.global_cap, settings)}."
    )
    return embed


def _refused(refused: dict[str, int] | None) -> str:
    return f"; refused {refused_text(refused)}" if refused else ""


def _place(scope: int, names: dict[int, str]) -> str:
    if scope == 0:
        return "DMs"
    return names.get(scope) or f"server {scope}"


def owner_change_embed(title: str, text: str) -> discord.Embed:
    return discord.Embed(title=title, description=text, colour=COLOUR)
