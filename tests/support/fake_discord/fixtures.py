"""Pytest fixtures for FakeDiscord.

Share them from a conftest with ``pytest_plugins = ["tests.support.fake_discord.fixtures"]`` (root
conftest) or in a test module the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from .client import pointed_at
from .server import FakeDiscord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord (token ``Bot-token-123``, Message Content intent off)."""
    fd = FakeDiscord()
    await fd.start()
    try:
        yield fd
    finally:
        await fd.close()


@pytest.fixture
def discord_endpoints(fake_discord: FakeDiscord) -> Iterator[FakeDiscord]:
    """``fake_discord`` with discord.py's Route.BASE / DEFAULT_GATEWAY pointed at it."""
    with pointed_at(fake_discord):
        yield fake_discord
