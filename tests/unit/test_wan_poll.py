"""The shared poll scheduler: stays inside the query budget with many tasks, spends it on the tasks
about to finish, and notices completion quickly. Measured on the emulator's own request log."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
import zlib

import pytest

from bot.sandbox import EmulatedTask, Emulator
from bot.wan import PollConfig, TaskResult, TaskStatus
from bot.wan.durations import DurationModel
from bot.wan.ratelimit import RateLimiter
from bot.wan.scheduler import _fit
from tests.support.wan import (
    edit,
    emulator_config,
    eventually,
    make_client,
    peak_rate,
    requests_to,
)


def spread_running(lo: float, hi: float):  # type: ignore[no-untyped-def]
    """Running time per task, spread over [lo, hi] and fixed by its id."""

    def running(task: EmulatedTask) -> float:
        return lo + (hi - lo) * (zlib.crc32(task.task_id.encode()) % 1000) / 999

    return running


async def test_fifty_tasks_stay_inside_the_budget_and_finish_quickly() -> None:
    """Fifty tasks through one client: never above the query budget, every task seen final, and
    the budget goes to the RUNNING tasks rather than the queued ones. Counted in polls, not
    seconds, so a busy machine cannot change the verdict (the latencies are in bench/timing.py)."""
    qps = 20.0
    config = emulator_config(
        max_running=5, submit_rps=None, query_qps=None, running_seconds=spread_running(0.3, 0.6)
    )
    poll = PollConfig(prior=(0.3, 0.6), running_max_interval=1.0, pending_max_interval=5.0)
    async with (
        Emulator(config) as emu,
        # The emulator has no create limit here, so neither does the client: creates are instant.
        make_client(emu.base_url, query_qps=qps, poll_config=poll, submit_rps=1000.0) as client,
    ):
        emu.hold("running")  # five RUNNING, forty-five queued PENDING, until the polls are counted
        created = [await client.create_task(edit()) for _ in range(50)]
        seen_running: set[str] = set()
        known: dict[str, float] = {}

        async def follow(task_id: str) -> TaskResult:
            def on_update(update: TaskResult) -> None:
                if update.status is TaskStatus.RUNNING:
                    seen_running.add(task_id)

            result = await client.wait(task_id, on_update=on_update, timeout=120)
            known[task_id] = time.time()
            return result

        following = asyncio.gather(*(follow(c.task_id) for c in created))
        running = {t.task_id for t in emu.tasks.values() if t.status.value == "RUNNING"}
        assert len(running) == 5
        await eventually(lambda: seen_running >= running, within=30)
        mark = len(emu.request_log)

        def polls_since_mark() -> list[str]:
            return [r[2].rsplit("/", 1)[1] for r in emu.request_log[mark:] if r[1] == "GET"]

        await eventually(lambda: len(polls_since_mark()) >= 60, within=60)
        counted = polls_since_mark()[:60]
        emu.release("running")
        results = await following

    assert all(r.status is TaskStatus.SUCCEEDED for r in results)
    polls = requests_to(emu, "GET", "/tasks/")
    # Never above the budget in any 1-second window, as the server counts them.
    assert peak_rate([p[0] for p in polls]) <= qps
    # Every task was seen final, none before it ended.
    assert known.keys() == emu.tasks.keys()
    assert all(known[t] >= emu.tasks[t].ended_at for t in known)  # type: ignore[operator]
    # While five ran and forty-five waited, each running task got far more polls than each
    # queued one.
    per_running = sum(1 for t in counted if t in running) / 5
    per_pending = sum(1 for t in counted if t not in running) / 45
    assert per_running > 4 * per_pending, (per_running, per_pending)


async def test_scheduler_learns_running_times() -> None:
    """A client whose prior is far off (30-120 s) still adapts after a few tasks."""
    async with (
        Emulator(emulator_config(running_seconds=0.3)) as emu,
        make_client(emu.base_url, poll_config=PollConfig(running_max_interval=1.0)) as client,
    ):
        for _ in range(6):
            task_id = (await client.create_task(edit())).task_id
            await client.wait(task_id, timeout=30)
        samples = client.scheduler.durations.samples
        model = client.scheduler.durations
    # A sample is observed after the task ended, so never shorter than its 0.3 s; how much
    # longer depends on the machine's load (the lag numbers are in bench/timing.py).
    assert len(samples) == 6 and all(s >= 0.3 - 0.01 for s in samples)
    # What was learnt: completion expected around the observed times, not at the prior's 30-120 s.
    typical = statistics.median(samples)
    assert model.hazard(typical) > 10 * model.hazard(60.0)


async def test_rate_limiter_never_exceeds_its_rate() -> None:
    """Promise: DashScope never sees more queries than its rate. The grants themselves are timed
    (the limiter's gate runs at each grant, on its clock), not when each waiter woke afterwards:
    on a busy machine a late wake-up followed by a prompt one looks like a burst that never was."""
    stamps: list[float] = []

    async def granted() -> None:
        stamps.append(time.monotonic())

    limiter = RateLimiter(50.0, gate=granted)
    await asyncio.gather(*(limiter.acquire() for _ in range(120)))
    assert len(stamps) == 120 and peak_rate(stamps) <= 50
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.02 - 1e-9  # evenly spaced, no bursts
    limiter.pause(0.2)
    before = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - before >= 0.19


def test_fit_scales_by_sqrt_hazard_inside_the_budget() -> None:
    want = {"a": 8.0, "b": 2.0, "c": 0.1}
    floor = {"a": 0.2, "b": 0.2, "c": 0.2}
    rates = _fit(want, floor, hi=5.0, budget=4.0)
    assert sum(rates.values()) == pytest.approx(4.0, rel=1e-3)
    assert rates["c"] == 0.2 and rates["a"] == pytest.approx(4 * rates["b"], rel=1e-3)
    roomy = _fit(want, floor, hi=5.0, budget=100.0)
    assert roomy == {"a": 5.0, "b": 2.0, "c": 0.2}
    starved = _fit(want, {k: 2.0 for k in want}, hi=5.0, budget=3.0)
    assert sum(starved.values()) == pytest.approx(3.0) and len(set(starved.values())) == 1


def test_duration_model_concentrates_on_likely_completion() -> None:
    model = DurationModel((30.0, 120.0))
    # Before any sample: the prior says nothing ends in the first seconds.
    assert model.hazard(5.0) < model.hazard(100.0) / 10
    rng = random.Random(1)
    for _ in range(30):
        model.observe(rng.uniform(9.0, 11.0))
    assert model.hazard(10.0) > 20 * model.hazard(3.0)
    # Overdue tasks keep a finite, slowly falling hazard (a heavy tail), never zero.
    assert 0 < model.hazard(200.0) < model.hazard(20.0)
    assert model.hazard(2000.0) > 0


class _OpenGate:
    """A shared budget (as on PostgreSQL) that always has room: the presumption is made there."""

    rate = 10.0

    async def __call__(self) -> None:
        return None


async def test_a_task_presumed_started_but_waiting_at_wan_is_seen_waiting_then_followed() -> None:
    """A task created while this client has a free slot is planned as running without a poll to
    see it start; if Wan holds it PENDING after all (the account's slot taken by something this
    client doesn't know of), the first answer saying so ends that presumption: it is planned as
    waiting again, and still seen starting and ending."""
    config = emulator_config(max_running=1, running_seconds=0.3)
    async with (
        Emulator(config) as emu,
        make_client(emu.base_url) as other,
        make_client(emu.base_url, query_gate=_OpenGate()) as client,
    ):
        emu.hold("running")
        blocker = (await other.create_task(edit())).task_id
        await eventually(lambda: emu.tasks[blocker].status.value == "RUNNING")
        task_id = (await client.create_task(edit())).task_id
        seen: list[TaskStatus] = []
        waiting = asyncio.ensure_future(
            client.wait(task_id, on_update=lambda u: seen.append(u.status), timeout=30)
        )
        await eventually(lambda: TaskStatus.PENDING in seen, within=10)
        watch = client.scheduler._watches[task_id]
        assert watch.presumed_start is None
        emu.release("running")
        result = await waiting
        await other.wait(blocker, timeout=30)
    assert result.status is TaskStatus.SUCCEEDED
    assert seen[0] is TaskStatus.PENDING and seen[-1] is TaskStatus.SUCCEEDED
