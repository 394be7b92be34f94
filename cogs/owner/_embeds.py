"""The embeds /wanowner replies with: the bot-wide usage and cost, and the owner's changes.

Each embed is built in one `language`, the owner's own (every answer is private).
"""

from __future__ import annotations

import discord

from bot.config import Settings
from bot.i18n import Text, _, render
from bot.reports import (
    cap_text,
    cost,
    day_lines,
    images,
    number,
    place,
    price_text,
    refused_text,
    undelivered_line,
    worst_case_text,
)
from bot.store import UsageReport
from cogs.utils.quota_words import discord_timestamp

COLOUR = discord.Colour.dark_gold()
WARN = discord.Colour.orange()


def owner_usage_embed(
    report: UsageReport, settings: Settings, names: dict[int, str], language: str
) -> discord.Embed:
    """`/wanowner usage`: today across every server and DM, the caps, the last days."""

    def r(text: Text | str) -> str:
        return render(language, text)

    today = report.today
    embed = discord.Embed(title=r(_("Wan usage across the bot, today (UTC)")), colour=COLOUR)
    lines = [
        _(
            "**{images}** billed by Wan: **{cost}**",
            images=images(today.billed),
            cost=cost(today.billed, settings, today.billed_by_kind),
        ),
        _(
            "Bot-wide cap: {cap}; counted {used} (+{held} held by jobs in progress); resets {when}",
            cap=cap_text(report.global_cap),
            used=number(report.global_used),
            held=number(report.global_held),
            when=discord_timestamp(report.resets_at),
        ),
        _("Refused today (images): {refused}", refused=refused_text(today.refused)),
    ]
    undelivered = undelivered_line(report)
    if undelivered is not None:
        lines.insert(1, undelivered)
    if report.paused:
        embed.colour = WARN
        lines.insert(0, _("**Paused**: new requests are refused (`/wanowner resume`)."))
    embed.description = "\n".join(r(line) for line in lines)
    servers = []
    for scope, charged, billed in report.servers:
        line = _(
            "{place}: {billed} billed ({cost}), {charged} charged",
            place=place(scope, names),
            billed=number(billed),
            cost=cost(billed, settings, report.billed_by_kind_today.get(scope)),
            charged=number(charged),
        )
        refused = report.refused_by_scope.get(scope)
        if refused:
            line = _("{line}; refused {refused}", line=line, refused=refused_text(refused))
        servers.append(r(line))
    listed = {scope for scope, _s, _b in report.servers}
    servers += [
        r(
            _(
                "{place}: refused {refused}",
                place=place(scope, names),
                refused=refused_text(refused),
            )
        )
        for scope, refused in sorted(report.refused_by_scope.items())
        if scope not in listed
    ]
    embed.add_field(
        name=r(_("Servers today")), value="\n".join(servers) or r(_("none yet")), inline=False
    )
    top = [
        r(
            _(
                "{member} in {place}: {count}",
                member=f"<@{user}>",
                place=place(scope, names),
                count=number(count),
            )
        )
        for scope, user, count in report.top_members
    ]
    embed.add_field(
        name=r(_("Top members today")), value="\n".join(top) or r(_("nobody yet")), inline=False
    )
    days = [r(line) for line in day_lines(report, settings)]
    embed.add_field(name=r(_("Last days")), value="\n".join(days) or "-", inline=False)
    embed.set_footer(
        text=r(
            _(
                "Price {price}. Worst case per day: {worst}.",
                price=price_text(settings),
                worst=worst_case_text(report.global_cap, settings),
            )
        )
    )
    return embed


def owner_change_embed(title: Text, text: Text, language: str) -> discord.Embed:
    return discord.Embed(
        title=render(language, title), description=render(language, text), colour=COLOUR
    )
