"""Token buckets for the account-level request rates (5 RPS submit, 20 QPS task queries)."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second with a burst of one second's worth (at least 1). `None` = unlimited."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate) if rate else 0.0
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def try_acquire(self) -> bool:
        if not self.rate:
            return True
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
