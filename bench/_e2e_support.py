"""Helpers for bench/e2e.py: input images, subprocess memory sampling, percentiles, and the
emulator-side timeline of each task (when it ended, when it was first polled after that, when its
result was first downloaded)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from bot.sandbox import Emulator

# Three sizes inside Wan's 384-5000 px / 10 MB limits. Noise masked to 3 bits a channel keeps each
# PNG at 3-4 MB; compress_level=1 keeps making them under a second.
INPUT_SIZES: tuple[tuple[int, int], ...] = ((2000, 1500), (1600, 1800), (1800, 1500))


def noise_png(width: int, height: int) -> bytes:
    """A PNG of random pixels, a few MB, that every decoder accepts."""
    img = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    img = img.point(lambda v: v & 0xE0)
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


async def make_inputs() -> list[bytes]:
    return list(await asyncio.gather(*(asyncio.to_thread(noise_png, w, h) for w, h in INPUT_SIZES)))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 50 values is the 48th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil(n * fraction)
    return ordered[int(rank) - 1]


def _status_kb(pid: int, field_name: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far (/proc/PID/stat utime + stime)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class RssSampler:
    """Samples a process's VmRSS every `interval` seconds; `hwm_mb()` reads the kernel's VmHWM.

    Also its CPU time (`cpu_s`, the last reading): unlike wall time, what the process itself spent
    hardly depends on what else the machine runs."""

    pid: int
    interval: float = 0.05
    samples: list[tuple[float, float]] = field(default_factory=list)  # (time, MB)
    _task: asyncio.Task[None] | None = None
    last_hwm_kb: int | None = None
    cpu_s: float = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            kb = _status_kb(self.pid, "VmRSS")
            if kb is None:
                return
            self.samples.append((time.time(), kb / 1024))
            hwm = _status_kb(self.pid, "VmHWM")
            if hwm is not None:
                self.last_hwm_kb = hwm
            cpu = cpu_seconds(self.pid)
            if cpu is not None:
                self.cpu_s = cpu
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def hwm_mb(self) -> float:
        kb = _status_kb(self.pid, "VmHWM") or self.last_hwm_kb
        self.cpu_s = cpu_seconds(self.pid) or self.cpu_s
        return (kb or 0) / 1024

    def peak_sampled_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)


@dataclass(frozen=True)
class TaskTimes:
    """Wall-clock (Unix) times of one task as the emulator saw them."""

    task_id: str
    prompt: str
    ended_at: float
    first_poll_after_end: float | None
    first_download: float | None


def task_times(emu: Emulator, mono_to_wall: float) -> dict[str, TaskTimes]:
    """Per task id: when it ended, when the client first asked about it afterwards (it learnt the
    result from that answer), and when the client first fetched a result URL."""
    tokens: dict[str, str] = {}
    for task in emu.tasks.values():
        for entry in task.results:
            url = entry.get("url")
            if url:
                tokens[url.split("/results/", 1)[1].split(".png", 1)[0]] = task.task_id
    polls: dict[str, list[float]] = {}
    downloads: dict[str, float] = {}
    for arrived, method, path, _status in emu.request_log:
        wall = arrived + mono_to_wall
        if method == "GET" and "/tasks/" in path:
            polls.setdefault(path.rsplit("/", 1)[1], []).append(wall)
        elif path.startswith("/results/"):
            task_id = tokens.get(path.rsplit("/", 1)[1].removesuffix(".png"))
            if task_id is not None and task_id not in downloads:
                downloads[task_id] = wall
    out: dict[str, TaskTimes] = {}
    for task in emu.tasks.values():
        if task.ended_at is None:
            continue
        after = [t for t in polls.get(task.task_id, []) if t >= task.ended_at]
        out[task.task_id] = TaskTimes(
            task.task_id,
            task.params.prompt,
            task.ended_at,
            min(after) if after else None,
            downloads.get(task.task_id),
        )
    return out


@dataclass
class SlotGaps:
    """How long each Wan slot stood idle between one task's end and the next task's create, split
    into: the end noticed (`detect`: the first status query after it), the next create's request
    reaching Wan (`send`), and its body read whole (`body`). Creates past the first `slots` are
    matched, in order, with the task ends that freed their slots."""

    detect: list[float] = field(default_factory=list)
    send: list[float] = field(default_factory=list)
    body: list[float] = field(default_factory=list)

    @property
    def idle(self) -> list[float]:
        return [a + b + c for a, b, c in zip(self.detect, self.send, self.body, strict=True)]


def slot_gaps(
    emu: Emulator, slots: int, times: dict[str, TaskTimes], mono_to_wall: float
) -> SlotGaps:
    created = sorted(emu.tasks.values(), key=lambda t: t.submitted_at)
    posts = sorted(
        arrived + mono_to_wall
        for arrived, method, path, status in emu.request_log
        if method == "POST" and path.endswith("/image-synthesis") and status == 200
    )
    ends = sorted((t for t in times.values()), key=lambda t: t.ended_at)
    gaps = SlotGaps()
    if len(posts) != len(created):
        return gaps  # refused creates (429) would pair the wrong requests: no breakdown
    for k in range(slots, len(created)):
        freed = ends[k - slots] if k - slots < len(ends) else None
        if freed is None or freed.first_poll_after_end is None:
            continue
        noticed = freed.first_poll_after_end
        gaps.detect.append(noticed - freed.ended_at)
        gaps.send.append(posts[k] - noticed)
        gaps.body.append(created[k].submitted_at - posts[k])
    return gaps
