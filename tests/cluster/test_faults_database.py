"""The database goes away under a running bot (PostgreSQL behind a loopback TCP proxy that cuts,
refuses or black-holes its connections): the job runner keeps running, says so once, and every job
is finished once the database is back, each delivered and charged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.sandbox import FaultRule
from bot.store import JobState
from tests.support import pgcluster
from tests.support.first_run import base_env, run_cli
from tests.support.harness import World, wait_until
from tests.support.promises import (
    CREATE_PATH,
    gate,
    job_ends,
    settled_to,
    start_bot,
    told_privately,
)
from tests.support.store import pg_admin_dsn
from tests.support.tcpproxy import TcpProxy

OUTAGE_LOGGER = "bot.jobs.outages"


@pytest.fixture(name="proxy")
async def proxy_fixture(pg_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(pg_url)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


@pytest.fixture(name="pg_world")
async def pg_world_fixture(world: World, proxy: TcpProxy, pg_url: str) -> AsyncIterator[World]:
    world.env["DATABASE_URL"] = proxy.rewrite(pg_url)
    yield world
    proxy.restore()
    await world.close()  # before the database is dropped


async def queued(w: World, *job_ids: int) -> bool:
    jobs = [await w.bots[-1].store.get_job(job_id) for job_id in job_ids]
    return all(job is not None and job.state == JobState.QUEUED for job in jobs)


async def each_delivered_once(w: World) -> None:
    """Jobs 1-3, one per member, each done, posted once and charged one image."""
    for user in w.users:
        await w.result_message(user, timeout=30)
    for job_id in (1, 2, 3):
        await job_ends(w, job_id, JobState.DONE, timeout=30)
    for user in w.users:
        await settled_to(w, user.id, 1)
        assert len(w.results_for(user)) == 1


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """The outage log's lines: (starts, ends)."""
    lines = [r.getMessage() for r in caplog.records if r.name == OUTAGE_LOGGER]
    return (
        [line for line in lines if line.startswith("database unreachable")],
        [line for line in lines if line.startswith("database reachable again")],
    )


