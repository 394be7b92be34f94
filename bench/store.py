"""Reserve+settle throughput and reserve latency of the store under concurrent users.

    python bench/store.py [--seconds 5] [--users 50] [--no-baseline] [--no-postgres]

Each simulated user loops: reserve 1-4 images, settle a random number of them.

sqlite: all users share one store (one connection, batched transactions, synchronous=FULL: every
commit fsynced) on one file in a temporary folder, as the bot does (set TMPDIR to measure another
disk). In the same run, the same load goes through a reference (bench/_store_baseline.py, not used
by the bot) on its own temporary file: the same schema, rules and durability, written as a first
version would be, one `BEGIN IMMEDIATE ... COMMIT` per operation with one `execute` call per
statement and no batching. Targets: at least 10 times the reference's pairs per second, and a p99
reserve latency under 20 ms.

PostgreSQL (when WANBOT_TEST_PG_DSN names a server, e.g. `eval "$(python tests/support/pgcluster.py
start)"`): three processes, each with `--users` users, on one fresh database, with a bot-wide cap in
force (so every reservation takes the bot's day). Then the same three race for tight bounds (a
member's limit, a server cap, the bot-wide cap) until refused. Targets: at least 3,000 pairs per
second together, and zero over-grants (no bound ever granted past, and every day's counters equal to
what the reservations hold and charged).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from bot.store import Limits, QuotaRefused, open_store
from bot.store.models import Reservation
from tests.support.store import PG_DSN, PgServer

PG_PROCESSES = 3

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


async def load(
    ledger: Ledger, seconds: float, users: int, seed: int = 1
) -> tuple[float, int, list[float], int]:
    """Drive `ledger` with `users` looping users; (elapsed, pairs, sorted latencies, expected)."""
    latencies: list[float] = []
    pairs = 0
    expected = 0
    deadline = time.perf_counter() + seconds
    rng = random.Random(seed)

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


async def run_alchemy(folder: str, seconds: float, users: int) -> Result:
    return await alchemy_result(f"sqlite:///{folder}/alchemy.db", seconds, users)


async def alchemy_result(url: str, seconds: float, users: int) -> Result:
    """The store's ledger through SQLAlchemy Core (bench/_store_sqlalchemy.py) on `url`."""
    from _store_sqlalchemy import alchemy_ledger

    await (await open_store(url)).close()  # the schema, made by the store
    async with alchemy_ledger(url, LIMIT, Limits()) as ledger:
        elapsed, pairs, latencies, expected = await load(ledger, seconds, users)
    store = await open_store(url)
    try:
        totals = await store.server_totals(SCOPE)
    finally:
        await store.close()
    return Result(elapsed, pairs, latencies, totals.used, totals.held, expected)


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


async def run(seconds: float, users: int, baseline: bool, alchemy: bool) -> None:
    runs: list[tuple[str, Callable[[str, float, int], Awaitable[Result]]]] = [
        ("wanbot store", run_store)
    ]
    if baseline:
        runs.append(("baseline (reference)", run_baseline))
    if alchemy:
        runs.append(("SQLAlchemy Core", run_alchemy))
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
    if baseline or alchemy:
        print()
        print(f"side by side, {users} users, {seconds:g} s each, synchronous=FULL + WAL all:")
        print(table(results))
    if alchemy:
        core = results["SQLAlchemy Core"]
        print(
            f"wanbot store / SQLAlchemy Core (same ledger): {ours.rate / core.rate:.2f}x pairs per second"
        )
    if baseline:
        ref = results["baseline (reference)"]
        ratio = ours.rate / ref.rate
        print(f"wanbot store / baseline: {ratio:.2f}x pairs per second")
        print(target("sqlite: at least 10x the baseline's pairs/s", ratio >= 10, f"{ratio:.1f}x"))
    p99 = ours.latency_ms(0.99)
    print(target("sqlite: reserve p99 under 20 ms", p99 < 20, f"{p99:.1f} ms"))
    print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def target(name: str, met: bool, measured: str) -> str:
    return f"{'PASS' if met else 'MISS'}  {name}: {measured}"


