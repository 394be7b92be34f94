"""Polls per task and detection lag of our poll scheduler against the official SDK's
`ImageSynthesis.wait`, on tasks of 20 s to 2 minutes, for a freshly started process and one that has
been running.

First the trade-off curve the poll plan is chosen from (computed from the scheduler's own plan,
bench/_poll_curve.py). Then, end to end over HTTP, for each range of running times (one deployment's
tasks: 20-30 s, 40-60 s, 80-120 s; and all of them mixed, 20-120 s), each on its own emulator with
the real account's limits (5 tasks running at once, 5 creates/s, 20 queries/s) and the same tasks
for every client, at most 5 at a time so that Wan never queues them:

- `SDK`:  each task created with `ImageSynthesis.async_call` and waited on with `ImageSynthesis.wait`
          in its own thread (what the official samples do); three times as many tasks over the
          same range, for a steadier mean lag (where each end falls between its 5 s polls).
- `new`:  our `WanClient.wait` in a process that has learned nothing (the prior alone); each
          running time it learns is kept in a sqlite store as the bot keeps it.
- `warm`: the same client, the same tasks again, now knowing their running times.
- `cold`: a freshly started client on that store (a restart), beside `warm`.

Detection lag = when the client learns the final status (wall clock) - the emulator's end time.
Targets (exit status 1 if missed), for each deployment, cold and warm: polls per task at most twice
the SDK's, mean lag at most a quarter of the SDK's. The mixed range is shown beside them with the
least any schedule could poll there (it sits at the edge of what is possible, see docs/polling.md).

Budget: 50 tasks in flight through one client whose query budget (`--budget-qps`, 3) is below what
its plan would ask, with the bot's `RateLimiter` and with `aiolimiter.AsyncLimiter` as a bucket and
as a spaced limiter: the server must never see more queries in a second than the budget.

    python bench/poll.py [--tasks 10] [--qps 10] [--budget-qps 3] [--no-curve]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dashscope
from _poll_curve import DEPLOYMENTS, MIXED, bound, spread, table
from aiolimiter import AsyncLimiter
from dashscope import ImageSynthesis
from PIL import Image

from bot.jobs.running_times import RunningTimes
from bot.sandbox import Emulator, EmulatorConfig
from bot.store import open_store
from bot.wan import EditRequest, InputImage, PollConfig, WanClient
from bot.wan.ratelimit import Limiter, RateLimiter

KEY = "sk-bench"
MODEL = "wan2.5-i2i-preview"
TASK_PATH = re.compile(r"/tasks(/|$)")
SUBMIT_INTERVAL = 0.25  # 4 creates/s, under the 5/s limit, for every client alike
AT_ONCE = 5  # the account's running tasks: more would wait PENDING at Wan
# The SDK's mean lag rests on where each end falls between its polls 5 s apart: it runs three times
# the tasks (spread over the same range, on three accounts' worth of slots) for a steadier baseline.
SDK_TASKS = 3
POLLS_TARGET = 2.0
LAG_TARGET = 0.25


@dataclass
class Run:
    name: str
    lags: list[float] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    polls: float = 0.0

    def count(self, emu: Emulator) -> None:
        counts = Counter(path.rsplit("/", 1)[-1] for _, m, path, _ in emu.request_log if m == "GET")
        self.polls = statistics.fmean(counts[t] for t in self.task_ids) if self.task_ids else 0.0

    @property
    def lag(self) -> float:
        return statistics.fmean(self.lags) if self.lags else float("nan")


class AioLimiter:
    """`aiolimiter.AsyncLimiter` behind the client's `Limiter` interface, with the same pause."""

    def __init__(self, rate: float, *, spaced: bool) -> None:
        self.rate = rate
        self._bucket = AsyncLimiter(1, 1.0 / rate) if spaced else AsyncLimiter(rate, 1.0)
        self._paused_until = 0.0

    async def acquire(self) -> None:
        delay = self._paused_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await self._bucket.acquire()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


LIMITERS = {
    "RateLimiter (ours)": lambda qps: RateLimiter(qps),
    "aiolimiter bucket": lambda qps: AioLimiter(qps, spaced=False),
    "aiolimiter spaced": lambda qps: AioLimiter(qps, spaced=True),
}


def input_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (512, 512), (90, 140, 200)).save(buf, "PNG")
    return buf.getvalue()


def emulator_config(durations: Sequence[float]) -> EmulatorConfig:
    def running(task: object) -> float:
        match = re.search(r"bench task (\d+)", task.params.prompt)  # type: ignore[attr-defined]
        return durations[int(match.group(1))] if match else 30.0

    return EmulatorConfig(
        api_keys={KEY},
        pending_seconds=0.05,
        running_seconds=running,
        max_running=5,
        submit_rps=5.0,
        query_qps=20.0,
        fetch_inputs=False,
        result_area=384 * 384,
    )


