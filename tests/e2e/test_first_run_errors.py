"""The start-up mistakes a new admin makes end in one clear line and exit status 1, not a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_discord import FakeDiscord
from tests.support.first_run import TOKEN, base_env, run_cli


@pytest.fixture
async def fd() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as fake:
        yield fake


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


async def test_wrong_token(fd: FakeDiscord, tmp_path: Path) -> None:
    env = base_env(
        DISCORD_TOKEN="a-token-from-somewhere-else",
        DISCORD_API_BASE=fd.api_base,
        DATABASE_URL=f"sqlite:///{tmp_path / 'wanbot.db'}",
    )
    result = await run_cli("--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.endswith(
        "Discord refused the token: copy it again from the developer portal (Bot tab) into "
        "DISCORD_TOKEN."
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "a-token-from-somewhere-else" not in result.output
    assert not fd.identify_payloads


async def test_unwritable_database(fd: FakeDiscord, tmp_path: Path) -> None:
    (tmp_path / "wanbot.sandbox.db").mkdir()  # where the sandbox's database file should go
    env = base_env(DISCORD_TOKEN=TOKEN, DISCORD_API_BASE=fd.api_base)
    result = await run_cli("--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "Database: Cannot write the database" in line
    assert "Traceback" not in result.stderr, result.stderr


async def test_discord_unreachable(tmp_path: Path) -> None:
    # A port nothing listens on: the fake was started and closed again.
    async with FakeDiscord(token=TOKEN) as gone:
        base = gone.api_base
    env = base_env(
        DISCORD_TOKEN=TOKEN, DISCORD_API_BASE=base, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}"
    )
    result = await run_cli("--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "Could not reach Discord" in line and "DISCORD_API_BASE" in line
    assert "Traceback" not in result.stderr, result.stderr