# ---- PostgreSQL: several processes on one database ----


async def worker(url: str, seconds: float, users: int, seed: int, race: bool) -> dict[str, object]:
    """One process's share: the load (or, with `race`, reservations until refused)."""
    limits = Limits(global_daily=RACE_GLOBAL if race else LIMIT)
    store = await open_store(url, default_daily_limit=RACE_MEMBER if race else LIMIT, limits=limits)
    try:
        if race:
            granted = 0

            async def racer(user: int) -> None:
                nonlocal granted
                rng = random.Random(user)
                while True:
                    try:
                        reservation = await store.reserve(SCOPES[user % 2], user, rng.randint(1, 4))
                        granted += reservation.images
                    except QuotaRefused:
                        return

            await asyncio.gather(*(racer(i % RACE_MEMBERS) for i in range(users)))
            return {"granted": granted}
        scoped = ScopedLedger(store, seed)
        elapsed, pairs, latencies, expected = await load(scoped, seconds, users, seed)
        p99 = percentile(latencies, 0.99) * 1000
        return {"elapsed": elapsed, "pairs": pairs, "expected": expected, "p99": p99}
    finally:
        await store.close()


class ScopedLedger:
    """The load spread over a few servers, as several processes serving several servers."""

    def __init__(self, store: Ledger, seed: int) -> None:
        self.store = store
        self.seed = seed

    async def reserve(self, scope: int, user: int, images: int) -> Reservation:
        return await self.store.reserve(scope + user % 8, self.seed * 1000 + user, images)

    async def settle(self, reservation_id: int, generated: int) -> int:
        return await self.store.settle(reservation_id, generated)


# The race: two servers (one with a cap), members with a limit, and a bot-wide cap, all tight.
SCOPES = (7001, 7002)
RACE_MEMBERS, RACE_MEMBER, RACE_CAP, RACE_GLOBAL = 40, 9, 120, 200


async def run_postgres(dsn: str, seconds: float, users: int, alchemy: bool = False) -> bool:
    server = PgServer(dsn)
    url = await server.create()
    try:
        outs = await spawn(url, seconds, users, race=False)
        pairs = sum(int(o["pairs"]) for o in outs)
        span = max(float(o["elapsed"]) for o in outs)
        expected = sum(int(o["expected"]) for o in outs)
        rate = pairs / span
        over, why = await over_grants(url, expected, 0, race=False)
        # The race on a database of its own: the load above spent far more than its bot-wide cap.
        raced = await server.create()
        try:
            store = await open_store(raced)
            try:
                await store.set_server_cap(SCOPES[0], 1, RACE_CAP)
            finally:
                await store.close()
            race = await spawn(raced, seconds, users, race=True)
            granted = sum(int(o["granted"]) for o in race)
            more, why = await over_grants(raced, 0, granted, race=True)
            over += more
        finally:
            await server.drop(raced)
    finally:
        await server.drop(url)
        await server.close()
    print()
    print(f"PostgreSQL, {PG_PROCESSES} processes x {users} users, {seconds:g} s: {pairs:,} pairs")
    print(f"reserve+settle pairs per second, together: {rate:,.0f}")
    p99s = ", ".join(f"{float(o['p99']):.1f}" for o in outs)
    print(f"reserve p99 per process (ms): {p99s}")
    print(f"race for tight bounds: {why}")
    if alchemy:
        await compare_on_postgres(dsn, seconds, users)
    print(
        target(
            f"PostgreSQL: at least 3,000 pairs/s with {PG_PROCESSES} processes",
            rate >= 3000,
            f"{rate:,.0f}/s",
        )
    )
    print(target("PostgreSQL: zero over-grants", over == 0, f"{over}"))
    return rate >= 3000 and over == 0


