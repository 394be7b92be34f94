"""One bot on PostgreSQL end to end: the shared queue (claims, slots, positions, cancel) and the
shared DashScope budget behind the real WanBot, against the fake Discord and the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bot.sandbox import FaultRule
from bot.store import JobState, open_store
from bot.store.store import ORPHAN_MARGIN
from tests.e2e.test_wanedit_e2e import private_text, settled_to
from tests.support.harness import World, embed_text, wait_until
from tests.support.promises import CREATE_PATH, gate, job_ends, start_bot


@pytest.fixture(name="pg_world")
async def pg_world_fixture(world: World, pg_url: str) -> AsyncIterator[World]:
    world.env["DATABASE_URL"] = pg_url
    yield world
    await world.close()  # before the database is dropped


async def test_jobs_run_through_the_database_queue(pg_world: World) -> None:
    """On PostgreSQL the bot's jobs wait in the jobs table, start within the Wan slots, show their
    place in the shared queue, and are each delivered once and charged once."""
    w = pg_world
    bot = await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    assert bot.store.shared and bot.runner.queue.shared
    w.emu.add_fault(FaultRule(op="task", running_seconds=1))
    first = await w.wanedit(w.alice, "first")
    await w.emu.wait_for_task_count(1, timeout=5)
    second = await w.wanedit(w.bob, "second")
    queued = await second.wait_original(lambda m: "Queued" in embed_text(m))
    assert "position #1" in embed_text(queued)
    await w.result_message(w.alice)
    await w.result_message(w.bob)
    assert first is not None
    await settled_to(w, w.alice.id, 1)
    await settled_to(w, w.bob.id, 1)
    assert w.emu.created_count == 2
    assert len(w.results_for(w.alice)) == len(w.results_for(w.bob)) == 1


async def test_cancel_while_waiting_in_the_database_queue(pg_world: World) -> None:
    """Cancel of a job waiting in the shared queue: it never reaches Wan, nothing is charged."""
    w = pg_world
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.emu.add_fault(FaultRule(op="task", running_seconds=3))
    await w.wanedit(w.bob, "slow one")
    await w.emu.wait_for_task_count(1, timeout=5)
    second = await w.wanedit(w.alice, "queued one")
    queued = await second.wait_original(lambda m: "Queued" in embed_text(m))
    button = queued["components"][0]["components"][0]
    click = await w.fd.click(w.channel, w.alice, queued, button["custom_id"])
    await click.wait_for(private_text)
    assert "Cancelled" in private_text(click)
    await settled_to(w, w.alice.id, 0)
    await wait_until(lambda: w.results_for(w.bob), timeout=10)
    assert w.emu.created_count == 1


async def test_a_job_left_validating_is_failed_and_refunded_on_postgresql(
    pg_world: World, pg_url: str
) -> None:
    """What sqlite's start-up does for a job stuck VALIDATING (its process stopped before queueing
    it), a PostgreSQL bot does at takeover: the job is claimed with a lease, failed with its quota
    back, and the member is told, never left "queued" for ever. Nothing reaches Wan."""
    w = pg_world
    # Written a minute ago by a process that stopped: older than any lease.
    long_ago = datetime.now(UTC) - timedelta(minutes=1)
    store = await open_store(pg_url, clock=lambda: long_ago)
    try:
        reservation = await store.reserve(w.guild.id, w.alice.id, 1)
        job = await store.create_job(
            scope=w.guild.id,
            guild_id=w.guild.id,
            channel_id=w.channel.id,
            user_id=w.alice.id,
            source="slash",
            prompt="never queued",
            reservation_id=reservation.id,
        )
    finally:
        await store.close()
    assert job.state == JobState.VALIDATING
    bot = await w.start_bot()

    async def failed() -> bool:
        row = await bot.store.get_job(job.id)
        return row is not None and row.state == JobState.FAILED

    await wait_until(failed, timeout=10)
    row = await bot.store.get_job(job.id)
    assert row is not None and row.error_code == "Interrupted"
    assert row.error_message == "The bot restarted before this job was queued. Nothing was charged."
    await settled_to(w, w.alice.id, 0)
    assert w.emu.created_count == 0


async def test_a_create_cut_short_is_adopted_by_the_process_that_takes_over(
    pg_world: World,
) -> None:
    """On PostgreSQL a job whose process stopped during its create call (SUBMITTED, no task id) is
    taken over by another process, which finds the task the call made in Wan's task list, adopts
    it under its own lease and delivers it once, charging the image delivered. No second create."""
    w = pg_world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        first = await start_bot(w, {"shutdown_grace": 0.0}, DASHSCOPE_BASE_URL=g.base_url)
        await w.wanedit(w.alice, "sent as the process stops")
        await create.wait_arrived()
        await w.stop_bot(first)
        create.release()  # the request reaches Wan after its process is gone
        await w.emu.wait_for_task_count(1)
        await start_bot(
            w, {"reconcile_margin": 0.5}, {"request_timeout": 1.0}, DASHSCOPE_BASE_URL=g.base_url
        )
        await w.result_message(w.alice)
        job = await job_ends(w, 1, JobState.DONE)
        assert job.task_id in w.emu.tasks
        await settled_to(w, w.alice.id, 1)
        assert len(w.results_for(w.alice)) == 1
        assert g.creates_passed() == 1 and w.emu.created_count == 1


async def test_a_task_answered_after_its_lease_was_lost_is_followed_by_the_new_owner(
    pg_world: World, pg_url: str
) -> None:
    """Two creates answered after their process lost the jobs' leases (each a rival of the other
    in Wan's task list, so neither could be adopted from it): the task ids Wan returned are
    recorded for the process that took the jobs over, which delivers each once. No second create."""
    w = pg_world
    async with gate(w) as g:
        creates = g.hold("POST", CREATE_PATH, times=2)
        await start_bot(w, DASHSCOPE_BASE_URL=g.base_url, WANBOT_LEASE_SECONDS="60")
        await w.wanedit(w.alice, "first")
        await w.wanedit(w.bob, "second")
        await creates.wait_arrived()
        # Another process takes the jobs while their creates are on their way.
        con = await asyncpg.connect(pg_url)
        try:
            await con.execute(
                "UPDATE jobs SET lease_owner = 'another', lease_epoch = lease_epoch + 1,"
                " lease_expires_at = clock_timestamp()"
            )
        finally:
            await con.close()
        creates.release()
        await w.emu.wait_for_task_count(2)
        await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        # Generous: if the new owner looks before an id is recorded, it waits out the create's
        # window in Wan's task list first (its re-reads then find the id).
        await w.result_message(w.alice, timeout=60)
        await w.result_message(w.bob, timeout=60)
        for job_id in (1, 2):
            job = await job_ends(w, job_id, JobState.DONE)
            assert job.task_id in w.emu.tasks
        await settled_to(w, w.alice.id, 1)
        await settled_to(w, w.bob.id, 1)
        assert len(w.results_for(w.alice)) == len(w.results_for(w.bob)) == 1
        assert g.creates_passed() == 2 and w.emu.created_count == 2


async def test_a_running_bot_releases_a_dead_process_hold_without_a_restart(
    pg_world: World, pg_url: str
) -> None:
    """A process that died between reserving and storing its job left its hold behind. A running
    bot releases it once it is older than `ORPHAN_MARGIN`, without a restart; a hold younger than
    that (its process may still be storing the job) stays held."""
    w = pg_world
    bot = await w.start_bot(runner_options={"orphan_sweep_every": 0.1})
    holds = {}
    # The young one first: the sweep that releases the old one has seen it too.
    for name, age in (
        ("young", timedelta(minutes=2)),
        ("old", ORPHAN_MARGIN + timedelta(minutes=1)),
    ):
        at = datetime.now(UTC) - age
        dead = await open_store(pg_url, clock=lambda at=at: at)
        try:
            holds[name] = (await dead.reserve(w.guild.id, w.alice.id, 2)).id
        finally:
            await dead.close()

    async def status(name: str) -> str:
        sql = "SELECT status FROM reservations WHERE id = $1"
        return await bot.store.driver.pool.fetchval(sql, holds[name])  # type: ignore[attr-defined]

    async def old_released() -> bool:
        return await status("old") == "released"

    await wait_until(old_released, timeout=20, interval=0.1)
    assert await status("young") == "held"
