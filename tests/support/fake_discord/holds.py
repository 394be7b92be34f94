"""Holding requests until a test lets them go: a slow network or a slow server, on an event instead of a
timer, so a test can act at an exact step of the bot's work (cancel while an image downloads, crash
while a message is being posted). Used by the fake Discord (``FakeDiscord.hold``) and by the DashScope
gate in ``tests/support/promises.py``."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field


@dataclass(eq=False)
class Hold:
    """Parks the first ``times`` requests matching ``method`` ("*" = any) and the regex ``pattern``
    (searched in the path), and, if ``body_contains`` is given, whose (non-multipart) body contains it.
    With ``after_handling`` the request is carried out at once and only its answer is parked.

    ``await wait_arrived()`` returns once all ``times`` are parked; ``release()`` lets them go on to
    the real handler, ``release(fail=(status, body))`` answers them with that error instead (the
    request never reached the server's logic). Later matching requests pass untouched.
    """

    method: str
    pattern: re.Pattern[str]
    times: int = 1
    body_contains: bytes | None = None
    # Handle the request first and hold only its answer: the server did the work, the client
    # hears of it late (or, if it has gone away meanwhile, never).
    after_handling: bool = False
    parked: int = 0
    failure: tuple[int, dict] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, method: str, path: str) -> bool:
        return (
            self.parked < self.times
            and self.method in (method, "*")
            and self.pattern.search(path) is not None
        )

    async def park(self) -> tuple[int, dict] | None:
        """Wait (inside a request handler) until released; the failure to answer with, if any."""
        self.parked += 1
        if self.parked >= self.times:
            self._arrived.set()
        await self._released.wait()
        return self.failure

    async def wait_arrived(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._arrived.wait(), timeout)

    @property
    def arrived(self) -> bool:
        return self._arrived.is_set()

    def release(self, *, fail: tuple[int, dict] | None = None) -> None:
        self.failure = fail
        self.times = self.parked  # nothing more is caught once released
        self._released.set()
