"""Shared fixtures: the Wan emulator, the fake Discord, and a `world` with a running bot."""

from __future__ import annotations

import os
import shutil
import tempfile
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


_OWN_TEMP = "_wanbot_own_temp"


def pytest_configure(config: pytest.Config) -> None:
    """A temporary folder of this run's own, for every pytest process (the parallel workers each
    make one inside the main process's): the bots' job folders, their sqlite files and pytest's
    `tmp_path`s go there, and bots they start inherit it through TMPDIR. A bot clears stale job
    folders from its temporary folder at start-up, and pytest prunes old runs' folders; neither
    then reaches the folders of another worker or of another run on the same machine."""
    folder = tempfile.mkdtemp(prefix="wanbot-tests-")
    # Passable by other users, as the system's temp folder is: tests/support/pgcluster.py runs
    # PostgreSQL's programs as the postgres user in a folder of its own in here.
    os.chmod(folder, 0o711)
    setattr(config, _OWN_TEMP, (folder, os.environ.get("TMPDIR")))
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = None  # read TMPDIR again


def pytest_unconfigure(config: pytest.Config) -> None:
    own = getattr(config, _OWN_TEMP, None)
    if own is not None:
        folder, before = own
        shutil.rmtree(folder, ignore_errors=True)
        # A process that runs pytest again (mutmut does, once per mutant) starts from the same
        # temporary folder as this run did, not from the one just removed.
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None


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
