"""A rate limiter for the task endpoints (query, cancel, list), which share one per-account QPS limit.

It is strict in the sense a server would measure it: in any 1-second window at most `floor(rate)`
requests start, with a small safety margin for network jitter, and consecutive requests are spaced
at least `1/rate` apart so there is never a burst (DashScope also throttles sudden bursts).

Why not aiolimiter: its leaky bucket lets `rate` requests through at once and `rate` more within the
same second, and it has no account-wide pause for 429s. `bench/poll.py` runs both side by side
(aiolimiter configured as a burst bucket and as a spaced one) and prints peak q/s and lag.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol


class Limiter(Protocol):
    """What the client and the poll scheduler need of a rate limiter."""

    @property
    def rate(self) -> float: ...

    async def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None: ...


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`gate`, when given, is awaited after this process's own pacing: a budget shared with
        other processes (several bot processes on one account, `bot.store.budget`)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._window = window + margin
        self._spacing = 1.0 / rate
        self._grants: deque[float] = deque(maxlen=max(1, math.floor(rate * window)))
        self._paused_until = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()  # FIFO, so callers are served in arrival order
        self._gate = gate
        # The shared budget's own rate, when the gate has one: the poll scheduler plans for it.
        self.gate_rate: float | None = getattr(gate, "rate", None)
        self.granted = 0

    def next_free(self, now: float | None = None) -> float:
        """Earliest time the next request may start."""
        at = self._paused_until
        if self._grants:
            at = max(at, self._grants[-1] + self._spacing)
            if len(self._grants) == self._grants.maxlen:
                at = max(at, self._grants[0] + self._window)
        return at

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                delay = self.next_free() - self._clock()
                if delay <= 0:
                    break
                await self._sleep(delay)
            if self._gate is not None:
                await self._gate()
            self._grants.append(self._clock())
            self.granted += 1

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` (the account is being throttled: 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
