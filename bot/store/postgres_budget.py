"""DashScope's per-account rate limits shared by every bot process: token buckets in `wan_buckets`.

A take is one UPDATE ... RETURNING on the bucket's row (the row lock makes it atomic across
processes), on the database server's clock. The bucket holds at most one token and refills at
`rate` per second, so grants are spaced at least 1/rate apart: in any one-second window there are
at most rate + 1 of them, which is why `SharedRate.for_limit` asks for a little less than the limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

_ENSURE = (
    "INSERT INTO wan_buckets (name, tokens, stamp)"
    " VALUES ($1, 1, extract(epoch FROM clock_timestamp())) ON CONFLICT (name) DO NOTHING"
)
_TAKE = """
WITH b AS (
    SELECT least(1.0, tokens + greatest(0.0, t.now - stamp) * $2) AS avail, t.now
    FROM wan_buckets, (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) t
    WHERE name = $1 FOR UPDATE OF wan_buckets
)
UPDATE wan_buckets w
SET tokens = b.avail - CASE WHEN b.avail >= 1.0 THEN 1.0 ELSE 0.0 END, stamp = b.now
FROM b WHERE w.name = $1
RETURNING b.avail
"""


class SharedRate:
    """An awaitable gate: `await gate()` returns once a token was taken from the shared bucket."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        rate: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._pool = pool
        self.name = name
        self.rate = rate
        self._sleep = sleep
        self._ready = False
        self.taken = 0

    @classmethod
    def for_limit(cls, pool: asyncpg.Pool, name: str, limit: float) -> SharedRate:
        """A gate that keeps every one-second window at or under `limit` requests, with room
        for network jitter between the grant and the request's arrival."""
        return cls(pool, name, max(0.2, limit - 1.5) if limit > 2 else limit / 2)

    async def take(self) -> float:
        """Take a token if one is there: 0.0, else the seconds until one will be."""
        if not self._ready:
            await self._pool.execute(_ENSURE, self.name)
            self._ready = True
        avail: float = await self._pool.fetchval(_TAKE, self.name, self.rate)
        if avail >= 1.0:
            self.taken += 1
            return 0.0
        return (1.0 - avail) / self.rate

    async def __call__(self) -> None:
        while True:
            try:
                wait = await self.take()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
                # The database is the budget: without it, wait rather than risk the account's limit.
                log.warning("shared %s rate unavailable (%s); retrying", self.name, err)
                wait = 1.0
            if wait <= 0:
                return
            await self._sleep(wait)
