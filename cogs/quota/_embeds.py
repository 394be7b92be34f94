"""The embeds /wanquota replies with: a member's standing, a server's totals, admin changes, the log.

Pure functions of store values, so the words can be read (and tested) without Discord. Every embed is
built in one `language` (the asking member's: each answer is private); the helpers that return a
`Text` can still be shown in any language.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import discord

from bot.config import Settings
from bot.i18n import N_, Number, Text, _, _n, render
from bot.reports import (
    cost,
    day_lines,
    images,
    kinds_of,
    number,
    price_text,
    refused_text,
    undelivered_line,
)
from bot.store import AuditEntry, QuotaStatus, ServerTotals, UsageReport
from cogs.utils.quota_words import discord_timestamp

COLOUR = discord.Colour.blurple()
WARN = discord.Colour.orange()
# Discord's cap on an embed description; the log stays well under it, this is a guard.
DESCRIPTION_MAX = 4096

SOURCE_TEXT = {
    "user": N_("set for this member"),
    "role": N_("the highest of their roles' limits"),
    "server": N_("server default"),
    "global": N_("bot default"),
    "dm": N_("the bot owner's limit for DMs"),
}
# What bounds "Remaining now" when it is not the member's own allowance.
LIMITED_TEXT = {
    "server_cap": N_("this server's daily cap"),
    "global_cap": N_("the bot's daily limit for everyone"),
    "paused": N_("paused by the bot's owner"),
    "dm_off": N_("the bot's owner has turned DMs off"),
}


def where(scope: int) -> Text:
    return _("in DMs") if scope == 0 else _("in this server")


def source_text(source: str) -> Text:
    return _(SOURCE_TEXT[source])


def limit_text(value: int | None, *, unset: Text | None = None, zero: Text | None = None) -> Text:
    """A stored limit as words: None is `unset` ("not set"), 0 a block (`zero`: "0 (blocked)")."""
    if value is None:
        return unset if unset is not None else _("not set")
    if value == 0:
        return zero if zero is not None else _("0 (blocked)")
    return number(value)


def not_set_default(bot_default: int) -> Text:
    return _("not set (bot default {default})", default=Number(bot_default))


def cap_text(value: int | None) -> Text:
    """A server's own daily cap: off, or images a day."""
    if not value:
        return _("off")
    return _n("{count} image/day", "{count} images/day", value, count=Number(value))


def status_fields(embed: discord.Embed, status: QuotaStatus, language: str) -> discord.Embed:
    """Add the numbers a member wants: limit, used, held, extra, remaining, reset."""

    def r(text: Text) -> str:
        return render(language, text)

    used = number(status.used)
    if status.used_extra:
        used = _(
            "{used} ({extra} from extra images)",
            used=Number(status.used),
            extra=Number(status.used_extra),
        )
    source = source_text(status.limit_source)
    if status.limit_role is not None:
        source = _("{source}: {role}", source=source, role=f"<@&{status.limit_role}>")
    limit = _("{limit} ({source})", limit=Number(status.limit), source=source)
    embed.add_field(name=r(_("Daily limit")), value=r(limit))
    embed.add_field(name=r(_("Used today")), value=r(used))
    embed.add_field(name=r(_("Held by jobs in progress")), value=r(number(status.held)))
    embed.add_field(
        name=r(_("Extra images")),
        value=r(_("{extra} (never expire)", extra=Number(status.extra))),
    )
    remaining = f"**{r(number(status.remaining))}**"
    if status.limited_by is not None:
        marked = LIMITED_TEXT.get(status.limited_by)
        what = _(marked) if marked else status.limited_by
        remaining += r(_(" (limited by {what})", what=what))
    embed.add_field(name=r(_("Remaining now")), value=remaining)
    embed.add_field(name=r(_("Daily allowance resets")), value=discord_timestamp(status.resets_at))
    return embed


