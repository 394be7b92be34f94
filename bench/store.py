"""Reserve+settle throughput and reserve latency of the sqlite store under concurrent users.

    python bench/store.py [--seconds 5] [--users 50]

Each simulated user loops: reserve 1-4 images, settle a random number of them. All users share one
store (one connection, group commit, synchronous=FULL: every commit fsynced) on one file in a
temporary folder, as the bot does. Targets on a 2-core machine: at least 2,000 pairs per second
and a p99 reserve latency under 20 ms. The temporary folder is on the system's temp disk (set
TMPDIR to measure another disk).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time

from bot.store import open_store


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def run(seconds: float, users: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        # A limit nobody reaches: this measures the ledger, not refusals.
        store = await open_store(f"sqlite:///{folder}/bench.db", default_daily_limit=1_000_000)
        latencies: list[float] = []
        pairs = 0
        deadline = time.perf_counter() + seconds
        rng = random.Random(1)

        async def user(user_id: int) -> None:
            nonlocal pairs
            while time.perf_counter() < deadline:
                images = rng.randint(1, 4)
                start = time.perf_counter()
                reservation = await store.reserve(1, user_id, images)
                latencies.append(time.perf_counter() - start)
                await store.settle(reservation.id, rng.randint(0, images))
                pairs += 1

        started = time.perf_counter()
        await asyncio.gather(*(user(1000 + i) for i in range(users)))
        elapsed = time.perf_counter() - started
        totals = await store.server_totals(1)
        await store.close()

    latencies.sort()
    print(f"users: {users}, duration: {elapsed:.1f} s, pairs: {pairs}")
    print(f"reserve+settle pairs per second: {pairs / elapsed:,.0f}")
    print(
        f"reserve latency: p50 {percentile(latencies, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms, max {latencies[-1] * 1000:.2f} ms"
    )
    print(f"images charged: {totals.used}, still held: {totals.held}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run (default 5)")
    parser.add_argument("--users", type=int, default=50, help="concurrent users (default 50)")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.users))


if __name__ == "__main__":
    main()
