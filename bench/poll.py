"""Detection lag of our poll scheduler versus the official SDK's `ImageSynthesis.wait`.

Three in-process emulators run at the same time, each with the real account's limits (5 tasks
running at once, 5 creates/s, 20 queries/s) and running times spread over 20-90 s:

- `sdk`:   N tasks created with `ImageSynthesis.async_call`, each waited on with
           `ImageSynthesis.wait` in its own thread (what the official samples do).
- `ours`:  the same N tasks (same running times, same submission times) waited on with
           `WanClient.wait`, which shares one poll scheduler.
- `ours50`: 50 tasks in flight through one `WanClient` (45 of them queued PENDING), for as long
           as the other two runs take: the total query rate must stay within WAN_QUERY_QPS.

Rate limiter, side by side in the same run: both of our runs again with the query limiter swapped for
`aiolimiter.AsyncLimiter`, configured as a bucket (`AsyncLimiter(qps, 1)`, bursts of `qps`) and as a
spaced one (`AsyncLimiter(1, 1/qps)`), with the same account-wide pause on 429. The client keeps its
own `RateLimiter` unless aiolimiter matches it on peak q/s and lag.

Detection lag = when the client learns the final status (wall clock) - the emulator's end time.
Targets (exit status 1 if missed): our mean lag <= 1/5 of the SDK's; our peak query rate in any
1-second window <= WAN_QUERY_QPS in both of our runs.

    python bench/poll.py [--tasks 10] [--inflight 50] [--qps 10]
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
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dashscope
from aiolimiter import AsyncLimiter
from dashscope import ImageSynthesis
from PIL import Image

from bot.sandbox import Emulator, EmulatorConfig
from bot.wan import EditRequest, InputImage, WanClient
from bot.wan.ratelimit import Limiter, RateLimiter

KEY = "sk-bench"
MODEL = "wan2.5-i2i-preview"
TASK_PATH = re.compile(r"/tasks(/|$)")
SUBMIT_INTERVAL = 0.25  # 4 creates/s, under the 5/s limit, for both runs alike


@dataclass
class Run:
    name: str
    lags: list[float] = field(default_factory=list)
    tasks: int = 0
    finished: int = 0
    polls_per_task: float = 0.0
    peak_qps: int = 0
    task_ids: list[str] = field(default_factory=list)

    throttled: int = 0

    def measure(self, emu: Emulator) -> None:
        self.polls_per_task = polls_per_task(emu, self.task_ids)
        self.peak_qps = peak_rate(task_times(emu))
        self.throttled = sum(
            1 for _, _, path, status in emu.request_log if TASK_PATH.search(path) and status == 429
        )

    def row(self) -> str:
        lags = sorted(self.lags)
        mean = statistics.fmean(lags) if lags else float("nan")
        p95 = lags[max(0, round(0.95 * len(lags)) - 1)] if lags else float("nan")
        done = f"{self.finished}/{self.tasks}"
        return (
            f"{self.name:<42} {done:>7} {mean:>9.3f} {p95:>9.3f} "
            f"{self.polls_per_task:>10.1f} {self.peak_qps:>9d} {self.throttled:>5d}"
        )


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
    "": lambda qps: RateLimiter(qps),
    ", aiolimiter bucket": lambda qps: AioLimiter(qps, spaced=False),
    ", aiolimiter spaced": lambda qps: AioLimiter(qps, spaced=True),
}


def spread(n: int, lo: float = 20.0, hi: float = 90.0) -> list[float]:
    """n running times evenly over [lo, hi], ordered so FIFO over 5 slots ends them all together:
    the short half first, then the long half, longest first (slot freed first gets the longest)."""
    values = [lo + (hi - lo) * i / max(1, n - 1) for i in range(n)]
    half = (n + 1) // 2
    return values[:half] + sorted(values[half:], reverse=True)


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


def task_times(emu: Emulator) -> list[float]:
    return [t for t, method, path, _status in emu.request_log if TASK_PATH.search(path)]


def peak_rate(times: Sequence[float], window: float = 1.0) -> int:
    """Most requests in any half-open window (t - window, t]."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def polls_per_task(emu: Emulator, task_ids: Sequence[str]) -> float:
    counts = Counter(path.rsplit("/", 1)[-1] for _, m, path, _ in emu.request_log if m == "GET")
    return statistics.fmean(counts[t] for t in task_ids) if task_ids else 0.0


async def run_ours(emu: Emulator, durations: Sequence[float], limiter: Limiter, run: Run) -> None:
    """Create and wait on every task; fills `run` as tasks finish (so a cancelled run still counts)."""
    run.tasks = len(durations)
    image = InputImage(data=input_png(), mime="image/png")
    async with WanClient(
        KEY, emu.base_url, query_qps=limiter.rate, query_limiter=limiter
    ) as client:

        async def one(i: int) -> None:
            await asyncio.sleep(i * SUBMIT_INTERVAL)
            request = EditRequest(prompt=f"bench task {i}", images=[image], n=1)
            created = await client.create_task(request)
            run.task_ids.append(created.task_id)
            result = await client.wait(created.task_id)
            known = time.time()
            assert result.status.is_final
            run.lags.append(known - emu.tasks[created.task_id].ended_at)
            run.finished += 1

        jobs = [asyncio.create_task(one(i)) for i in range(len(durations))]
        try:
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)


