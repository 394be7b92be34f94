"""DashScope's rate limits shared by the bot processes on PostgreSQL: a `wan_buckets` row per limit,
taken by one UPDATE on the server's clock (GCRA: granted when `stamp <= now`, then `stamp = now +
1/rate`). The rate keeps any second of arrivals within the limit for delays varying by `JITTER`; a
grant whose take took over `MAX_TAKE_LAG` is thrown away. See docs/store.md."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

# Seconds by which the trip from a grant to Wan may vary between requests (see the module doc).
JITTER = 0.3
# A take that took longer than this is not trusted to be fresh (see the module doc).
MAX_TAKE_LAG = 0.2

_NOW = "extract(epoch FROM clock_timestamp())::float8"
_ENSURE = (
    "INSERT INTO wan_buckets (name, tokens, stamp)"
    f" VALUES ($1, 0, {_NOW}) ON CONFLICT (name) DO NOTHING"
)
# The UPDATE's WHERE is checked again after a wait for the row lock, against the row as the other
# taker left it and with the clock read again, so `now` is never older than the lock. Not granted:
# the second branch says how long until `stamp` (from the statement's snapshot: only a hint, the
# caller takes again).
_TAKE = f"""
WITH granted AS (
    UPDATE wan_buckets SET stamp = {_NOW} + $2
    WHERE name = $1 AND stamp <= {_NOW}
    RETURNING stamp - $2 AS at
)
SELECT true AS ok, at FROM granted
UNION ALL
SELECT false, stamp - {_NOW} FROM wan_buckets
WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM granted)
"""


def rate_for(limit: float, jitter: float = JITTER) -> float:
    """The grant rate that keeps any one-second window of arrivals at or under `limit`, for
    arrival delays that vary by up to `jitter` seconds: ceil((1 + jitter) * rate) <= limit."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    whole = max(1, math.floor(limit))
    # A hair under the bound, so float rounding can't put one more grant in the window.
    return whole / (1.0 + jitter) * 0.999


class SharedRate:
    """An awaitable gate: `await gate()` returns once a grant was taken from the shared row."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        rate: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_take_lag: float = MAX_TAKE_LAG,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._pool = pool
        self.name = name
        self.rate = rate
        self._sleep = sleep
        self._clock = clock
        self.max_take_lag = max_take_lag
        self._ready = False
        self.taken = 0
        self.discarded = 0  # grants not used because their take was slow
        self.last_grant: float | None = None  # the database's time of the last grant used

    @classmethod
    def for_limit(cls, pool: asyncpg.Pool, name: str, limit: float) -> SharedRate:
        """A gate that keeps every one-second window at or under `limit` requests at Wan."""
        return cls(pool, name, rate_for(limit))

    async def take(self) -> float | None:
        """Take a grant if one is due: None, else the seconds to wait before asking again."""
        if not self._ready:
            await self._pool.execute(_ENSURE, self.name)
            self._ready = True
        sent = self._clock()
        row = await self._pool.fetchrow(_TAKE, self.name, 1.0 / self.rate)
        if row is None:  # the row was deleted under us: make it again
            self._ready = False
            return 0.0
        if not row["ok"]:
            return max(0.0, float(row["at"]))
        if self._clock() - sent > self.max_take_lag:
            # Granted at some moment of a slow round trip: using it could arrive at Wan bunched
            # with later grants. Wasting it keeps the limit; the next take is fresh.
            self.discarded += 1
            return 0.0
        self.taken += 1
        self.last_grant = float(row["at"])
        return None

    async def __call__(self) -> None:
        while True:
            try:
                wait = await self.take()
                if wait is None:
                    return
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
                # The database is the budget: without it, wait rather than risk the account's limit.
                log.warning("shared %s rate unavailable (%s); retrying", self.name, err)
                wait = 1.0
            if wait > 0:
                await self._sleep(wait)
