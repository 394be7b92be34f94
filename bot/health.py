"""Health as a process reports it: every few seconds a running bot writes a heartbeat to the store
(is it connected to the gateway, is its job runner alive), and `python -m bot check --live` reads
them. Through the store, so it works for sqlite and PostgreSQL and for several processes at once.
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
# A heartbeat older than this means the process is gone or its event loop is stuck.
STALE_AFTER = 60.0
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


def judge(beats: list[Heartbeat], now: float) -> tuple[bool, list[str]]:
    """(healthy, one line per process). Healthy: at least one process runs, and every process that
    has not stopped cleanly is connected, with its runner alive, and heard of within STALE_AFTER."""
    lines: list[str] = []
    healthy = True
    running = 0
    for hb in beats:
        age = now - hb.written_at
        if age > FORGET_AFTER:
            continue
        name = f"{hb.process}{f' (shards {hb.shards})' if hb.shards else ''}"
        if hb.stopped:
            lines.append(f"[--]  {name}: stopped cleanly at {_when(hb.written_at)}")
            continue
        running += 1
        if age > STALE_AFTER:
            healthy = False
            lines.append(
                f"[FAIL] {name}: not running or stuck: last heartbeat {_ago(age)} "
                f"({_when(hb.written_at)})"
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
    if running == 0:
        healthy = False
        lines.append("[FAIL] no bot process is running with this database")
    return healthy, lines


async def live_check(
    store: Store, clock: Callable[[], float] = time.time
) -> tuple[bool, list[str]]:
    """Read every heartbeat and judge them now."""
    return judge(await heartbeats(store), clock())
