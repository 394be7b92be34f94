"""Drive several bot processes (`python -m bot`, the shipped command, as real subprocesses) on one
database against the fake Discord (one shard per process) and the emulator with the account's limits,
all served from this process. Used by `tests/cluster/test_cluster_processes.py` and `bench/cluster.py`.

The processes get only settings a user could set (README): the emulator's short tasks
(`WAN_TASK_SECONDS`), a short lease so a killed process's jobs are taken over within seconds
(`WANBOT_LEASE_SECONDS`), and a short create timeout (`WAN_REQUEST_TIMEOUT`, which also bounds the
window an unanswered create is looked for in).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bot.sandbox import Emulator, EmulatorConfig
from bot.store import Store, open_store
from tests.support.cluster_support import (
    guilds_on_every_shard,
    max_in_flight,
    max_queries_per_second,
)
from tests.support.fake_discord import Channel, FakeDiscord, Guild, User
from tests.support.first_run import REPO, BotProcess
from tests.support.harness import API_KEY, png

JOB_FOOTER = re.compile(r"Job #(\d+)")


@dataclass
class Cluster:
    fd: FakeDiscord
    emu: Emulator
    database_url: str
    places: list[tuple[Guild, Channel]]
    members: list[tuple[User, Guild, Channel]]
    processes: list[BotProcess] = field(default_factory=list)
    count: int = 1
    query_qps: int = 10
    tmp: Path = Path(".")
    lease_seconds: float = 3.0

    def env(self, shard: int) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "DISCORD_TOKEN": self.fd.token,
            "DASHSCOPE_API_KEY": API_KEY,
            "DASHSCOPE_BASE_URL": self.emu.base_url,
            "DISCORD_API_BASE": self.fd.api_base,
            "DATABASE_URL": self.database_url,
            "WAN_MAX_CONCURRENT_TASKS": "5",
            "WAN_MAX_JOBS_PER_USER": "3",
            "WAN_QUERY_QPS": str(self.query_qps),
            "WAN_DEFAULT_DAILY_LIMIT": "100",
            # No server ceiling nor bot-wide cap (50 and 100 a day by default): the bench's 200
            # jobs go to a process's two servers.
            "WAN_SERVER_DAILY_LIMIT": "0",
            "WAN_GLOBAL_DAILY_LIMIT": "0",
            "WANBOT_LOG_LEVEL": "INFO",
            "WAN_TASK_SECONDS": "0.2-3",
            "WANBOT_LEASE_SECONDS": str(self.lease_seconds),
            "WAN_REQUEST_TIMEOUT": "10",
        }
        if self.count > 1:
            env["WANBOT_SHARD_COUNT"] = str(self.count)
            env["WANBOT_SHARD_IDS"] = str(shard)
        return env

    async def start(self) -> None:
        for shard in range(self.count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                env=self.env(shard),
                cwd=self.tmp,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            bot = BotProcess(process)
            bot._reader = asyncio.create_task(bot._read())
            self.processes.append(bot)
        # Ready when every shard's session has had its servers (READY, GUILD_CREATE) and the
        # process says its runner is up (its heartbeat, written at on_ready).
        for bot in self.processes:
            await bot.wait_for_line(r"resumed \d+ unfinished job|from the shared queue", timeout=60)
        store = await open_store(self.database_url)
        try:
            deadline = time.monotonic() + 60
            while len(await _connected(store)) < self.count:
                if time.monotonic() > deadline:
                    raise TimeoutError("bot processes not connected in time")
                await asyncio.sleep(0.1)
        finally:
            await store.close()

    def kill(self, index: int) -> None:
        """kill -9: no clean stop, leases are left to run out."""
        self.processes[index].process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        for bot in self.processes:
            if bot.process.returncode is None:
                bot.process.send_signal(signal.SIGTERM)
        for bot in self.processes:
            try:
                await asyncio.wait_for(bot.process.wait(), 30)
            except TimeoutError:
                bot.process.kill()
                await bot.process.wait()
            if bot._reader is not None:
                with contextlib.suppress(Exception):
                    await bot._reader


async def _connected(store: Store) -> list[str]:
    from bot import health

    return [h.process for h in await health.heartbeats(store) if h.connected and not h.stopped]


@contextlib.asynccontextmanager
async def cluster(
    *,
    processes: int,
    database_url: str,
    tmp: Path,
    members: int = 40,
    running_seconds: float = 0.3,
    query_qps: int = 10,
) -> AsyncIterator[Cluster]:
    config = EmulatorConfig(
        api_keys={API_KEY},
        pending_seconds=0.05,
        running_seconds=running_seconds,
        max_running=5,
        submit_rps=5.0,
        query_qps=20.0,
    )
    fd = FakeDiscord()
    await fd.start()
    fd.world.recommended_shards = processes
    try:
        async with Emulator(config) as emu:
            owner = fd.add_user("owner")
            places = await guilds_on_every_shard(fd, processes, owner, per_shard=2)
            people = []
            for i in range(members):
                guild, channel = places[i % len(places)]
                user = fd.add_user(f"member{i}")
                fd.add_member(guild, user, permissions=0)
                people.append((user, guild, channel))
            c = Cluster(fd, emu, database_url, places, people, count=processes, tmp=tmp)
            c.query_qps = query_qps
            try:
                yield c
            finally:
                await c.stop()
    finally:
        await fd.close()


async def submit(c: Cluster, jobs: int) -> list[tuple[User, float]]:
    """`jobs` /wanedit requests spread over the members (at most 3 each); returns (member, time)."""
    image = c.fd.add_cdn_file(png(), "input.png", "image/png")
    sent: list[tuple[User, float]] = []
    for n in range(jobs):
        user, guild, channel = c.members[n % len(c.members)]
        sent.append((user, time.time()))
        await c.fd.slash(guild, channel, user, "wanedit", {"prompt": f"edit {n}", "image": image})
    return sent


@dataclass
class Outcome:
    states: dict[str, int]
    failed_codes: list[str]
    deliveries: dict[int, int]  # job id -> result messages posted
    images_posted: int
    task_ids: list[str]
    created: int
    charged: int
    max_in_flight: int
    max_qps: int
    throttled: int
    finished_at: list[float]
    created_at: list[float]
    wan_busy: float


async def finished(database_url: str, jobs: int, timeout: float) -> None:
    con = await asyncpg.connect(database_url) if database_url.startswith("postgres") else None
    deadline = time.monotonic() + timeout
    try:
        while True:
            if con is not None:
                done = await con.fetchval(
                    "SELECT count(*) FROM jobs WHERE state IN ('done', 'failed', 'cancelled')"
                )
            else:
                done = _sqlite_count(database_url)
            if done >= jobs:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {jobs} jobs finished")
            await asyncio.sleep(0.2)
    finally:
        if con is not None:
            await con.close()


def _sqlite_count(database_url: str) -> int:
    import sqlite3

    path = database_url.removeprefix("sqlite:///")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        row = conn.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('done', 'failed', 'cancelled')"
        ).fetchone()
        return int(row[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


async def outcome(c: Cluster) -> Outcome:
    store = await open_store(c.database_url)
    try:
        jobs = []
        for user, _guild, _channel in c.members:
            jobs += await store.jobs_for_user(user.id, limit=100)
    finally:
        await store.close()
    states: dict[str, int] = {}
    for job in jobs:
        states[job.state.value] = states.get(job.state.value, 0) + 1
    deliveries: dict[int, int] = {}
    images = 0
    channels = [ch for _, ch in c.places] + list(c.fd.threads)
    for channel in channels:
        for m in c.fd.messages(channel):
            if not m.get("attachments"):
                continue
            for embed in m.get("embeds", []):
                found = JOB_FOOTER.search((embed.get("footer") or {}).get("text") or "")
                if found:
                    deliveries[int(found[1])] = deliveries.get(int(found[1]), 0) + 1
                    images += len(m["attachments"])
                    break
    ended = [t for t in c.emu.tasks.values() if t.ended_at is not None]
    busy = sum(t.ended_at - t.submitted_at for t in ended)  # type: ignore[operator]
    span = (
        max(t.ended_at for t in ended) - min(t.submitted_at for t in ended)  # type: ignore[type-var]
        if ended
        else 0.0
    )
    return Outcome(
        states=states,
        failed_codes=[j.error_code or "" for j in jobs if j.state.value == "failed"],
        deliveries=deliveries,
        images_posted=images,
        task_ids=[j.task_id for j in jobs if j.task_id],
        created=c.emu.created_count,
        charged=sum(j.generated or 0 for j in jobs if j.state.value == "done"),
        max_in_flight=max_in_flight(c.emu),
        max_qps=max_queries_per_second(c.emu),
        throttled=sum(1 for _, _, _, status in c.emu.request_log if status == 429),
        finished_at=[j.finished_at.timestamp() for j in jobs if j.finished_at],
        created_at=[j.created_at.timestamp() for j in jobs],
        wan_busy=busy / (5 * span) if span else 0.0,
    )


async def quota_used(database_url: str) -> int:
    """Images charged in the quota tables (what members were billed)."""
    if database_url.startswith("postgres"):
        con = await asyncpg.connect(database_url)
        try:
            return int(
                await con.fetchval("SELECT coalesce(sum(used + extra_used), 0) FROM member_days")
            )
        finally:
            await con.close()
    import sqlite3

    conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        return int(
            conn.execute("SELECT coalesce(sum(used + extra_used), 0) FROM member_days").fetchone()[
                0
            ]
        )
    finally:
        conn.close()


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), read while it still runs."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
