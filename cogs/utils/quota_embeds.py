"""The embeds /wanquota replies with: a member's standing, a server's totals, admin changes, the log.

Pure functions of store values, so the words can be read (and tested) without Discord.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import discord

from bot.config import Settings
from bot.reports import cost, price_text, refused_text
from bot.store import AuditEntry, QuotaStatus, ServerTotals, UsageReport, discord_timestamp

COLOUR = discord.Colour.blurple()
WARN = discord.Colour.orange()
# Discord's cap on an embed description; the log stays well under it, this is a guard.
DESCRIPTION_MAX = 4096

SOURCE_TEXT = {
    "user": "set for this member",
    "role": "the highest of their roles' limits",
    "server": "server default",
    "global": "bot default",
    "dm": "the bot owner's limit for DMs",
}
# What bounds "Remaining now" when it is not the member's own allowance.
LIMITED_TEXT = {
    "server_cap": "this server's daily cap",
    "global_cap": "the bot's daily limit for everyone",
    "paused": "paused by the bot's owner",
    "dm_off": "the bot's owner has turned DMs off",
}


def where(scope: int) -> str:
    return "in DMs" if scope == 0 else "in this server"


def limit_text(value: int | None, *, unset: str = "not set", zero: str = "0 (blocked)") -> str:
    """A stored limit as words: None is `unset`, 0 is a block."""
    if value is None:
        return unset
    return zero if value == 0 else str(value)


def cap_text(value: int | None) -> str:
    return "off" if not value else f"{value} images/day"


def status_fields(embed: discord.Embed, status: QuotaStatus) -> discord.Embed:
    """Add the numbers a member wants: limit, used, held, extra, remaining, reset."""
    used = str(status.used)
    if status.used_extra:
        used += f" ({status.used_extra} from extra images)"
    source = SOURCE_TEXT[status.limit_source]
    if status.limit_role is not None:
        source += f": <@&{status.limit_role}>"
    embed.add_field(name="Daily limit", value=f"{status.limit} ({source})")
    embed.add_field(name="Used today", value=used)
    embed.add_field(name="Held by jobs in progress", value=str(status.held))
    embed.add_field(name="Extra images", value=f"{status.extra} (never expire)")
    remaining = f"**{status.remaining}**"
    if status.limited_by is not None:
        remaining += f" (limited by {LIMITED_TEXT.get(status.limited_by, status.limited_by)})"
    embed.add_field(name="Remaining now", value=remaining)
    embed.add_field(name="Daily allowance resets", value=discord_timestamp(status.resets_at))
    return embed


def status_embed(
    status: QuotaStatus, user: discord.abc.User, scope: int, *, own: bool
) -> discord.Embed:
    """`/wanquota show`: one member's standing today."""
    whose = "Your" if own else f"{user.display_name}'s"
    embed = discord.Embed(title=f"{whose} Wan images {where(scope)}", colour=COLOUR)
    lines = [f"Member: {user.mention}"]
    if status.blocked:
        embed.colour = WARN
        if status.limit_source == "user" and status.limit == 0:
            why = "the member's own daily limit is 0; `/wanquota set` with a higher one lifts it"
        else:
            why = "ask a server admin"
        lines.append(f"**Blocked**: no Wan images {where(scope)} ({why}).")
    elif status.remaining == 0:
        embed.colour = WARN
        lines.append("Nothing left right now; the daily allowance comes back at the reset.")
    embed.description = "\n".join(lines)
    return status_fields(embed, status)


def server_fields(embed: discord.Embed, totals: ServerTotals, bot_default: int) -> discord.Embed:
    """Add the server's totals for today, its cap and its default limit (for admins)."""
    embed.add_field(
        name="Server today",
        value=f"{totals.used} used, {totals.held} held by jobs in progress, "
        f"{totals.users} member(s) made images",
        inline=False,
    )
    in_force, left = totals.cap_in_force, totals.cap_remaining
    cap = cap_text(totals.cap)
    if totals.cap and totals.cap == in_force:
        cap += f", {left} left today"
    embed.add_field(name="Server daily cap", value=cap)
    if totals.ceiling:
        ceiling = f"{totals.ceiling} images/day (WAN_SERVER_DAILY_LIMIT)"
        if totals.ceiling == in_force and totals.cap != in_force:
            ceiling += f", {left} left today"
        embed.add_field(name="Bot owner's ceiling", value=ceiling)
    embed.add_field(
        name="Server default limit",
        value=limit_text(totals.default_limit, unset=f"not set (bot default {bot_default})"),
    )
    if totals.billed:
        # What the owner pays Wan, apart from what members were charged (only images delivered).
        lost = f", {totals.undelivered} of them never delivered" if totals.undelivered else ""
        embed.add_field(
            name="Billed by Wan today", value=f"{totals.billed} image(s){lost}", inline=False
        )
    return embed


