"""Polls placed by Wan's running times: learned times kept in the store for the next process, and
the plan that places each poll where the task's end is likely. The plan is checked as planned
(seconds to the next poll), not as timed, so a busy machine cannot change the verdict; the lag it
gives against the SDK is measured by bench/poll.py."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

from bot.jobs import JobRunner, running_times
from bot.jobs.running_times import RunningTimes
from bot.sandbox import Emulator
from bot.store import JobState, open_store
from bot.terminal import FileSurface
from bot.wan import PollConfig, WanClient
from bot.wan.durations import DurationModel
from bot.wan.scheduler import next_poll_gap
from tests.support.harness import API_KEY, FAST_WAN
from tests.support.store import eventually
from tests.unit.test_runner import ended, submitted


def gap(model: DurationModel, since_start: float, config: PollConfig | None = None) -> float:
    cfg = config or PollConfig()
    return next_poll_gap(
        model, since_start, cfg.poll_cost, cfg.min_interval, cfg.running_max_interval
    )


async def test_a_restarted_process_plans_its_polls_from_the_running_times_learned_before(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: the first tasks of a freshly started process are polled by what earlier ones
    taught, not only by the prior. Two jobs run to their end in one process; a second process on
    the same database, planning for Wan's own 30-120 s, starts knowing both running times as Wan
    reported them, and so plans its next poll of a task 0.1 s into its run within a second, where
    a process that knew nothing would wait its full floor."""
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        async with WanClient(API_KEY, emulator.base_url, transport="base64", **FAST_WAN) as wan:
            runner = JobRunner(store, wan, FileSurface(out=io.StringIO()), retry_delay=0.01)
            await runner.start()
            try:
                jobs = [await submitted(runner, tmp_path, user) for user in (1, 2)]
                for job in jobs:
                    assert (await ended(store, job)).state == JobState.DONE

                async def both_kept() -> bool:
                    row = await store.get_meta(running_times.KEY)
                    return row is not None and len(json.loads(row)["seconds"]) == 2

                await eventually(both_kept, within=10.0)
            finally:
                await runner.stop()
        ran = sorted(t.ended_at - t.scheduled_at for t in emulator.tasks.values())  # type: ignore[operator]
        options = {**FAST_WAN, "poll_config": PollConfig()}
        async with WanClient(API_KEY, emulator.base_url, transport="base64", **options) as wan:
            fresh = wan.scheduler.durations
            assert fresh.samples == [] and gap(fresh, 0.1) == PollConfig().running_max_interval
            runner = JobRunner(store, wan, FileSurface(out=io.StringIO()))
            await runner.start()
            await runner.stop()
            learned = sorted(wan.scheduler.durations.samples)
    finally:
        await store.close()
    assert len(learned) == 2
    assert all(abs(a - b) < 0.002 for a, b in zip(learned, ran, strict=True)), (learned, ran)
    assert gap(wan.scheduler.durations, 0.1) < 1.0


async def test_running_times_of_another_endpoint_or_an_unreadable_row_are_not_used(
    tmp_path: Path,
) -> None:
    """A sandbox's running times say nothing about the real service: times stored for another
    endpoint (or model) are not recalled, and the next one stored replaces them. A row that can't
    be read leaves the prior in place instead of stopping the start."""
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        row = {"endpoint": "http://127.0.0.1:9/api/v1", "model": "wan2.5-i2i-preview"}
        await store.set_meta(running_times.KEY, json.dumps({**row, "seconds": [0.3, 0.4]}))
        real = WanClient(API_KEY, "https://dashscope-intl.aliyuncs.com/api/v1")
        assert await RunningTimes(store, real).recall() == 0
        assert real.scheduler.durations.samples == []
        same = WanClient(API_KEY, row["endpoint"])
        assert await RunningTimes(store, same).recall() == 2
        other_model = WanClient(API_KEY, row["endpoint"], model="wan2.5-other")
        assert await RunningTimes(store, other_model).recall() == 0
        await store.set_meta(running_times.KEY, "{not json")
        assert await RunningTimes(store, same).recall() == 0
    finally:
        await store.close()


def test_a_well_known_end_is_asked_about_once_just_after_it() -> None:
    """Tasks that all run 40 s: asked about at the floor (every 5 s) while the end is far, then
    once or twice around 40 s (the model's resolution is a tenth of a second here), not at a rate
    spread over the run."""
    model = DurationModel()
    model.load([40.0] * 64)
    polls = [0.2]
    while polls[-1] < 40.0:
        polls.append(polls[-1] + gap(model, polls[-1]))
    assert 40.0 <= polls[-1] < 40.5
    far = [p for p in polls if p < 39.0]
    assert len(polls) - len(far) <= 2
    floor = PollConfig().running_max_interval
    assert all(abs(b - a - floor) < 1e-9 for a, b in itertools.pairwise(far))


def test_spread_running_times_are_polled_more_often_as_the_end_nears() -> None:
    """Tasks of 40-60 s: the gap shrinks through the window where they end, and grows again (to
    the floor) once a task has outrun them all."""
    model = DurationModel()
    model.load(40.0 + 20.0 * i / 63 for i in range(64))
    gaps = {e: gap(model, e) for e in (10.0, 42.0, 50.0, 58.0, 90.0)}
    assert gaps[10.0] == PollConfig().running_max_interval
    assert gaps[42.0] > gaps[50.0] > gaps[58.0]
    assert gaps[58.0] < 1.0 and gaps[90.0] > 2 * gaps[58.0]


def test_the_model_is_rebuilt_once_enough_has_been_learned_not_at_every_task() -> None:
    """Rebuilding the model costs milliseconds of the event loop: each of the first eight running
    times changes it, later ones only once they are an eighth of all it knows."""
    model = DurationModel()
    versions = []
    for i in range(8):
        model.observe(30.0 + i)
        model.hazard(30.0)
        versions.append(model.version)
    assert len(set(versions)) == 8
    model.load([40.0] * 56)
    model.hazard(30.0)
    full = model.version
    for _ in range(7):
        model.observe(50.0)
        model.hazard(30.0)
    assert model.version == full
    model.observe(50.0)
    assert model.hazard(50.0) > 0 and model.version == full + 1
