"""Health as a process reports it: every few seconds a running bot writes a heartbeat to the store
(is it connected to the gateway, is its job runner alive, can it use the database), and
`python -m bot check --live` reads them. Through the store, so it works for sqlite and PostgreSQL and
for several processes at once. A process that died is no longer counted once a newer process of the
same service (the same shards) has started, and the running processes remove its row.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from bot.store import Store

PREFIX = "heartbeat:"
BEAT_EVERY = 5.0
# A heartbeat this late means the process can't reach the database (or its event loop is stuck).
LATE_AFTER = 3 * BEAT_EVERY
# A heartbeat older than this means the process is gone or its event loop is stuck.
STALE_AFTER = 60.0
# A process stale this long, with other processes running, is taken for dead: they remove its row
# (the shards it ran, if nobody runs them now, still fail the check).
GONE_AFTER = STALE_AFTER + 3 * BEAT_EVERY
# A process not heard of for this long is not reported any more (it crashed long ago).
FORGET_AFTER = 24 * 3600.0


def process_name() -> str:
    """This process's name in the heartbeats: host and pid (a container's host name is its id)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Heartbeat:
    """What one process said about itself at `written_at` (Unix seconds)."""

    process: str
    written_at: float
    connected: bool
    # When `connected` last changed (or the process started), Unix seconds.
    since: float
    runner_alive: bool
    stopped: bool = False
    shards: str = ""
    latency: float | None = None
    # When the process started (Unix seconds): a later start of the same service replaces it.
    started_at: float = 0.0
    shard_count: int | None = None
    # Since when its job runner finds the database unusable (None: it answers).
    database_trouble_since: float | None = None

    @property
    def service(self) -> tuple[str, int | None]:
        """What the process runs (its shards of how many): a process that takes over from a dead
        one runs the same."""
        return self.shards, self.shard_count

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Heartbeat | None:
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError):
            return None


async def beat(store: Store, heartbeat: Heartbeat) -> None:
    """Write this process's heartbeat."""
    await store.set_meta(PREFIX + heartbeat.process, heartbeat.encode())


async def heartbeats(store: Store) -> list[Heartbeat]:
    """Every process's last heartbeat, by process name."""
    found = [Heartbeat.decode(v) for v in (await store.meta_items(PREFIX)).values()]
    return sorted((h for h in found if h is not None), key=lambda h: h.process)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _replaced(hb: Heartbeat, beats: list[Heartbeat], now: float) -> Heartbeat | None:
    """The newer process of the same service that took over from `hb`, when `hb` has gone quiet
    (stopped, or its heartbeat late)."""
    if not hb.stopped and now - hb.written_at <= LATE_AFTER:
        return None
    newer = [
        other
        for other in beats
        if other.process != hb.process
        and other.service == hb.service
        and other.started_at > hb.started_at
    ]
    return max(newer, key=lambda other: other.started_at, default=None)


def judge(beats: list[Heartbeat], now: float) -> tuple[bool, list[str]]:
    """(healthy, one line per process). Healthy: at least one process runs, every process that has
    neither stopped cleanly nor been replaced by a newer one of its service is connected, with its
    runner alive and its database answering, and heard of within LATE_AFTER, and every shard of a
    sharded bot has such a process."""
    lines: list[str] = []
    healthy = True
    running: list[Heartbeat] = []
    for hb in beats:
        age = now - hb.written_at
        if age > FORGET_AFTER:
            continue
        name = f"{hb.process}{f' (shards {hb.shards})' if hb.shards else ''}"
        successor = _replaced(hb, beats, now)
        if successor is not None:
            lines.append(
                f"[--]  {name}: replaced by {successor.process}, started at "
                f"{_when(successor.started_at)}"
            )
            continue
        if hb.stopped:
            lines.append(f"[--]  {name}: stopped cleanly at {_when(hb.written_at)}")
            continue
        running.append(hb)
        if age > STALE_AFTER:
            healthy = False
            lines.append(
                f"[FAIL] {name}: not running or stuck: last heartbeat {_ago(age)} "
                f"({_when(hb.written_at)})"
            )
        elif age > LATE_AFTER:
            healthy = False
            lines.append(
                f"[DEGRADED] {name}: no heartbeat for {_ago(age).removesuffix(' ago')}: it can't "
                "reach the database (its jobs wait and resume when it can), or it is stuck"
            )
        elif hb.database_trouble_since is not None:
            healthy = False
            lines.append(
                f"[DEGRADED] {name}: the database has been failing it since "
                f"{_when(hb.database_trouble_since)} ({_ago(now - hb.database_trouble_since)}); "
                "its jobs wait and resume by themselves when it answers"
            )
        elif not hb.connected:
            healthy = False
            lines.append(
                f"[FAIL] {name}: disconnected from the Discord gateway since {_when(hb.since)} "
                f"({_ago(now - hb.since)})"
            )
        elif not hb.runner_alive:
            healthy = False
            lines.append(f"[FAIL] {name}: connected, but its job runner has stopped")
        else:
            latency = f", gateway latency {hb.latency * 1000:.0f} ms" if hb.latency else ""
            lines.append(
                f"[ok]  {name}: connected since {_when(hb.since)}, job runner alive{latency}"
            )
    if not running:
        healthy = False
        lines.append("[FAIL] no bot process is running with this database")
    for count, missing in _unserved(running, now).items():
        healthy = False
        shards = ", ".join(str(i) for i in missing)
        lines.append(f"[FAIL] shard(s) {shards} of {count}: no running process runs them")
    return healthy, lines


def _unserved(running: list[Heartbeat], now: float) -> dict[int, list[int]]:
    """Per shard count in use, the shards no process that is heard of runs."""
    served: dict[int, set[int]] = {}
    for hb in running:
        if hb.shard_count is None:
            continue
        mine = served.setdefault(hb.shard_count, set())
        if now - hb.written_at <= STALE_AFTER:
            mine.update(int(i) for i in hb.shards.split(",") if i.strip().isdigit())
    return {
        count: missing
        for count, ids in served.items()
        if (missing := [i for i in range(count) if i not in ids])
    }


def leftovers(beats: list[Heartbeat], now: float) -> list[str]:
    """The processes whose rows can go: replaced by a newer one of their service, stale for
    GONE_AFTER, or not heard of for FORGET_AFTER."""
    gone = []
    for hb in beats:
        age = now - hb.written_at
        if (
            age > FORGET_AFTER
            or (not hb.stopped and age > GONE_AFTER)
            or _replaced(hb, beats, now) is not None
        ):
            gone.append(hb.process)
    return gone


async def forget_leftovers(store: Store, clock: Callable[[], float] = time.time) -> int:
    """Remove the rows `leftovers` names; how many."""
    gone = leftovers(await heartbeats(store), clock())
    if gone:
        await store.delete_meta([PREFIX + process for process in gone])
    return len(gone)


async def live_check(
    store: Store, clock: Callable[[], float] = time.time
) -> tuple[bool, list[str]]:
    """Read every heartbeat and judge them now."""
    return judge(await heartbeats(store), clock())