def sdk_wait_one(i: int, data_uri: str, emu: Emulator, run: Run) -> None:
    time.sleep(i * SUBMIT_INTERVAL)
    created = ImageSynthesis.async_call(
        api_key=KEY, model=MODEL, prompt=f"bench task {i}", images=[data_uri], n=1
    )
    if created.status_code != 200:
        raise RuntimeError(f"SDK create failed: {created.code} {created.message}")
    task_id = created.output.task_id
    run.task_ids.append(task_id)
    result = ImageSynthesis.wait(created, api_key=KEY)
    known = time.time()
    if result.status_code != 200:
        raise RuntimeError(f"SDK wait failed: {result.code} {result.message}")
    run.lags.append(known - emu.tasks[task_id].ended_at)
    run.finished += 1


async def run_sdk(emu: Emulator, durations: Sequence[float], run: Run) -> None:
    """One thread per task, as an application using the SDK's blocking wait would do."""
    run.tasks = len(durations)
    dashscope.base_http_api_url = emu.base_url
    data_uri = "data:image/png;base64," + base64.b64encode(input_png()).decode()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=len(durations)) as pool:
        await asyncio.gather(
            *(
                loop.run_in_executor(pool, sdk_wait_one, i, data_uri, emu, run)
                for i in range(len(durations))
            )
        )


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10, help="tasks in the side-by-side runs")
    parser.add_argument("--inflight", type=int, default=50, help="tasks in flight in the load run")
    parser.add_argument("--qps", type=float, default=float(os.environ.get("WAN_QUERY_QPS", 10)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    durations = spread(args.tasks)
    load_durations = spread(args.inflight)
    sdk = Run("SDK ImageSynthesis.wait (threads)")
    ours = {k: Run(f"wanbot WanClient.wait{k}") for k in LIMITERS}
    load = {k: Run(f"wanbot, {args.inflight} in flight{k}") for k in LIMITERS}
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        emu_sdk = await stack.enter_async_context(Emulator(emulator_config(durations)))
        emus: dict[str, Emulator] = {}
        for kind, runs, ds in (("ours", ours, durations), ("load", load, load_durations)):
            for k in runs:
                emus[kind + k] = await stack.enter_async_context(Emulator(emulator_config(ds)))
        load_tasks = [
            asyncio.create_task(run_ours(emus["load" + k], load_durations, make(args.qps), load[k]))
            for k, make in LIMITERS.items()
        ]
        await asyncio.gather(
            run_sdk(emu_sdk, durations, sdk),
            *(
                run_ours(emus["ours" + k], durations, make(args.qps), ours[k])
                for k, make in LIMITERS.items()
            ),
        )
        # Draining the load runs would take ~10 minutes; by now they have shown what they must.
        for task in load_tasks:
            task.cancel()
        await asyncio.gather(*load_tasks, return_exceptions=True)
        sdk.measure(emu_sdk)
        for k in LIMITERS:
            ours[k].measure(emus["ours" + k])
            load[k].measure(emus["load" + k])
    elapsed = time.monotonic() - started

    print(f"poll benchmark: running times 20-90 s, 5 running at once, WAN_QUERY_QPS={args.qps:g}")
    print(
        f"{'run':<42} {'done':>7} {'mean lag':>9} {'p95 lag':>9} {'polls/task':>10} "
        f"{'peak q/s':>9} {'429s':>5}"
    )
    for run in (sdk, *ours.values(), *load.values()):
        print(run.row())
    mine = ours[""]
    ratio = statistics.fmean(mine.lags) / statistics.fmean(sdk.lags)
    print(f"our mean lag / SDK mean lag = {ratio:.3f} (target <= 0.2); wall time {elapsed:.0f} s")
    for k in list(LIMITERS)[1:]:
        lag = statistics.fmean(ours[k].lags) / statistics.fmean(mine.lags)
        print(
            f"limiter{k}: mean lag x{lag:.2f} of ours; peak q/s {ours[k].peak_qps} / "
            f"{load[k].peak_qps} (ours {mine.peak_qps} / {load[''].peak_qps}, limit {args.qps:g})"
        )
    ours_only = {"ours": mine, "load": load[""]}
    failures = []
    if ratio > 0.2:
        failures.append("mean lag not <= 1/5 of the SDK's")
    for run in ours_only.values():
        if run.peak_qps > args.qps:
            failures.append(f"{run.name}: peak {run.peak_qps} q/s > {args.qps:g}")
    for failure in failures:
        print("MISSED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
