"""Reserve+settle throughput and reserve latency of the sqlite store under concurrent users.

    python bench/store.py [--seconds 5] [--users 50] [--no-baseline]

Each simulated user loops: reserve 1-4 images, settle a random number of them. All users share one
store (one connection, group commit, synchronous=FULL: every commit fsynced) on one file in a
temporary folder, as the bot does. Targets on a 2-core machine: at least 2,000 pairs per second
and a p99 reserve latency under 20 ms. The temporary folder is on the system's temp disk (set
TMPDIR to measure another disk).

In the same run, the same load goes through a reference (bench/_store_baseline.py, not used by the
bot) on its own temporary file: the same schema, rules and durability, written as a first version
would be, one `BEGIN IMMEDIATE ... COMMIT` per operation with one `execute` call per statement and
no group commit. Both are printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store_baseline import BaselineStore

from bot.store import open_store
from bot.store.models import Reservation

SCOPE = 1
LIMIT = 1_000_000  # a limit nobody reaches: this measures the ledger, not refusals


class Ledger(Protocol):
    async def reserve(self, scope: int, user: int, images: int) -> Reservation: ...
    async def settle(self, reservation_id: int, generated: int) -> int: ...


@dataclass
class Result:
    elapsed: float
    pairs: int
    latencies: list[float]  # sorted, seconds
    charged: int
    held: int
    expected_charged: int  # what the users asked to be charged: the ledger must agree

    @property
    def rate(self) -> float:
        return self.pairs / self.elapsed

    def latency_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def load(ledger: Ledger, seconds: float, users: int) -> tuple[float, int, list[float], int]:
    """Drive `ledger` with `users` looping users; (elapsed, pairs, sorted latencies, expected)."""
    latencies: list[float] = []
    pairs = 0
    expected = 0
    deadline = time.perf_counter() + seconds
    rng = random.Random(1)

    async def user(user_id: int) -> None:
        nonlocal pairs, expected
        while time.perf_counter() < deadline:
            images = rng.randint(1, 4)
            start = time.perf_counter()
            reservation = await ledger.reserve(SCOPE, user_id, images)
            latencies.append(time.perf_counter() - start)
            generated = rng.randint(0, images)
            await ledger.settle(reservation.id, generated)
            expected += generated
            pairs += 1

    started = time.perf_counter()
    await asyncio.gather(*(user(1000 + i) for i in range(users)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return elapsed, pairs, latencies, expected


async def run_store(folder: str, seconds: float, users: int) -> Result:
    store = await open_store(f"sqlite:///{folder}/bench.db", default_daily_limit=LIMIT)
    try:
        elapsed, pairs, latencies, expected = await load(store, seconds, users)
        totals = await store.server_totals(SCOPE)
    finally:
        await store.close()
    return Result(elapsed, pairs, latencies, totals.used, totals.held, expected)


async def run_baseline(folder: str, seconds: float, users: int) -> Result:
    baseline = await BaselineStore.open(f"{folder}/baseline.db", default_daily_limit=LIMIT)
    try:
        elapsed, pairs, latencies, expected = await load(baseline, seconds, users)
        used, held = await baseline.totals(SCOPE)
    finally:
        await baseline.close()
    return Result(elapsed, pairs, latencies, used, held, expected)


def table(results: dict[str, Result]) -> str:
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("pairs", lambda r: f"{r.pairs:,}"),
        ("duration (s)", lambda r: f"{r.elapsed:.1f}"),
        ("reserve+settle pairs/s", lambda r: f"{r.rate:,.0f}"),
        ("reserve p50 (ms)", lambda r: f"{r.latency_ms(0.5):.2f}"),
        ("reserve p99 (ms)", lambda r: f"{r.latency_ms(0.99):.2f}"),
        ("reserve max (ms)", lambda r: f"{r.latencies[-1] * 1000:.2f}"),
        ("ledger (charged/held)", lambda r: f"{r.charged}/{r.held}"),
        (
            "ledger check",
            lambda r: "ok" if (r.charged, r.held) == (r.expected_charged, 0) else "WRONG",
        ),
    ]
    names = list(results)
    width = max(len(label) for label, _ in rows)
    cells = [[show(results[name]) for name in names] for _, show in rows]
    columns = [max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(names)]
    lines = ["  ".join([" " * width, *(n.rjust(w) for n, w in zip(names, columns, strict=True))])]
    for (label, _), row in zip(rows, cells, strict=True):
        values = (v.rjust(w) for v, w in zip(row, columns, strict=True))
        lines.append("  ".join([label.ljust(width), *values]))
    return "\n".join(lines)


async def run(seconds: float, users: int, baseline: bool) -> None:
    runs: list[tuple[str, Callable[[str, float, int], Awaitable[Result]]]] = [
        ("wanbot store", run_store)
    ]
    if baseline:
        runs.append(("baseline (reference)", run_baseline))
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, runner in runs:
            results[name] = await runner(folder, seconds, users)

    ours = results["wanbot store"]
    print(f"users: {users}, duration: {ours.elapsed:.1f} s, pairs: {ours.pairs}")
    print(f"reserve+settle pairs per second: {ours.rate:,.0f}")
    print(
        f"reserve latency: p50 {ours.latency_ms(0.5):.2f} ms, "
        f"p99 {ours.latency_ms(0.99):.2f} ms, max {ours.latencies[-1] * 1000:.2f} ms"
    )
    print(f"images charged: {ours.charged}, still held: {ours.held}")
    if baseline:
        ref = results["baseline (reference)"]
        print()
        print(f"side by side, {users} users, {seconds:g} s each, synchronous=FULL + WAL both:")
        print(table(results))
        print(f"wanbot store / baseline: {ours.rate / ref.rate:.2f}x pairs per second")
    print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="how long each run lasts (default 5)"
    )
    parser.add_argument("--users", type=int, default=50, help="concurrent users (default 50)")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the reference run (bench/_store_baseline.py)",
    )
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.users, not args.no_baseline))


if __name__ == "__main__":
    main()
