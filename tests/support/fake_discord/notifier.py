"""Wake waiters when the fake's state changes, so tests await conditions instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Notifier:
    # Predicates may also look at state outside the fake (the client's), so waiters re-check
    # at least this often besides being woken by changes.
    POLL_INTERVAL = 0.02

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def changed(self) -> None:
        """Something changed: wake everyone waiting, then arm a fresh event."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self,
        probe: Callable[[], T | None],
        timeout: float,
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Return the first truthy result of ``probe()``, re-checked after every change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._event
            result = probe()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                detail = f": {describe()}" if describe is not None else ""
                raise TimeoutError(f"condition not met within {timeout}s{detail}")
            try:
                await asyncio.wait_for(event.wait(), min(remaining, self.POLL_INTERVAL))
            except TimeoutError:
                continue