def peak_rate(times: Sequence[float], window: float = 1.0) -> int:
    """Most requests in any half-open window (t - window, t]."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run_ours(
    emu: Emulator,
    client: WanClient,
    durations: Sequence[float],
    run: Run,
    *,
    kept: RunningTimes | None = None,
    at_once: int = AT_ONCE,
) -> None:
    """Create and wait on every task, `at_once` at a time; the running times learned are `kept`
    as the job runner keeps them. Fills `run` as tasks finish."""
    image = InputImage(data=input_png(), mime="image/png")
    slots = asyncio.Semaphore(at_once)

    async def one(i: int) -> None:
        await asyncio.sleep(i * SUBMIT_INTERVAL)
        async with slots:
            request = EditRequest(prompt=f"bench task {i}", images=[image], n=1)
            created = await client.create_task(request)
            run.task_ids.append(created.task_id)
            result = await client.wait(created.task_id)
            known = time.time()
            assert result.status.is_final
            run.lags.append(known - emu.tasks[created.task_id].ended_at)  # type: ignore[operator]
            if kept is not None:
                await kept.remember(result)

    jobs = [asyncio.create_task(one(i)) for i in range(len(durations))]
    try:
        await asyncio.gather(*jobs)
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


def sdk_wait_one(i: int, index: int, data_uri: str, emu: Emulator, run: Run) -> None:
    time.sleep(i * SUBMIT_INTERVAL)
    created = ImageSynthesis.async_call(
        api_key=KEY, model=MODEL, prompt=f"bench task {index}", images=[data_uri], n=1
    )
    if created.status_code != 200:
        raise RuntimeError(f"SDK create failed: {created.code} {created.message}")
    task_id = created.output.task_id
    run.task_ids.append(task_id)
    result = ImageSynthesis.wait(created, api_key=KEY)
    known = time.time()
    if result.status_code != 200:
        raise RuntimeError(f"SDK wait failed: {result.code} {result.message}")
    run.lags.append(known - emu.tasks[task_id].ended_at)  # type: ignore[operator]


async def run_sdk(emu: Emulator, first: int, tasks: int, run: Run) -> None:
    """Tasks `first`.. of the emulator's list, one thread each, at most `AT_ONCE` a time per
    account."""
    data_uri = "data:image/png;base64," + base64.b64encode(input_png()).decode()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=AT_ONCE * SDK_TASKS) as pool:
        await asyncio.gather(
            *(
                loop.run_in_executor(pool, sdk_wait_one, i, first + i, data_uri, emu, run)
                for i in range(tasks)
            )
        )


@dataclass
class Range:
    name: str
    durations: list[float]
    sdk: Run
    new: Run
    warm: Run
    cold: Run


async def measure_range(
    name: str, durations: list[float], qps: float, folder: Path, stack: contextlib.AsyncExitStack
) -> Range:
    result = Range(name, durations, Run("SDK"), Run("new"), Run("warm"), Run("cold"))
    poll = PollConfig()  # Wan's own plan: WAN_TASK_SECONDS=30-120
    store = await open_store(f"sqlite:///{folder / (name.replace(' ', '') + '.db')}")
    stack.push_async_callback(store.close)

    async def emulator() -> Emulator:
        return await stack.enter_async_context(Emulator(emulator_config(durations)))

    def client(emu: Emulator) -> WanClient:
        return WanClient(KEY, emu.base_url, query_qps=qps, poll_config=poll)

    emu_new = await emulator()
    emu_cold = await emulator()
    learner = await stack.enter_async_context(client(emu_new))
    await run_ours(emu_new, learner, durations, result.new, kept=RunningTimes(store, learner))
    # The same process again, and beside it (on an account of its own, so that the two never
    # hold more than 5 tasks on one) a freshly started one that recalls what the first stored;
    # for it, that account stands for the same endpoint.
    restarted = await stack.enter_async_context(client(emu_cold))
    restarted.base_url = emu_new.base_url
    await RunningTimes(store, restarted).recall()
    restarted.base_url = emu_cold.base_url
    await asyncio.gather(
        run_ours(emu_new, learner, durations, result.warm),
        run_ours(emu_cold, restarted, durations, result.cold),
    )
    result.new.count(emu_new)
    result.warm.count(emu_new)
    result.cold.count(emu_cold)
    return result


async def measure_sdk(ranges: dict[str, list[float]], runs: dict[str, Run]) -> None:
    """The SDK's runs side by side on one emulator (its base URL is one global setting) that stands
    for one account per range: as many running tasks, creates and queries allowed as they have."""
    every = [d for durations in ranges.values() for d in durations]
    config = emulator_config(every)
    accounts = len(ranges) * SDK_TASKS
    config.max_running *= accounts
    config.submit_rps = (config.submit_rps or 5.0) * accounts
    config.query_qps = (config.query_qps or 20.0) * accounts
    async with Emulator(config) as emu:
        dashscope.base_http_api_url = emu.base_url
        firsts = [0]
        for durations in ranges.values():
            firsts.append(firsts[-1] + len(durations))
        await asyncio.gather(
            *(
                run_sdk(emu, first, len(durations), runs[name])
                for first, (name, durations) in zip(firsts, ranges.items(), strict=False)
            )
        )
        for run in runs.values():
            run.count(emu)


async def measure_budget(
    qps: float, inflight: int, stop: asyncio.Event, stack: contextlib.AsyncExitStack
) -> dict[str, int]:
    """Peak queries in a second at the server, per limiter, with `inflight` tasks through one
    client whose budget is `qps` (until `stop`)."""
    durations = spread(20.0, 120.0, inflight)
    peaks: dict[str, int] = {}

    async def one(label: str, make: object) -> None:
        emu = await stack.enter_async_context(Emulator(emulator_config(durations)))
        limiter: Limiter = make(qps)  # type: ignore[operator]
        async with WanClient(KEY, emu.base_url, query_qps=qps, query_limiter=limiter) as client:
            task = asyncio.create_task(
                run_ours(emu, client, durations, Run(label), at_once=inflight)
            )
            await stop.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        peaks[label] = peak_rate(
            [t for t, _m, path, _s in emu.request_log if TASK_PATH.search(path)]
        )

    await asyncio.gather(*(one(label, make) for label, make in LIMITERS.items()))
    return peaks


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10, help="tasks per run and range")
    parser.add_argument("--qps", type=float, default=float(os.environ.get("WAN_QUERY_QPS", 10)))
    parser.add_argument("--budget-qps", type=float, default=3.0, help="the budget run's limit")
    parser.add_argument("--inflight", type=int, default=50, help="tasks in the budget run")
    parser.add_argument("--no-curve", action="store_true", help="skip the computed curve")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = PollConfig()

    if not args.no_curve:
        for line in table(config, config.poll_cost, tasks=200):
            print(line)
        print()

    ranges = {
        name: spread(lo, hi, args.tasks) for name, (lo, hi) in {**DEPLOYMENTS, **MIXED}.items()
    }
    sdk_ranges = {
        name: spread(lo, hi, args.tasks * SDK_TASKS)
        for name, (lo, hi) in {**DEPLOYMENTS, **MIXED}.items()
    }
    sdk_runs = {name: Run("SDK") for name in ranges}
    started = time.monotonic()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            stop = asyncio.Event()
            budget = asyncio.create_task(
                measure_budget(args.budget_qps, args.inflight, stop, stack)
            )
            measured = await asyncio.gather(
                measure_sdk(sdk_ranges, sdk_runs),
                *(
                    measure_range(name, durations, args.qps, Path(tmp), stack)
                    for name, durations in ranges.items()
                ),
            )
            stop.set()
            peaks = await budget
    elapsed = time.monotonic() - started
    results: list[Range] = list(measured[1:])
    for r in results:
        r.sdk = sdk_runs[r.name]

    print(
        f"end to end: {args.tasks} tasks per run ({args.tasks * SDK_TASKS} for the SDK), "
        f"{AT_ONCE} at a time, WAN_QUERY_QPS={args.qps:g}, "
        f"load average {load:.1f} at the start, {elapsed:.0f} s"
    )
    print(
        f"{'running times':<14} {'process':<9} {'polls/task':>10} {'SDK':>6} {'ratio':>6} "
        f"{'mean lag':>9} {'SDK':>6} {'ratio':>6}  target"
    )
    failures = []
    for r in results:
        for run in (r.cold, r.warm, r.new):
            polls = run.polls / r.sdk.polls
            lag = run.lag / r.sdk.lag
            ok = polls <= POLLS_TARGET and lag <= LAG_TARGET
            if run is r.new:
                mark = "(prior only: no target)"
            elif r.name in MIXED:
                mark = f"{verdict(ok)} (mixed: beside the target)"
            else:
                mark = verdict(ok)
                if not ok:
                    failures.append(f"{r.name} {run.name}: x{polls:.2f} polls, x{lag:.3f} lag")
            print(
                f"{r.name:<14} {run.name:<9} {run.polls:>10.1f} {r.sdk.polls:>6.1f} "
                f"x{polls:>5.2f} {run.lag:>8.3f}s {r.sdk.lag:>5.2f}s x{lag:>5.3f}  {mark}"
            )
    for name, (lo, hi) in MIXED.items():
        sdk = next(r.sdk for r in results if r.name == name)
        least = bound(lo, hi, sdk.lag * LAG_TARGET)
        print(
            f"{name}: the best possible schedule at a quarter of this run's SDK lag polls "
            f"{least:.1f} times per task (x{least / sdk.polls:.2f} of the SDK's)"
        )
    print(
        f"targets: polls per task <= x{POLLS_TARGET:g} of the SDK's and mean lag <= "
        f"x{LAG_TARGET:g} of the SDK's, cold and warm, on each deployment's range"
    )
    print(
        f"budget: {args.inflight} tasks in flight, budget {args.budget_qps:g} queries/s; "
        "peak queries in a second at the server:"
    )
    for label, peak in peaks.items():
        mine = label == next(iter(LIMITERS))
        ok = peak <= args.budget_qps
        print(f"  {label:<20} {peak:>3}  {verdict(ok) if mine else '(for comparison)'}")
        if mine and not ok:
            failures.append(f"budget: peak {peak} q/s > {args.budget_qps:g}")
    for failure in failures:
        print("MISSED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