async def compare_on_postgres(dsn: str, seconds: float, users: int) -> None:
    """One process, the same load: the store, then its ledger through SQLAlchemy Core."""
    server = PgServer(dsn)
    urls = [await server.create(), await server.create()]
    try:
        store = await open_store(urls[0], default_daily_limit=LIMIT)
        try:
            ours = Result(*(await load(store, seconds, users))[:3], 0, 0, 0)
        finally:
            await store.close()
        core = await alchemy_result(urls[1], seconds, users)
    finally:
        for url in urls:
            await server.drop(url)
        await server.close()
    print(
        f"PostgreSQL, one process x {users} users: wanbot store {ours.rate:,.0f} pairs/s "
        f"(p99 {ours.latency_ms(0.99):.1f} ms), SQLAlchemy Core (same ledger) {core.rate:,.0f} "
        f"pairs/s (p99 {core.latency_ms(0.99):.1f} ms)"
    )


async def spawn(url: str, seconds: float, users: int, *, race: bool) -> list[dict[str, object]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            url,
            "--seconds",
            str(seconds),
            "--users",
            str(users),
            "--seed",
            str(seed),
            *(["--race"] if race else []),
            stdout=asyncio.subprocess.PIPE,
        )
        for seed in range(1, PG_PROCESSES + 1)
    ]
    outs = [json.loads((await p.communicate())[0]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker process failed")
    return outs


async def over_grants(url: str, expected: int, granted: int, *, race: bool) -> tuple[int, str]:
    """How many bounds were granted past or counters disagree with the reservations; and what the
    race granted against what the bounds allow."""
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        q = con.fetchval
        wrong = 0
        per_member = await con.fetch(
            "SELECT scope, user_id, sum(images) AS n FROM reservations WHERE scope = ANY($1)"
            " GROUP BY scope, user_id",
            list(SCOPES),
        )
        wrong += sum(1 for r in per_member if r["n"] > RACE_MEMBER)
        capped = await q(
            "SELECT coalesce(sum(images), 0) FROM reservations WHERE scope = $1", SCOPES[0]
        )
        raced = await q(
            "SELECT coalesce(sum(images), 0) FROM reservations WHERE scope = ANY($1)", list(SCOPES)
        )
        charged_before = await q(
            "SELECT coalesce(sum(charged), 0) FROM reservations WHERE scope <> ALL($1)",
            list(SCOPES),
        )
        wrong += int(capped > RACE_CAP) + int(raced != granted) + int(charged_before != expected)
        total = await q("SELECT coalesce(max(used + held), 0) FROM bot_days")
        wrong += int(race and total > RACE_GLOBAL)
        # The days' counters against what the reservations hold and charged.
        for table, key in (("scope_days", "scope, day"), ("bot_days", "day")):
            wrong += await q(
                f"SELECT count(*) FROM {table} AS d LEFT JOIN (SELECT {key}, sum(charged) AS used,"
                " sum(CASE WHEN status = 'held' THEN images ELSE 0 END) AS held FROM reservations"
                f" GROUP BY {key}) AS r USING ({key})"
                " WHERE d.used <> coalesce(r.used, 0) OR d.held <> coalesce(r.held, 0)"
            )
    finally:
        await con.close()
    why = (
        f"{granted} images granted ({capped} in the server capped at {RACE_CAP}, each of "
        f"{RACE_MEMBERS} members at most {RACE_MEMBER}); the bot's day holds {total} of"
        f" {RACE_GLOBAL}"
    )
    return wrong, why


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
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs")
    parser.add_argument(
        "--alchemy",
        action="store_true",
        help="also run the store's ledger through SQLAlchemy Core (bench/_store_sqlalchemy.py)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--race", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        out = asyncio.run(worker(args.worker, args.seconds, args.users, args.seed, args.race))
        print(json.dumps(out))
        return
    asyncio.run(run(args.seconds, args.users, not args.no_baseline, args.alchemy))
    dsn = os.environ.get(PG_DSN, "").strip()
    if args.no_postgres:
        return
    if not dsn:
        print(f"PostgreSQL: skipped ({PG_DSN} is not set)")
        return
    asyncio.run(run_postgres(dsn, args.seconds, args.users, args.alchemy))


if __name__ == "__main__":
    main()
