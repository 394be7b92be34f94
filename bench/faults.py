"""Three bot processes on PostgreSQL while the database misbehaves: restarted twice, cut for 20 s
once, 300 ms further away for a minute.

    python bench/faults.py [--jobs 60] [--running 2.0] [--members 30] [--no-baseline] [--logs DIR]

Needs PostgreSQL's server programs (it starts a throwaway server of its own, as
`tests/support/pgcluster.py` does, to restart it). The three processes (`python -m bot`, one shard
each, WANBOT_LEASE_SECONDS=3) reach it through a loopback TCP proxy (`tests/support/tcpproxy.py`)
that cuts their connections and adds the latency; the fake Discord and the emulator with the
account's limits (5 running, 5 creates/s, 20 queries/s) are served from this process.

The faults, once `--jobs` /wanedit requests are stored jobs at work: the server restarted (2 s
down), every connection cut and refused for 20 s, the server restarted again (5 s down), then 150 ms
each way for 60 s. A baseline run of the same jobs without faults comes first (its jobs per minute).

Printed, each with PASS or MISS: jobs lost (not finished, or failed for a reason of ours: 0), jobs
delivered twice (0), Wan tasks created twice (tasks no job holds, or a job's second: 0), the ledger
(images charged to members = images posted; images Wan billed = images the jobs recorded as billed),
and the longest stall after the database came back (from its return to the next task created or
job finished, while work was waiting: at most 30 s). Exit status 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import pgcluster
from tests.support.cluster_run import Outcome, cluster, outcome, quota_used, submit
from tests.support.tcpproxy import TcpProxy

STALL_TARGET = 30.0
# Failure codes of jobs that ended for a reason of Wan's or of the member's input, not of ours.
NOT_OURS = {"ResultExpired", "TaskExpired", "InputGone"}


@dataclass
class Run:
    name: str
    result: Outcome
    charged_in_quota: int
    billed_recorded: int
    billed_by_wan: int
    span: float
    task_starts: list[float] = field(default_factory=list)  # when Wan took each task
    comebacks: list[float] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)


async def database_misbehaves(folder: Path, proxy: TcpProxy, log: Run) -> None:
    """The fault schedule, noting when the database came back each time."""

    def note(what: str) -> None:
        log.faults.append(f"{time.time() - start:5.1f} s  {what}")

    async def restart(down_for: float) -> None:
        note(f"restart ({down_for:g} s down)")
        await asyncio.to_thread(pgcluster.restart, folder, down_for=down_for)
        log.comebacks.append(time.time())

    start = time.time()
    await asyncio.sleep(3)
    await restart(2.0)
    await asyncio.sleep(5)
    note("every connection cut, new ones refused for 20 s")
    await proxy.cut(refuse_for=20)
    await asyncio.sleep(20)
    proxy.restore()
    log.comebacks.append(time.time())
    await asyncio.sleep(5)
    await restart(5.0)
    await asyncio.sleep(2)
    note("150 ms added each way (300 ms round trip) for 60 s")
    proxy.latency = 0.15
    await asyncio.sleep(60)
    proxy.latency = 0.0
    note("latency back to none")


async def one_run(
    name: str,
    args: argparse.Namespace,
    url: str,
    proxy: TcpProxy,
    faults: Callable[[Run], Awaitable[None]] | None,
) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        async with cluster(
            processes=3,
            database_url=proxy.rewrite(url),
            tmp=Path(tmp),
            members=args.members,
            running_seconds=args.running,
        ) as c:
            await c.start()
            run = Run(name, None, 0, 0, 0, 0.0)  # type: ignore[arg-type]
            started = time.time()
            await submit(c, args.jobs)
            # The faults start once every request is a stored job: a request made while the
            # database is away is refused up front (nothing charged), which is not what is measured.
            await stored(url, args.jobs, timeout=60)
            misbehaving = asyncio.ensure_future(faults(run)) if faults else None
            try:
                await all_finished(url, args.jobs, timeout=args.jobs * args.running + args.patience)
            finally:
                if misbehaving is not None:
                    with contextlib.suppress(Exception):
                        await misbehaving
            run.span = time.time() - started
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for index, process in enumerate(c.processes):
                    (args.logs / f"{name.replace(' ', '-')}-{index}.log").write_text(process.log)
            run.result = await outcome(c)
            run.charged_in_quota = await quota_used(url)
            run.billed_recorded = await billed_recorded(url)
            run.task_starts = [t.submitted_at for t in c.emu.tasks.values()]
            run.billed_by_wan = sum(
                t.image_count for t in c.emu.tasks.values() if t.status.value == "SUCCEEDED"
            )
            return run


async def stored(url: str, jobs: int, timeout: float) -> None:
    """Until the database holds `jobs` jobs (every request taken in)."""
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while await con.fetchval("SELECT count(*) FROM jobs") < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bots did not take in {jobs} requests in {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await con.close()


async def all_finished(url: str, jobs: int, timeout: float) -> None:
    """Until `jobs` jobs have ended, asking the database (again after each of its outages), or
    `timeout` has passed (the jobs left unfinished are counted as lost)."""
    import asyncpg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            con = await asyncpg.connect(url, timeout=5)
            try:
                done = await con.fetchval(
                    "SELECT count(*) FROM jobs WHERE state IN ('done', 'failed', 'cancelled')"
                )
            finally:
                await con.close()
            if done >= jobs:
                return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the database is away: the fault schedule brings it back
        await asyncio.sleep(0.5)
    print(f"not every one of {jobs} jobs finished in {timeout:.0f} s", file=sys.stderr)


async def billed_recorded(url: str) -> int:
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        return int(await con.fetchval("SELECT coalesce(sum(billed), 0) FROM jobs"))
    finally:
        await con.close()


def longest_stall(run: Run) -> float:
    """From each return of the database to the next task created or job finished."""
    events = sorted([*run.result.finished_at, *run.task_starts])
    stalls = []
    for back in run.comebacks:
        later = [t for t in events if t >= back]
        if later:
            stalls.append(later[0] - back)
    return max(stalls, default=0.0)


def verdict(run: Run, jobs: int) -> list[tuple[bool, str]]:
    r = run.result
    done_once = sum(1 for n in r.deliveries.values() if n == 1)
    twice = sum(1 for n in r.deliveries.values() if n > 1)
    ours = [code for code in r.failed_codes if code not in NOT_OURS]
    finished_jobs = sum(r.states.get(state, 0) for state in ("done", "failed", "cancelled"))
    lost = jobs - finished_jobs + len(ours)
    created_twice = r.created - len(set(r.task_ids))
    charged_ok = run.charged_in_quota == r.charged == r.images_posted
    billed_ok = run.billed_recorded == run.billed_by_wan
    stall = longest_stall(run)
    return [
        (True, f"delivered once: {done_once} of {jobs}"),
        (lost == 0, f"lost: {lost} (0){' ' + ', '.join(ours) if ours else ''}"),
        (twice == 0, f"delivered twice: {twice} (0)"),
        (created_twice == 0, f"Wan tasks created twice: {created_twice} (0)"),
        (
            charged_ok,
            f"ledger, members: charged {run.charged_in_quota} in the quota tables, "
            f"{r.charged} by the jobs, {r.images_posted} images posted (equal)",
        ),
        (
            billed_ok,
            f"ledger, owner: Wan billed {run.billed_by_wan}, the jobs recorded "
            f"{run.billed_recorded} (equal)",
        ),
        (
            stall <= STALL_TARGET,
            f"longest stall after the database came back: {stall:.1f} s (<= {STALL_TARGET:g} s)",
        ),
    ]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--running", type=float, default=2.0, help="seconds a Wan task runs")
    parser.add_argument("--members", type=int, default=30)
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without faults")
    parser.add_argument("--logs", type=Path, help="write each bot process's log in this folder")
    parser.add_argument(
        "--patience", type=float, default=600.0, help="seconds to wait for the jobs past their work"
    )
    args = parser.parse_args()
    dsn, folder = await asyncio.to_thread(pgcluster.start)
    runs: list[Run] = []
    try:
        host, port = dsn.rsplit("@", 1)[1].split("/")[0].split(":")
        async with TcpProxy(host, int(port)) as proxy:
            if not args.no_baseline:
                runs.append(await one_run("no faults", args, await fresh(dsn, "base"), proxy, None))
            url = await fresh(dsn, "faults")

            async def faults(run: Run) -> None:
                await database_misbehaves(folder, proxy, run)

            runs.append(await one_run("database faults", args, url, proxy, faults))
    finally:
        await asyncio.to_thread(pgcluster.stop, folder)
    load = os.getloadavg()
    print(
        f"{args.jobs} jobs, 3 processes on PostgreSQL, Wan tasks of {args.running:.1f} s, account "
        f"limits on; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
    )
    for run in runs:
        done = run.result.states.get("done", 0)
        print(
            f"{run.name}: {run.result.states} in {run.span:.0f} s, {done / run.span * 60:.0f} jobs/min"
        )
    faulty = runs[-1]
    print("\nfaults:")
    for line in faulty.faults:
        print(f"  {line}")
    checks = verdict(faulty, args.jobs)
    print()
    for passed, what in checks:
        print(f"{'PASS' if passed else 'MISS'}  {what}")
    ok = all(passed for passed, _ in checks)
    print("targets met" if ok else "targets MISSED")
    return 0 if ok else 1


async def fresh(dsn: str, name: str) -> str:
    """A new database on the throwaway server."""
    import asyncpg

    con = await asyncpg.connect(dsn)
    try:
        await con.execute(f'CREATE DATABASE "wanbot_{name}"')
    finally:
        await con.close()
    return dsn.rsplit("/", 1)[0] + f"/wanbot_{name}"


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
