"""`python -m bot check` names the models the key may use, and explains a refused one in a line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import Emulator, EmulatorConfig
from tests.fake_discord import FakeDiscord
from tests.test_first_run_check import check, line
from tests.test_first_run_support import API_KEY, TOKEN


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as fd:
        fd.add_guild("Test server")
        yield fd


async def test_a_model_the_key_may_not_use_is_a_line_to_fix(
    discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    config = EmulatorConfig(api_keys={API_KEY}, denied_models={"wan2.5-t2i-preview"})
    async with Emulator(config) as emu:
        result = await check(discord_fake, emu, tmp_path)
        off = await check(discord_fake, emu, tmp_path, WAN_TEXT_TO_IMAGE="false")
        assert emu.created_count == 0  # both models checked without a task
    assert result.returncode == 1
    assert line(result, "models") == (
        "[FIX] models: the key may use wan2.5-i2i-preview (edits); wan2.5-t2i-preview "
        "(/wanimagine) refused: Model.AccessDenied: this key's workspace may not use the model: "
        "use a key of the default workspace or grant the model to this one, or set "
        "WAN_TEXT_TO_IMAGE=false to leave /wanimagine out"
    )
    assert off.returncode == 0, off.output
    assert line(off, "models") == (
        "[ok]  models: the key may use wan2.5-i2i-preview (edits); text-to-image is off "
        "(WAN_TEXT_TO_IMAGE=false), not checked"
    )


async def test_models_are_not_checked_with_a_refused_key(
    discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    async with Emulator(EmulatorConfig(api_keys={"sk-other"})) as emu:
        result = await check(discord_fake, emu, tmp_path)
    assert result.returncode == 1
    assert line(result, "dashscope key").startswith("[FIX]")
    assert line(result, "models") == "[--]  models: unknown until the DashScope key works"
