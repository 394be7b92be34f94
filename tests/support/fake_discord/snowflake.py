"""Snowflake ids shaped like Discord's: time-ordered, so discord.py's snowflake_time() works."""

from __future__ import annotations

import itertools
import time

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeFactory:
    """Makes strictly increasing snowflakes: (ms since the Discord epoch) << 22 | counter."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._last = 0
        self._dated: set[int] = set()

    def next(self) -> int:
        now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (now_ms << 22) | (next(self._counter) & 0xFFF)
        # Never go backwards, even within one millisecond or after 4096 ids.
        value = max(value, self._last + 1)
        self._last = value
        return value

    def at(self, unix_seconds: float) -> int:
        """A unique snowflake whose time is ``unix_seconds`` (past or future), outside the
        increasing sequence of ``next()``: for ids whose time means something to the client
        (an interaction's id says when its token dies)."""
        ms = int(unix_seconds * 1000) - DISCORD_EPOCH_MS
        # Worker id 1 (bits 17-21): next() leaves those bits 0, so the two kinds never collide.
        value = (ms << 22) | (1 << 17) | (next(self._counter) & 0xFFF)
        while value in self._dated:
            value += 1
        self._dated.add(value)
        return value

    def mark(self) -> int:
        """An id that every later snowflake exceeds (for "messages since now" queries)."""
        return self.next()


def snowflake_time_ms(snowflake: int) -> int:
    """Unix time in milliseconds at which ``snowflake`` was made."""
    return (snowflake >> 22) + DISCORD_EPOCH_MS
