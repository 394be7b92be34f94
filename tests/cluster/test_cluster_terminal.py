"""`python -m bot edit` on PostgreSQL (the shipped command, as a real subprocess) beside a bot on
the same database: its job takes one of the account's Wan slots like any job and is never run by
the bot, and a killed edit's job is ended, refunded, its slot freed, by whoever finds its process
gone: a bot process, or the next edit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bot.sandbox import Emulator
from bot.store import open_store
from bot.terminal import TERMINAL_SCOPE, TERMINAL_USER
from tests.support.cluster_support import max_in_flight
from tests.support.first_run import base_env, run_cli, running_cli
from tests.support.harness import API_KEY, World, png

LEASE = "1"  # seconds: a killed edit's hold runs out soon


@pytest.fixture(name="pg_world")
async def pg_world_fixture(world: World, pg_url: str) -> AsyncIterator[World]:
    # The account's Wan slots: one, for the bot and the terminal together.
    world.env.update(DATABASE_URL=pg_url, WAN_MAX_CONCURRENT_TASKS="1", WANBOT_LEASE_SECONDS=LEASE)
    yield world
    await world.close()  # before the database is dropped


def edit_env(emu: Emulator, pg_url: str) -> dict[str, str]:
    return base_env(
        DASHSCOPE_API_KEY=API_KEY,
        DASHSCOPE_BASE_URL=emu.base_url,
        DATABASE_URL=pg_url,
        WAN_MAX_CONCURRENT_TASKS="1",
        WANBOT_LEASE_SECONDS=LEASE,
        WAN_TASK_SECONDS="0.1-1",
    )


def photo(folder: Path, name: str = "photo.png") -> Path:
    path = folder / name
    path.write_bytes(png())
    return path


async def terminal_jobs(pg_url: str) -> list[asyncpg.Record]:
    con = await asyncpg.connect(pg_url)
    try:
        return list(
            await con.fetch(
                "SELECT id, state, error_code, lease_owner, lease_epoch, lease_expires_at"
                " FROM jobs WHERE source = 'terminal' ORDER BY id"
            )
        )
    finally:
        await con.close()


async def waited_for_a_slot(emu: Emulator, pg_url: str) -> None:
    """Until the edit's task reaches Wan, or its job has waited, held by its process, long enough
    for its queue to have looked for a free slot (it looks every second)."""
    first = None
    async with asyncio.timeout(20):
        while emu.created_count < 2:
            rows = await terminal_jobs(pg_url)
            if rows and rows[0]["lease_owner"] is not None:
                first = first or rows[0]["lease_expires_at"]
                if rows[0]["lease_expires_at"] - first >= timedelta(seconds=1.5):
                    return
            await asyncio.sleep(0.05)


async def terminal_quota(pg_url: str) -> tuple[int, int]:
    store = await open_store(pg_url)
    try:
        status = await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)
    finally:
        await store.close()
    return status.used, status.held


async def test_an_edit_beside_a_bot_waits_for_the_shared_slot_and_the_bot_never_runs_it(
    pg_world: World, pg_url: str, tmp_path: Path
) -> None:
    w = pg_world
    await w.start_bot()
    w.emu.hold("running")
    await w.wanedit(w.alice, "the member's edit")
    await w.emu.wait_for_task_count(1)
    env = edit_env(w.emu, pg_url)
    args = ("edit", str(photo(tmp_path)), "--prompt", "from the terminal")
    async with running_cli(*args, env=env, cwd=tmp_path) as edit:
        await edit.alongside(waited_for_a_slot(w.emu, pg_url))
        # The account's one slot is the member's: the edit waits for it.
        assert w.emu.created_count == 1, "the edit created its task beside the member's"
        [waiting] = await terminal_jobs(pg_url)
        assert waiting["state"] == "queued" and waiting["lease_epoch"] == 0
        w.emu.release("running")
        assert await edit.wait() == 0, edit.log
    assert edit.stdout.splitlines()[0] == str(tmp_path / "photo.wan-1.png")
    assert "waiting for a free Wan slot" in edit.log
    await w.result_message(w.alice)
    [done] = await terminal_jobs(pg_url)
    # Claimed once (by the edit), run to its end there; the bot never posted it anywhere.
    assert done["state"] == "done" and done["lease_epoch"] == 1
    channels = {r.path.split("/")[2] for r in w.fd.request_log if r.path.startswith("/channels/")}
    assert str(w.channel.id) in channels and "0" not in channels
    assert w.emu.created_count == 2 and max_in_flight(w.emu) == 1
    assert await terminal_quota(pg_url) == (1, 0)


async def test_a_killed_edits_slot_is_freed_by_the_bot_beside_it(
    pg_world: World, pg_url: str, tmp_path: Path
) -> None:
    """kill -9 while its task runs: the job keeps the account's one slot until the bot finds its
    process gone (its hold ran out), ends it, refunded, and the member's job can start."""
    w = pg_world
    await w.start_bot()
    w.emu.hold("running")
    env = edit_env(w.emu, pg_url)
    args = ("edit", str(photo(tmp_path)), "--prompt", "killed mid-task")
    async with running_cli(*args, env=env, cwd=tmp_path) as edit:
        await edit.wait_for_line("Wan is editing")
        edit.process.kill()
        await edit.process.wait()
    w.emu.release("running")
    await w.wanedit(w.alice, "after the killed edit")
    await w.result_message(w.alice, timeout=30)
    [ended] = await terminal_jobs(pg_url)
    assert ended["state"] == "failed" and ended["error_code"] == "Interrupted"
    assert await terminal_quota(pg_url) == (0, 0)
    assert w.emu.created_count == 2 and max_in_flight(w.emu) == 1


async def test_the_next_edit_ends_a_killed_edits_job_and_takes_its_slot(
    emulator: Emulator, pg_url: str, tmp_path: Path
) -> None:
    """No bot running: the next edit ends the killed one's job once its hold ran out (while it
    waits for the slot that job held), then runs."""
    emulator.hold("running")
    env = edit_env(emulator, pg_url)
    first = ("edit", str(photo(tmp_path, "first.png")), "--prompt", "killed mid-task")
    async with running_cli(*first, env=env, cwd=tmp_path) as edit:
        await edit.wait_for_line("Wan is editing")
        edit.process.kill()
        await edit.process.wait()
    emulator.release("running")
    second = ("edit", str(photo(tmp_path, "second.png")), "--prompt", "the next one")
    result = await run_cli(*second, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.output
    assert (tmp_path / "second.wan-1.png").is_file()
    killed, next_one = await terminal_jobs(pg_url)
    assert killed["state"] == "failed" and killed["error_code"] == "Interrupted"
    assert next_one["state"] == "done"
    assert await terminal_quota(pg_url) == (1, 0)
