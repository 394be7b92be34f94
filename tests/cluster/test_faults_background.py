"""The store's own background work on PostgreSQL (the shared queue's lease renewals and LISTEN, the
shared DashScope budget, the periodic release of holds left without a job) meets a database outage behind a loopback TCP proxy: it reports it to the
job runner's `Outage`, so the outage is logged once when it starts and once when it ends, not at
every retry, and the work goes on once the database is back."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from bot.jobs import JobRunner
from bot.jobs.outages import Outage
from bot.sandbox import Emulator
from bot.store import JobState, Store, StoreError, open_store
from bot.store.admin import get_meta
from bot.store.budget import SharedRate
from bot.store.postgres import PostgresDriver
from bot.store.store import ORPHAN_MARGIN
from bot.terminal import FileSurface
from bot.wan import WanClient
from tests.support.harness import API_KEY
from tests.support.store import eventually
from tests.support.tcpproxy import TcpProxy

G, U = 111, 501
RETRY_LINES = ("could not renew job leases", "could not LISTEN", "rate unavailable")


@pytest.fixture(name="proxy")
async def proxy_fixture(pg_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(pg_url)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


@pytest.fixture(name="far_store")
async def far_store_fixture(proxy: TcpProxy, pg_url: str) -> AsyncIterator[Store]:
    store = await open_store(proxy.rewrite(pg_url))
    yield store
    proxy.restore()
    await store.close()


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[int, int, list[str]]:
    """How many times an outage began and ended in the log, and any per-retry lines."""
    text = [r.getMessage() for r in caplog.records]
    began = sum("database unreachable" in line for line in text)
    ended = sum("database reachable again" in line for line in text)
    return began, ended, [line for line in text if any(k in line for k in RETRY_LINES)]


async def test_the_shared_budget_reports_an_outage_once(
    far_store: Store, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gate = far_store.shared_rate("outage", 10.0)
    assert isinstance(gate, SharedRate)
    outage = Outage()
    gate.outage = outage
    await gate()
    await proxy.cut(refuse_for=60)
    waiting = asyncio.ensure_future(gate())
    await eventually(lambda: outage.down, within=30)
    assert not waiting.done()  # no grant without the database
    proxy.restore()
    await asyncio.wait_for(waiting, 30)
    assert not outage.down and outage.outages == 1
    assert outage_lines(caplog) == (1, 1, [])


async def test_the_queue_s_renewals_and_listen_report_an_outage_once(
    far_store: Store, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    queue = far_store.job_queue(max_slots=2, ttl=1.5)
    outage = Outage()
    queue.outage = outage
    woken = asyncio.Event()
    await queue.start(woken.set, lambda job_id: None)
    try:
        job = await far_store.create_job(
            scope=G, channel_id=7, user_id=U, source="slash", prompt="p", state=JobState.QUEUED
        )
        await queue.push(job.id)
        assert (await queue.pop())[0] == job.id
        await proxy.cut(refuse_for=60)
        # Both the renewals (a lease is held) and the lost LISTEN connection meet the outage.
        await eventually(lambda: outage.down, within=30)
        proxy.restore()
        await eventually(lambda: not outage.down, within=30)
        await eventually(queue._listening, within=30)
        assert queue.lease(job.id) is not None  # renewed, not lost
    finally:
        await queue.close()
    assert outage.outages == 1
    assert outage_lines(caplog) == (1, 1, [])


async def test_a_statement_on_a_black_holed_connection_fails_instead_of_hanging(
    proxy: TcpProxy, pg_url: str
) -> None:
    """A network that loses the connection without a reset: the statement gives up after the
    pool's command timeout (a store error the loops retry), instead of waiting as long as TCP
    keeps trying."""
    driver = await PostgresDriver.open(
        proxy.rewrite(pg_url), busy_timeout=0.2, read_only=False, command_timeout=1.0
    )
    try:
        assert await driver.read(get_meta, "nothing") is None
        proxy.blackhole(120)
        with pytest.raises(StoreError):
            await asyncio.wait_for(driver.read(get_meta, "nothing"), 30)
    finally:
        proxy.restore()
        await asyncio.wait_for(driver.close(), 30)


async def test_the_orphan_sweep_reports_an_outage_once_and_goes_on(
    far_store: Store,
    proxy: TcpProxy,
    pg_url: str,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The runner's periodic release of holds left without a job, called by a background loop,
    never raises through a database outage (logged once as it starts and once as it ends) and
    releases the hold a dead process left once the database is back."""
    caplog.set_level(logging.INFO)
    long_ago = datetime.now(UTC) - ORPHAN_MARGIN - timedelta(minutes=1)
    dead = await open_store(pg_url, clock=lambda: long_ago)
    hold = await dead.reserve(G, U, 2)
    await dead.close()
    async with WanClient(API_KEY, emulator.base_url) as wan:
        runner = JobRunner(far_store, wan, FileSurface(out=io.StringIO()), orphan_sweep_every=0)
        await proxy.cut(refuse_for=60)
        for _ in range(3):
            await asyncio.wait_for(runner.release_orphans(), 30)
        assert runner.outage.down
        proxy.restore()

        async def released() -> bool:
            await runner.release_orphans()
            sql = "SELECT status FROM reservations WHERE id = $1"
            pool = far_store.driver.pool  # type: ignore[attr-defined]
            return await pool.fetchval(sql, hold.id) == "released"

        await eventually(released, within=30)
    assert not runner.outage.down and runner.outage.outages == 1
    assert outage_lines(caplog) == (1, 1, [])
