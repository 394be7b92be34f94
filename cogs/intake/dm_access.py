"""Who may use the bot in DMs when its owner keeps it to some servers (WAN_ALLOWED_GUILDS): members of
those servers, unless the owner opens DMs to anyone (WAN_DM_ANYONE). Without this, anyone able to DM
the bot would spend WAN_DM_DAILY_LIMIT a day, and enough accounts would drain the bot-wide cap.

Membership is asked of Discord's REST API (`GET /guilds/{guild}/members/{user}`), which any process
can ask whatever shards it runs and needs no privileged intent, and remembered for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

import discord

log = logging.getLogger(__name__)

# Seconds an answer is kept: a member stays one for a while (a kick takes effect within
# MEMBER_FOR), and someone who just joined an allowed server is served within STRANGER_FOR.
MEMBER_FOR = 600.0
STRANGER_FOR = 120.0
# Members remembered at most (the least recently asked about go first): the map must not grow
# with everyone who ever wrote to the bot.
MAX_REMEMBERED = 10_000


class MembershipUnknown(Exception):
    """Discord could not say whether the user is a member (an outage, a timeout)."""


class DmMembers:
    """`await allowed(user_id)`: whether the user is a member of one of `guilds`."""

    def __init__(
        self,
        http: discord.http.HTTPClient,
        guilds: Collection[int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.guilds = tuple(sorted(guilds))
        self._clock = clock
        self._known: OrderedDict[int, tuple[bool, float]] = OrderedDict()

    async def allowed(self, user_id: int) -> bool:
        known = self._known.get(user_id)
        now = self._clock()
        if known is not None and known[1] > now:
            self._known.move_to_end(user_id)
            return known[0]
        answers = await asyncio.gather(
            *(self._member_of(guild, user_id) for guild in self.guilds), return_exceptions=True
        )
        member = any(answer is True for answer in answers)
        if not member:
            failed = [a for a in answers if isinstance(a, BaseException)]
            if failed:
                # No server said yes and one could not answer: don't remember a guess.
                raise MembershipUnknown(str(failed[0])) from failed[0]
        self._known[user_id] = (member, now + (MEMBER_FOR if member else STRANGER_FOR))
        self._known.move_to_end(user_id)
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)
        return member

    async def _member_of(self, guild_id: int, user_id: int) -> bool:
        try:
            data: Any = await self._http.get_member(guild_id, user_id)
        except discord.NotFound:
            return False  # Unknown Member (or a server that is gone)
        except discord.Forbidden:
            # The bot is not (or no longer) in that server: it can't serve anyone there either.
            log.warning("DM access: the bot can't see server %d on WAN_ALLOWED_GUILDS", guild_id)
            return False
        return bool(data)