def change_embed(
    title: str, subject: str, old: str, new: str, note: str | None = None
) -> discord.Embed:
    """An admin change echoed back: what changed, from what, to what."""
    lines = [f"{subject}: {old} → **{new}**"]
    if note:
        lines.append(note)
    return discord.Embed(title=title, description="\n".join(lines), colour=COLOUR)


def _target(entry: AuditEntry) -> str:
    return f"<@{entry.target}>" if entry.target is not None else "someone"


def audit_line(entry: AuditEntry) -> str:
    """One admin change in a sentence, with when and who."""
    when = discord_timestamp(entry.at, "f")
    who = f"<@{entry.actor}>"
    old, new = entry.old, entry.new
    if entry.action == "set_user_limit":
        what = (
            f"set {_target(entry)}'s daily limit: {limit_text(_int(old))} → {limit_text(_int(new))}"
        )
    elif entry.action == "set_server_default":
        what = f"set the server default limit: {limit_text(_int(old))} → {limit_text(_int(new))}"
    elif entry.action == "set_server_cap":
        what = f"set the server daily cap: {cap_text(_int(old))} → {cap_text(_int(new))}"
    elif entry.action == "set_role_limit":
        role = f"<@&{entry.target}>" if entry.target is not None else "a role"
        what = (
            f"set {role}'s daily limit: {limit_text(_int(old), zero='0')} → "
            f"{limit_text(_int(new), zero='0')}"
        )
    elif entry.action == "grant_extra":
        what = f"gave {_target(entry)} extra images: {old} → {new}"
    elif entry.action == "reset_usage":
        what = f"reset {_target(entry)}'s usage today: {old} → {new}"
    elif entry.action in ("block", "unblock"):
        what = f"{entry.action}ed {_target(entry)}"
    else:
        what = f"{entry.action} {_target(entry)}: {old} → {new}"
    return f"{when} {who} {what}"


def _int(value: int | bool | None) -> int | None:
    return None if value is None else int(value)


def log_embed(entries: Sequence[AuditEntry], scope: int) -> discord.Embed:
    """`/wanquota log`: the last admin changes, newest first."""
    embed = discord.Embed(title=f"Wan quota changes {where(scope)}", colour=COLOUR)
    if not entries:
        embed.description = "No admin changes yet."
        return embed
    lines: list[str] = []
    size = 0
    for entry in entries:
        line = audit_line(entry)
        if size + len(line) + 1 > DESCRIPTION_MAX - 40:
            lines.append(f"… and {len(entries) - len(lines)} older")
            break
        lines.append(line)
        size += len(line) + 1
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"Newest first, last {len(entries)}")
    return embed


def reset_note(resets_at: datetime) -> str:
    return (
        "Images held by jobs in progress stay held; the server's total for today is kept "
        f"(it is what the bill counts). The daily allowance resets {discord_timestamp(resets_at)}."
    )


def refused_embed(title: str, text: str) -> discord.Embed:
    """An admin change refused (over the owner's ceiling): nothing changed."""
    return discord.Embed(title=title, description=text, colour=WARN)


def usage_embed(report: UsageReport, settings: Settings) -> discord.Embed:
    """`/wanquota usage`: this server's last 7 days, its top members today, and the cost."""
    today = report.today
    embed = discord.Embed(title="Wan usage in this server", colour=COLOUR)
    embed.description = (
        f"Today: **{today.billed}** image(s) billed by Wan, cost **{cost(today.billed, settings)}**"
        f"\nRefused today (images): {refused_text(today.refused)}"
    )
    days = [f"{d.day.isoformat()}: {d.billed} ({cost(d.billed, settings)})" for d in report.days]
    week = sum(d.billed for d in report.days)
    embed.add_field(
        name=f"Last {len(report.days)} days: {week} images, {cost(week, settings)}",
        value="\n".join(days),
        inline=False,
    )
    top = [f"<@{user}>: {images}" for _, user, images in report.top_members]
    embed.add_field(name="Top members today", value="\n".join(top) or "nobody yet", inline=False)
    embed.set_footer(text=f"Cost = images Wan billed × {price_text(settings)}. Days are UTC.")
    return embed
