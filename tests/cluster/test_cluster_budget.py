"""The DashScope query/create budget shared by processes on PostgreSQL (`bot.store.budget`):
takers on several pools at once never get more than the budget in any second, and the poll
schedulers of several processes plan within it together."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from bot.sandbox import Emulator
from bot.store import Store, open_store
from bot.store.budget import JITTER, SharedRate, rate_for
from bot.wan import PollConfig, TaskStatus
from tests.support.tcpproxy import TcpProxy
from tests.support.wan import edit, emulator_config, make_client


@pytest.fixture(name="pools")
async def pools_fixture(pg_url: str) -> AsyncIterator[list[Store]]:
    opened = [await open_store(pg_url) for _ in range(3)]
    assert all(s.shared for s in opened)
    yield opened  # type: ignore[misc]
    for s in opened:
        await s.close()


def most_in_a_second(times: list[float], window: float = 1.0) -> int:
    """The most of `times` in any half-open window [t, t + window) (windows start at an event)."""
    times = sorted(times)
    most = j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        most = max(most, j - i)
    return most


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 10, 20, 50])
def test_the_rate_leaves_room_for_arrival_jitter(limit: int) -> None:
    """Grants `1/rate` apart whose trips to Wan vary by up to JITTER s arrive at most `limit` in a
    second: any window of 1 + JITTER s holds at most ceil((1 + JITTER) * rate) grants."""
    rate = rate_for(limit)
    assert math.ceil((1 + JITTER) * rate) <= limit
    assert rate > 0.7 * limit  # and not needlessly slow


async def two_takers_each(gates: list[SharedRate]) -> tuple[list[float], list[float]]:
    """Two takers per gate, five grants each: the grants' times on the database's clock, and
    when this process saw them."""
    on_db: list[float] = []
    seen: list[float] = []

    async def taker(gate: SharedRate) -> None:
        for _ in range(5):
            await gate()
            assert gate.last_grant is not None
            on_db.append(gate.last_grant)
            seen.append(time.monotonic())

    await asyncio.gather(*(taker(g) for g in gates for _ in range(2)))
    return on_db, seen


async def test_concurrent_takers_on_three_pools_never_exceed_the_budget(
    pools: list[Store],
) -> None:
    """Six takers on three pools (three processes) hammering one limit of 10/s: on the database's
    clock every two grants are at least 1/rate apart (so no second ever holds more than
    ceil(rate) of them), and as this process saw them no sliding second holds more than 10."""
    gates = [p.shared_rate("query", 10.0) for p in pools]
    rate = gates[0].rate
    on_db, seen = await two_takers_each(gates)
    assert len(on_db) == 30 == sum(g.taken for g in gates)
    on_db.sort()
    gaps = [b - a for a, b in itertools.pairwise(on_db)]
    assert min(gaps) >= 1.0 / rate - 1e-6
    assert most_in_a_second(on_db) <= math.ceil(rate)
    assert most_in_a_second(seen) <= 10


async def test_a_slow_take_is_not_used(pools: list[Store]) -> None:
    """A grant whose round trip took `MAX_TAKE_LAG` longer than the quickest recent one is thrown
    away, not sent: its moment is unknown, so using it could bunch with the next grants."""
    store = pools[0]
    # The row's creation takes 1 ms, the first take's round trip 5 s, every later one 1 ms.
    readings = iter([0.0, 0.001, 1.0, 6.0])
    later = itertools.count(10_000)

    def clock() -> float:
        reading = next(readings, None)
        return reading if reading is not None else next(later) / 1000

    gate = SharedRate(store.driver.pool, "slow", 50.0, clock=clock)
    await gate()
    assert (gate.discarded, gate.taken) == (1, 1)


async def test_processes_far_from_the_database_still_take_within_the_budget(pg_url: str) -> None:
    """Three processes with 300 ms added to every round trip to PostgreSQL (a database in another
    region, or a slow network): every taker still gets its grants, and no second holds more than
    the limit. A constant round trip says nothing about a grant's freshness; only its excess over
    the quickest does."""
    parts = urlsplit(pg_url)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        far = [await open_store(proxy.rewrite(pg_url)) for _ in range(3)]
        try:
            proxy.latency = 0.15  # each way
            gates = [s.shared_rate("far", 10.0) for s in far]
            rate = gates[0].rate  # type: ignore[attr-defined]
            on_db, seen = await asyncio.wait_for(two_takers_each(gates), 60)  # type: ignore[arg-type]
        finally:
            for s in far:
                await s.close()
    assert len(on_db) == 30 == sum(g.taken for g in gates)  # type: ignore[attr-defined]
    on_db.sort()
    assert min(b - a for a, b in itertools.pairwise(on_db)) >= 1.0 / rate - 1e-6
    assert most_in_a_second(seen) <= 10


async def test_the_budget_survives_an_old_row(pools: list[Store]) -> None:
    """A row left by an earlier version (or an idle hour) grants at once and then spaces again:
    the next take books the slot one 1/rate later."""
    pool = pools[0].driver.pool
    await pool.execute(
        "INSERT INTO wan_buckets (name, tokens, stamp) VALUES ('old', 1, 0)"
        " ON CONFLICT (name) DO UPDATE SET stamp = 0"
    )
    gate = SharedRate(pool, "old", 5.0)
    first = await gate.take()
    assert first is not None and first[0] == 0.0 and gate.taken == 1
    second = await gate.take()
    assert gate.taken == 2 and second is not None and 0.0 < second[0] <= 0.2


async def test_processes_share_the_budget_and_ask_each_task_about_once_at_its_end(
    pools: list[Store],
) -> None:
    """Two processes' poll schedulers on one shared query budget: together never more than 10
    queries in any second at Wan, each plans within the whole budget (the database arbitrates,
    no per-task share), every task is seen ending, and once the running time is learned a task
    created into a free slot is asked about about once, at its end: no poll just to see it
    start, none spread over its run (with a per-task share of the budget each took two)."""
    async with Emulator(emulator_config(running_seconds=1.0, max_running=5)) as emu:
        # The bot's plan for WAN_TASK_SECONDS=0.2-3: a running task's floor is one poll in 3 s.
        poll = PollConfig.for_tasks(0.2, 3.0)
        clients = [
            make_client(emu.base_url, query_gate=p.shared_rate("query", 10.0), poll_config=poll)
            for p in pools[:2]
        ]
        planned: list[float] = []
        rounds: list[list[str]] = []
        try:
            for client in clients:
                await client.start()
            # Five rounds of five tasks (three in one process, two in the other): the first ones
            # teach each process the running time, the last is counted.
            for _ in range(5):
                tasks = [
                    (client, (await client.create_task(edit())).task_id)
                    for client, n in zip(clients, (3, 2), strict=True)
                    for _ in range(n)
                ]
                waits = [asyncio.ensure_future(c.wait(t, timeout=30)) for c, t in tasks]
                while not all(w.done() for w in waits):
                    now = time.monotonic()
                    planned += [sum(c.scheduler.rates(now).values()) for c in clients]
                    await asyncio.sleep(0.05)
                assert all(w.result().status == TaskStatus.SUCCEEDED for w in waits)
                rounds.append([t for _c, t in tasks])
        finally:
            for client in clients:
                await client.close()
    budget = clients[0].limiter.gate_rate  # type: ignore[attr-defined]
    assert planned and max(planned) <= 0.9 * budget + 1e-6
    queries = [(t, path) for t, _m, path, _s in emu.request_log if "/tasks" in path]
    assert most_in_a_second([t for t, _ in queries]) <= 10
    last = rounds[-1]
    polls = [sum(1 for _, path in queries if path.endswith(task_id)) for task_id in last]
    assert all(n >= 1 for n in polls)
    assert sum(polls) / len(polls) <= 1.6, polls