def status_embed(
    status: QuotaStatus, user: discord.abc.User, scope: int, *, own: bool, language: str
) -> discord.Embed:
    """`/wanquota show`: one member's standing today."""
    dms = scope == 0
    if own:
        title = _("Your Wan images in DMs") if dms else _("Your Wan images in this server")
    elif dms:
        title = _("{name}'s Wan images in DMs", name=user.display_name)
    else:
        title = _("{name}'s Wan images in this server", name=user.display_name)
    embed = discord.Embed(title=render(language, title), colour=COLOUR)
    lines = [_("Member: {member}", member=user.mention)]
    if status.blocked:
        embed.colour = WARN
        if status.limit_source == "user" and status.limit == 0:
            why = _("the member's own daily limit is 0; `/wanquota set` with a higher one lifts it")
        else:
            why = _("ask a server admin")
        lines.append(_("**Blocked**: no Wan images {where} ({why}).", where=where(scope), why=why))
    elif status.remaining == 0:
        embed.colour = WARN
        lines.append(_("Nothing left right now; the daily allowance comes back at the reset."))
    embed.description = "\n".join(render(language, line) for line in lines)
    return status_fields(embed, status, language)


def server_fields(
    embed: discord.Embed, totals: ServerTotals, bot_default: int, language: str
) -> discord.Embed:
    """Add the server's totals for today, its cap and its default limit (for admins)."""

    def r(text: Text) -> str:
        return render(language, text)

    members = _n(
        "{count} member made images",
        "{count} members made images",
        totals.users,
        count=Number(totals.users),
    )
    embed.add_field(
        name=r(_("Server today")),
        value=r(
            _(
                "{used} used, {held} held by jobs in progress, {members}",
                used=Number(totals.used),
                held=Number(totals.held),
                members=members,
            )
        ),
        inline=False,
    )
    in_force, left = totals.cap_in_force, totals.cap_remaining
    cap = cap_text(totals.cap)
    if totals.cap and totals.cap == in_force:
        cap = _("{cap}, {left} left today", cap=cap, left=Number(left or 0))
    embed.add_field(name=r(_("Server daily cap")), value=r(cap))
    if totals.ceiling:
        ceiling = _("{cap} (WAN_SERVER_DAILY_LIMIT)", cap=cap_text(totals.ceiling))
        if totals.ceiling == in_force and totals.cap != in_force:
            ceiling = _("{cap}, {left} left today", cap=ceiling, left=Number(left or 0))
        embed.add_field(name=r(_("Bot owner's ceiling")), value=r(ceiling))
    embed.add_field(
        name=r(_("Server default limit")),
        value=r(limit_text(totals.default_limit, unset=not_set_default(bot_default))),
    )
    if totals.billed:
        # What the owner pays Wan, apart from what members were charged (only images delivered).
        billed = images(totals.billed)
        if totals.undelivered:
            billed = _(
                "{images}, {undelivered} of them never delivered",
                images=billed,
                undelivered=Number(totals.undelivered),
            )
        embed.add_field(name=r(_("Billed by Wan today")), value=r(billed), inline=False)
    return embed


def change_embed(
    title: Text, subject: Text, old: Text, new: Text, note: Text | None, language: str
) -> discord.Embed:
    """An admin change echoed back: what changed, from what, to what."""
    lines = [_("{subject}: {old} → **{new}**", subject=subject, old=old, new=new)]
    if note:
        lines.append(note)
    return discord.Embed(
        title=render(language, title),
        description="\n".join(render(language, line) for line in lines),
        colour=COLOUR,
    )


def _target(entry: AuditEntry) -> Text | str:
    return f"<@{entry.target}>" if entry.target is not None else _("someone")


def _plain(value: int | bool | None) -> Text | str:
    return "?" if value is None else number(int(value))


