"""What the bot tells its owner in the log about cost: at start-up (the caps, the worst case per day,
a public bot) and for servers not on WAN_ALLOWED_GUILDS (once each, at start-up and at join)."""

from __future__ import annotations

import logging

import discord

from bot.config import Settings
from bot.reports import cap_text, worst_case_text

log = logging.getLogger("bot.owner")


def warn_about_cost(settings: Settings, public: bool) -> None:
    """One line with the caps in force and the worst case per day; warnings where it is unbounded."""
    cap = settings.global_daily_limit or None
    log.info(
        "cost bounds: bot-wide %s, per server %s, DMs %s per member; worst case per day %s",
        cap_text(cap),
        cap_text(settings.server_daily_limit or None),
        f"{settings.dm_daily_limit} images" if settings.dm_daily_limit else "off",
        worst_case_text(cap, settings),
    )
    if cap is None:
        log.warning(
            "WAN_GLOBAL_DAILY_LIMIT=0: there is no bot-wide daily cap, so nothing bounds the bill"
        )
    if public and not settings.allowed_guilds:
        log.warning(
            "the bot is public and WAN_ALLOWED_GUILDS is empty: anyone can add it to their server "
            "and spend your images (untick Public Bot in the developer portal, Bot tab, or set "
            "WAN_ALLOWED_GUILDS)"
        )


class GuildNotes:
    """Logs each server the bot is in but not allowed to work in, once per run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.logged: set[int] = set()

    def check(self, guild: discord.Guild, when: str) -> bool:
        """True (and a warning, the first time) when `guild` is not on WAN_ALLOWED_GUILDS."""
        if self.settings.allowed_here(guild.id):
            return False
        if guild.id not in self.logged:
            self.logged.add(guild.id)
            log.warning(
                "%s: server %s (%d) is not in WAN_ALLOWED_GUILDS; the bot stays but refuses "
                "every request there (add the id and restart to allow it, or remove the bot "
                "from that server)",
                when,
                guild.name,
                guild.id,
            )
        return True
