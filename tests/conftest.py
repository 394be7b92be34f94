"""Shared fixtures: the Wan emulator, the fake Discord, and a `world` with a running bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import Emulator, EmulatorConfig
from tests.support.harness import API_KEY, World, make_world

# Fixtures every group may use: the fake Discord's, the store's (each store test on both engines)
# and the Wan client's.
pytest_plugins = [
    "tests.support.fake_discord.fixtures",
    "tests.support.store",
    "tests.support.wan",
]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """The Wan emulator with short task times."""
    config = EmulatorConfig(api_keys={API_KEY}, pending_seconds=0.05, running_seconds=0.3)
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def world(tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    """Both fakes and a server; start bots with `await world.start_bot()`."""
    w = await make_world(tmp_path, emulator=emulator)
    try:
        yield w
    finally:
        await w.close()
        await w.fd.close()


@pytest.fixture
async def bot_world(world: World) -> World:
    """`world` with one bot already connected."""
    await world.start_bot()
    return world
