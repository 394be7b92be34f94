"""DashScope's rate limits shared by the bot processes on PostgreSQL: a `wan_buckets` row per limit,
booked by one UPDATE on the server's clock (GCRA: a take is given the slot `max(stamp, now)` and
moves `stamp` one `1/rate` past it; the taker waits for its slot). The rate keeps any second of
arrivals within the limit for delays varying by `JITTER`; a slot whose take took over
`MAX_TAKE_LAG` longer than this process's recent quickest take is not used. See docs/store.md."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable

import asyncpg

from bot.store.errors import OutageWatch
from bot.store.postgres import DATABASE_ERRORS

log = logging.getLogger(__name__)

# Seconds by which the trip from a grant to Wan may vary between requests (see the module doc).
JITTER = 0.3
# A take whose round trip exceeded the recent quickest by more than this is not trusted to be
# fresh (see `SharedRate.take`).
MAX_TAKE_LAG = 0.2
# How many recent round trips the quickest is taken from: few enough that a database moved farther
# away (a failover) is learned within a few takes.
RECENT_TRIPS = 16

_NOW = "extract(epoch FROM clock_timestamp())::float8"
_ENSURE = (
    "INSERT INTO wan_buckets (name, tokens, stamp)"
    f" VALUES ($1, 0, {_NOW}) ON CONFLICT (name) DO NOTHING"
)
# The slot is booked after any wait for the row lock, against the row as the other taker left it and
# with the clock read again, so `now` is never older than the lock. `due`: how far ahead of the
# server's clock the slot is.
_TAKE = f"""
UPDATE wan_buckets SET stamp = greatest(stamp, {_NOW}) + $2
WHERE name = $1
RETURNING stamp - $2 AS at, stamp - $2 - {_NOW} AS due
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._pool = pool
        self.name = name
        self.rate = rate
        self._clock = clock
        self._ready = False
        self.taken = 0
        self.discarded = 0  # slots not used because their take was slow
        self.last_grant: float | None = None  # the database's time of the last slot used
        self._trips: deque[float] = deque(maxlen=RECENT_TRIPS)  # recent takes' round trips
        self._releases: set[asyncio.Future[None]] = set()
        # Told when the database fails a take and answers again (set by the job runner's side);
        # None: each failure is logged.
        self.outage: OutageWatch | None = None

    async def take(self) -> tuple[float, float] | None:
        """Book the next slot: the seconds to wait before using it and its time on the server's
        clock, or None when it can't be used (its take was too slow to place it, or the row was
        gone) and another must be booked."""
        if not self._ready:
            sent = self._clock()
            await self._pool.execute(_ENSURE, self.name)
            self._trips.append(self._clock() - sent)  # the first take's measure of the network
            self._ready = True
        con = await self._pool.acquire()
        try:
            sent = self._clock()
            row = await con.fetchrow(_TAKE, self.name, 1.0 / self.rate)
            trip = self._clock() - sent
        except BaseException:
            await self._pool.release(con)
            raise
        # Given back meanwhile: the release's own round trip must not delay the slot's use.
        releasing = asyncio.ensure_future(self._pool.release(con))
        self._releases.add(releasing)
        releasing.add_done_callback(self._releases.discard)
        self._trips.append(trip)
        # The network's share of a round trip: what the quickest recent take took. The slot was
        # booked at some moment of the round trip; only the part beyond that share (a wait for the
        # row lock, a stalled packet) makes that moment uncertain, and that is what is bounded.
        quickest = min(self._trips)
        if row is None:  # the row was deleted under us: make it again
            self._ready = False
            return None
        if trip - quickest > MAX_TAKE_LAG:
            # Booked at some moment of a slow round trip: used, it could arrive at Wan bunched with
            # later slots. Wasting it keeps the limit; the next take is placed better.
            self.discarded += 1
            return None
        self.taken += 1
        # The answer left the server half a quick round trip ago.
        return max(0.0, float(row["due"]) - quickest / 2), float(row["at"])

    async def __call__(self) -> None:
        while True:
            try:
                booked = await self.take()
            except DATABASE_ERRORS as err:
                # The database is the budget: without it, wait rather than risk the account's limit.
                if self.outage is not None:
                    self.outage.failed(err)
                else:
                    log.warning("shared %s rate unavailable (%s); retrying", self.name, err)
                await asyncio.sleep(1.0)
                continue
            if self.outage is not None:
                self.outage.ok()
            if booked is None:
                continue
            wait, slot = booked
            if wait > 0:
                await asyncio.sleep(wait)
            self.last_grant = slot
            return