async def test_queued_jobs_start_after_the_database_comes_back(
    pg_world: World, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses every connection for a while as jobs wait in the queue: the dispatcher
    lives through it (it used to die of the first raw driver error, and no job started again),
    the outage is logged once when it starts and once when it ends, and every job is delivered
    once and charged once when the database is back."""
    caplog.set_level(logging.INFO)
    w = pg_world
    bot = await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.5))
    for user in w.users:
        await w.wanedit(user, f"edit for {user.name}")
    await w.emu.wait_for_task_count(1, timeout=10)
    await wait_until(lambda: queued(w, 2, 3))
    await proxy.cut(refuse_for=60)
    # The dispatcher polls the shared queue every second: it meets the refusals at its next look.
    await wait_until(lambda: bot.runner.outage.down, timeout=10)
    assert bot.runner.alive()
    proxy.restore()
    await each_delivered_once(w)
    assert w.emu.created_count == 3
    await wait_until(lambda: not bot.runner.outage.down)
    starts, ends = outage_lines(caplog)
    assert len(starts) == 1 and len(ends) == 1, (starts, ends)
    assert bot.runner.alive()


async def test_a_task_id_answered_while_the_database_is_away_is_recorded_later(
    pg_world: World, proxy: TcpProxy
) -> None:
    """Wan answers a create while the database refuses every connection: the task id is written
    once it is back (it used to fail the job with a refund while Wan ran and billed the task). The
    job is delivered once and charged once, and no second task is created."""
    w = pg_world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        bot = await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        await w.wanedit(w.alice, "answered into an outage")
        await create.wait_arrived()
        await proxy.cut(refuse_for=60)
        create.release()
        await w.emu.wait_for_task_count(1)
        await wait_until(lambda: bot.runner.outage.down, timeout=10)
        proxy.restore()
        await w.result_message(w.alice, timeout=30)
        job = await job_ends(w, 1, JobState.DONE, timeout=30)
        assert job.task_id in w.emu.tasks
        await settled_to(w, w.alice.id, 1)
        assert len(w.results_for(w.alice)) == 1
        assert w.emu.created_count == 1


async def test_a_job_left_by_a_long_outage_is_taken_up_when_the_database_returns(
    pg_world: World, proxy: TcpProxy
) -> None:
    """The database stays away longer than a write is retried: the job whose task Wan made is left
    as it is stored (SUBMITTED, never failed and refunded), its lease given back, and taken up
    again when the database returns; the id its create was answered with is recorded then, with no
    search of Wan's task list, and the result delivered and charged once."""
    w = pg_world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        bot = await start_bot(
            w, {"write_patience": 0.5}, DASHSCOPE_BASE_URL=g.base_url, WANBOT_LEASE_SECONDS="2"
        )
        await w.wanedit(w.alice, "answered into a long outage")
        await create.wait_arrived()
        await proxy.cut(refuse_for=60)
        create.release()
        await w.emu.wait_for_task_count(1)
        # Its task gave up on the database: the job is no longer running here, nor leased.
        await wait_until(
            lambda: 1 in bot.runner.creator.answered and not bot.runner.inflight.running
        )
        assert bot.runner.queue.lease(1) is None
        proxy.restore()
        await w.result_message(w.alice, timeout=30)
        job = await job_ends(w, 1, JobState.DONE, timeout=30)
        assert job.task_id in w.emu.tasks
        await settled_to(w, w.alice.id, 1)
        assert len(w.results_for(w.alice)) == 1
        assert w.emu.created_count == 1
        assert not [r for r in w.emu.request_log if r[1] == "GET" and r[2].endswith("/tasks")]


async def test_a_lost_lease_cancels_the_postponed_delivery(pg_world: World, pg_url: str) -> None:
    """A job whose delivery was postponed (its result links failing for now) is claimed by another
    process: this one drops everything it had scheduled for the job, so it never delivers it too,
    and everything it kept of it (its message's state, the count of postponements): memory does
    not grow with the jobs other processes take over."""
    w = pg_world
    w.emu.add_fault(FaultRule(op="download", status=500, times=100))
    bot = await w.start_bot(
        runner_options={"delivery_attempts": 1, "redeliver_after": 60.0},
        WANBOT_LEASE_SECONDS="1.5",
    )
    await w.wanedit(w.alice, "postponed")
    await wait_until(lambda: 1 in bot.runner.inflight.later, timeout=15)
    kept = bot.runner.surface.progress_messages._shown  # type: ignore[attr-defined]
    assert 1 in kept and 1 in bot.runner.outcomes.postponed
    con = await asyncpg.connect(pg_url)
    try:
        # What another process's claim writes (it found the lease run out during a stall of ours).
        await con.execute(
            "UPDATE jobs SET lease_owner = 'other', lease_epoch = lease_epoch + 1 WHERE id = 1"
        )
    finally:
        await con.close()
    await wait_until(lambda: bot.runner.queue.lease(1) is None, timeout=10)
    assert 1 not in bot.runner.inflight.later
    assert 1 not in bot.runner.inflight.running
    assert 1 not in kept and 1 not in bot.runner.outcomes.postponed


async def test_check_live_says_degraded_while_the_database_is_away(
    pg_world: World, proxy: TcpProxy, pg_url: str
) -> None:
    """`python -m bot check --live`, run where the bot runs (its DATABASE_URL), reports the outage
    as such, not as a setting to fix; once the database is back the bot's heartbeats say it is
    well again, by themselves."""
    w = pg_world
    bot = await w.start_bot()
    health = bot.get_cog("Health")
    assert health is not None
    await health.write()  # type: ignore[attr-defined]
    env = base_env(DATABASE_URL=proxy.rewrite(pg_url))
    await proxy.cut(refuse_for=60)
    result = await run_cli("check", "--live", env=env, cwd=w.db_path.parent)
    assert result.returncode == 1
    assert result.stdout.startswith("[DEGRADED] database unreachable"), result.output
    await health.write()  # type: ignore[attr-defined]
    assert bot.runner.outage.down  # the heartbeat could not be written: that is an outage too
    proxy.restore()
    await wait_until(lambda: not bot.runner.outage.down, timeout=15)
    result = await run_cli("check", "--live", env=env, cwd=w.db_path.parent)
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("[ok]")


@pytest.fixture(name="own_server")
async def own_server_fixture(world: World) -> AsyncIterator[tuple[str, Path]]:
    """A PostgreSQL server of this test's own, to stop and start under a running bot."""
    pg_admin_dsn()  # skips (or fails under CI) where the tests have no PostgreSQL
    dsn, folder = await asyncio.to_thread(pgcluster.start)
    try:
        yield dsn, folder
    finally:
        await world.close()  # the bots first: the server goes with its data
        await asyncio.to_thread(pgcluster.stop, folder)


async def test_jobs_go_on_after_the_server_stops_and_starts_again(
    world: World, own_server: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL itself goes down (a restart, a failover) with jobs waiting and one at Wan, and
    comes back once the runner has met the outage: the dispatcher, which used to end for good on
    the first connection error, starts the waiting jobs again by itself; each is delivered once."""
    caplog.set_level(logging.INFO)
    w = world
    dsn, folder = own_server
    w.env["DATABASE_URL"] = dsn
    bot = await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.5))
    for user in w.users:
        await w.wanedit(user, f"edit for {user.name}")
    await w.emu.wait_for_task_count(1, timeout=10)
    await wait_until(lambda: queued(w, 2, 3))
    await asyncio.to_thread(pgcluster.halt, folder)
    try:
        await wait_until(lambda: bot.runner.outage.down, timeout=10)
    finally:
        await asyncio.to_thread(pgcluster.resume, folder)
    await each_delivered_once(w)
    assert w.emu.created_count == 3 and bot.runner.alive()


async def test_a_request_while_the_database_is_away_is_told_so(
    pg_world: World, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """A /wanedit while the database refuses connections: the member is told the bot can't reach
    its database, nothing charged and no task created, with no traceback per request in the log
    (the outage is logged once); once it is back the same request goes through."""
    caplog.set_level(logging.INFO)
    w = pg_world
    await w.start_bot()
    await proxy.cut(refuse_for=60)
    ix = await w.wanedit(w.alice, "while it is away")
    text = await told_privately(ix)
    assert "can't reach its database" in text and "Nothing was charged" in text, text
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("cogs")]
    proxy.restore()
    await w.wanedit(w.alice, "once it is back")
    await w.result_message(w.alice)
    assert w.emu.created_count == 1
