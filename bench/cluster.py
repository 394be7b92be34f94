"""Several processes vs one: the same work on 1 bot process and 3 on PostgreSQL, and 1 on sqlite.

    python bench/cluster.py [--jobs 200] [--running 2.0] [--members 80]

Needs a PostgreSQL server: WANBOT_TEST_PG_DSN (`eval "$(python tests/support/pgcluster.py start)"`).
Each run: the bot processes (`python -m bot`, with WAN_TASK_SECONDS=0.2-3 for the emulator's short
tasks and WANBOT_LEASE_SECONDS=3; one shard each when there are several), the fake Discord (one shard per process) and
the emulator with the account's limits (5 running, 5 creates/s, 20 queries/s; WAN_QUERY_QPS=10), all
served from this process; `--jobs` /wanedit requests from `--members` members at once.

Reported per run: jobs per minute (first request -> last job finished), Wan slot use (task-seconds at
Wan / (5 x the span from the first create to the last end)), p95 added latency (the Wan task ended
on the emulator -> the job finished, delivered, in the database), peak RSS (VmHWM) of each process,
the most tasks in flight and queries in any second, and the ledger (images charged in the quota
tables = images on the results posted = what the jobs say they generated).

Targets, each printed with PASS or MISS beside the measured number: 3 processes keep the 5 slots at
least 90% busy; p95 added latency at most 1.0 s; the ledger exact; and the account's limits held
(at most 5 tasks in flight, at most WAN_QUERY_QPS task queries in any one second at the emulator).
Exit status 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.store import open_store
from tests.support.cluster_run import cluster, finished, outcome, peak_rss_mb, quota_used, submit
from tests.support.store import PgServer

THREE = "PostgreSQL, 3 processes"


@dataclass
class Row:
    name: str
    jobs_per_min: float
    busy: float
    p95_added: float
    rss: list[float]
    in_flight: int
    qps: int
    ledger: bool
    done: int


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def one_run(name: str, processes: int, url: str, args: argparse.Namespace) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        async with cluster(
            processes=processes,
            database_url=url,
            tmp=Path(tmp),
            members=args.members,
            running_seconds=args.running,
            query_qps=args.query_qps,
        ) as c:
            await c.start()
            started = time.time()
            await submit(c, args.jobs)
            await finished(url, args.jobs, timeout=args.jobs * args.running + 300)
            rss = [peak_rss_mb(p.process.pid) or 0.0 for p in c.processes]
            result = await outcome(c)
            billed = await quota_used(url)
            store = await open_store(url)
            try:
                added = []
                for user, _g, _c in c.members:
                    for job in await store.jobs_for_user(user.id, limit=100):
                        task = c.emu.tasks.get(job.task_id or "")
                        if task is not None and task.ended_at and job.finished_at:
                            added.append(job.finished_at.timestamp() - task.ended_at)
            finally:
                await store.close()
    done = result.states.get("done", 0)
    span = max(result.finished_at) - started if result.finished_at else 0.0
    return Row(
        name=name,
        jobs_per_min=done / span * 60 if span else 0.0,
        busy=result.wan_busy,
        p95_added=p95(added),
        rss=rss,
        in_flight=result.max_in_flight,
        qps=result.max_qps,
        ledger=billed == result.charged == result.images_posted and done == args.jobs,
        done=done,
    )


def targets(rows: list[Row], query_qps: int) -> list[tuple[bool, str]]:
    """Each target with the measured number beside it: (met, line)."""
    checks: list[tuple[bool, str]] = []
    three = next(r for r in rows if r.name == THREE)
    checks.append((three.busy >= 0.9, f"Wan slots busy, {three.name}: {three.busy:.0%} (>= 90%)"))
    for r in rows:
        checks.append(
            (r.p95_added <= 1.0, f"p95 added latency, {r.name}: {r.p95_added:.2f} s (<= 1.0 s)")
        )
    for r in rows:
        checks.append((r.ledger, f"ledger, {r.name}: {'exact' if r.ledger else 'WRONG'}"))
    for r in rows:
        checks.append(
            (r.in_flight <= 5, f"Wan tasks in flight, {r.name}: at most {r.in_flight} (<= 5)")
        )
    for r in rows:
        checks.append(
            (
                r.qps <= query_qps,
                f"task queries in any second, {r.name}: at most {r.qps} (<= {query_qps})",
            )
        )
    return checks


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--running", type=float, default=2.0)
    parser.add_argument("--members", type=int, default=80)
    parser.add_argument("--query-qps", type=int, default=10, help="WAN_QUERY_QPS of the bots")
    args = parser.parse_args()
    dsn = os.environ.get("WANBOT_TEST_PG_DSN")
    if not dsn:
        print("set WANBOT_TEST_PG_DSN (python tests/support/pgcluster.py start)", file=sys.stderr)
        return 2
    server = PgServer(dsn)
    rows: list[Row] = []
    try:
        for name, processes in (("PostgreSQL, 1 process", 1), (THREE, 3)):
            url = await server.create()
            try:
                rows.append(await one_run(name, processes, url, args))
            finally:
                await server.drop(url)
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(await one_run("sqlite, 1 process", 1, f"sqlite:///{tmp}/wanbot.db", args))
    finally:
        await server.close()
    load = os.getloadavg()
    print(
        f"{args.jobs} jobs, Wan tasks of {args.running:.1f} s, account limits on; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
    )
    print(
        "| run | jobs/min | Wan slots busy | p95 added latency | peak RSS per process | "
        "max in flight | max queries/s | ledger |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.name} | {r.jobs_per_min:.0f} | {r.busy:.0%} | {r.p95_added:.2f} s | "
            f"{', '.join(f'{m:.0f} MB' for m in r.rss)} | {r.in_flight} | {r.qps} | "
            f"{'exact' if r.ledger else 'WRONG'} ({r.done} done) |"
        )
    checks = targets(rows, args.query_qps)
    print()
    for passed, what in checks:
        print(f"{'PASS' if passed else 'MISS'}  {what}")
    ok = all(passed for passed, _ in checks)
    print("targets met" if ok else "targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