def audit_line(entry: AuditEntry) -> Text:
    """One admin change in a sentence, with when and who."""
    old, new = _int(entry.old), _int(entry.new)
    target = _target(entry)
    if entry.action == "set_user_limit":
        what = _(
            "set {member}'s daily limit: {old} → {new}",
            member=target,
            old=limit_text(old),
            new=limit_text(new),
        )
    elif entry.action == "set_server_default":
        what = _(
            "set the server default limit: {old} → {new}", old=limit_text(old), new=limit_text(new)
        )
    elif entry.action == "set_server_cap":
        what = _("set the server daily cap: {old} → {new}", old=cap_text(old), new=cap_text(new))
    elif entry.action == "set_role_limit":
        role = f"<@&{entry.target}>" if entry.target is not None else _("a role")
        zero = number(0)
        what = _(
            "set {role}'s daily limit: {old} → {new}",
            role=role,
            old=limit_text(old, zero=zero),
            new=limit_text(new, zero=zero),
        )
    elif entry.action == "grant_extra":
        what = _(
            "gave {member} extra images: {old} → {new}",
            member=target,
            old=_plain(entry.old),
            new=_plain(entry.new),
        )
    elif entry.action == "reset_usage":
        what = _(
            "reset {member}'s usage today: {old} → {new}",
            member=target,
            old=_plain(entry.old),
            new=_plain(entry.new),
        )
    elif entry.action == "block":
        what = _("blocked {member}", member=target)
    elif entry.action == "unblock":
        what = _("unblocked {member}", member=target)
    else:
        what = _(
            "{action} {member}: {old} → {new}",
            action=entry.action,
            member=target,
            old=_plain(entry.old),
            new=_plain(entry.new),
        )
    return _(
        "{when} {who} {what}",
        when=discord_timestamp(entry.at, "f"),
        who=f"<@{entry.actor}>",
        what=what,
    )


def _int(value: int | bool | None) -> int | None:
    return None if value is None else int(value)


def log_embed(entries: Sequence[AuditEntry], scope: int, language: str) -> discord.Embed:
    """`/wanquota log`: the last admin changes, newest first."""
    title = _("Wan quota changes in DMs") if scope == 0 else _("Wan quota changes in this server")
    embed = discord.Embed(title=render(language, title), colour=COLOUR)
    if not entries:
        embed.description = render(language, _("No admin changes yet."))
        return embed
    lines: list[str] = []
    size = 0
    for entry in entries:
        line = render(language, audit_line(entry))
        if size + len(line) + 1 > DESCRIPTION_MAX - 40:
            older = len(entries) - len(lines)
            lines.append(render(language, _n("… and {count} older", "… and {count} older", older)))
            break
        lines.append(line)
        size += len(line) + 1
    embed.description = "\n".join(lines)
    embed.set_footer(
        text=render(language, _("Newest first, last {count}", count=Number(len(entries))))
    )
    return embed


def reset_note(resets_at: datetime) -> Text:
    return _(
        "Images held by jobs in progress stay held; the server's total for today is kept "
        "(it is what the bill counts). The daily allowance resets {when}.",
        when=discord_timestamp(resets_at),
    )


def refused_embed(title: Text, text: str, language: str) -> discord.Embed:
    """An admin change refused (over the owner's ceiling): nothing changed."""
    return discord.Embed(
        title=render(language, title), description=render(language, text), colour=WARN
    )


def usage_embed(report: UsageReport, settings: Settings, language: str) -> discord.Embed:
    """`/wanquota usage`: this server's last 7 days, its top members today, and the cost."""

    def r(text: Text) -> str:
        return render(language, text)

    today = report.today
    embed = discord.Embed(title=r(_("Wan usage in this server")), colour=COLOUR)
    undelivered = undelivered_line(report)
    embed.description = "\n".join(
        [
            r(
                _(
                    "Today: **{images}** billed by Wan, cost **{cost}**",
                    images=images(today.billed),
                    cost=cost(today.billed, settings, today.billed_by_kind),
                )
            ),
            *([r(undelivered)] if undelivered is not None else []),
            r(_("Refused today (images): {refused}", refused=refused_text(today.refused))),
        ]
    )
    days = [r(line) for line in day_lines(report, settings)]
    week = sum(d.billed for d in report.days)
    heading = _n(
        "Last {count} day: {images}, {cost}",
        "Last {count} days: {images}, {cost}",
        len(report.days),
        images=images(week),
        cost=cost(week, settings, kinds_of(report)),
    )
    embed.add_field(name=r(heading), value="\n".join(days) or "-", inline=False)
    top = [
        r(_("{member}: {count}", member=f"<@{user}>", count=number(count)))
        for _s, user, count in report.top_members
    ]
    embed.add_field(
        name=r(_("Top members today")), value="\n".join(top) or r(_("nobody yet")), inline=False
    )
    embed.set_footer(
        text=r(
            _(
                "Cost = images Wan billed × {price}. Days are UTC.",
                price=price_text(settings),
            )
        )
    )
    return embed
