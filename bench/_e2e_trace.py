"""`python -m bot` with tracemalloc on, for `bench/e2e.py --trace` (where does the bot's peak come from?).

Run by e2e.py in place of `python -m bot`, in the bot's own process (the fakes stay in the bench's
process, so nothing here is theirs). A thread samples VmRSS every 50 ms; each time RSS reaches a new
high (by 4 MB or more) it takes a tracemalloc snapshot and keeps the largest allocation sites still
alive then, grouped by the first frame inside wanbot or a library it calls. At exit it writes one JSON
object to the file named by WANBOT_TRACE_OUT: {"samples": [[unix time, rss MB, traced MB], ...],
"peaks": [{"at", "rss_mb", "traced_mb", "sites": [[where, MB, blocks], ...]}, ...]}.

tracemalloc sees what Python allocates (bytes, lists, dicts: the images and bodies); not Pillow's
pixel buffers or other C allocations, which show as RSS minus traced. It slows the bot down, so a
traced run's latencies and wall time are not the bench's numbers.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FRAMES = 8
STEP_MB = 8.0
TOP = 12
OURS = (os.sep + "bot" + os.sep, os.sep + "cogs" + os.sep)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _where(trace: tracemalloc.Traceback) -> str:
    """The innermost frame in wanbot's code, with the innermost frame overall if that differs."""
    inner = trace[-1]
    for frame in reversed(trace):  # a Traceback lists the oldest frame first
        if any(part in frame.filename for part in OURS) and "site-packages" not in frame.filename:
            own = f"{_short(frame.filename)}:{frame.lineno}"
            top = f"{_short(inner.filename)}:{inner.lineno}"
            return own if own == top else f"{own} <- {top}"
    return f"{_short(inner.filename)}:{inner.lineno}"


def _short(filename: str) -> str:
    for marker in ("site-packages" + os.sep, os.sep + "bot" + os.sep, os.sep + "cogs" + os.sep):
        if marker in filename:
            head = "" if marker.startswith("site") else marker.strip(os.sep) + os.sep
            return head + filename.split(marker, 1)[1]
    return Path(filename).name


class Tracer:
    def __init__(self) -> None:
        self.samples: list[list[float]] = []
        self.peaks: list[dict] = []
        self.high = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            rss = _rss_mb()
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            self.samples.append([time.time(), rss, traced])
            if rss >= self.high + STEP_MB:
                self.high = rss
                self.peaks.append(self.snapshot(rss, traced))

    def snapshot(self, rss: float, traced: float) -> dict:
        sizes: dict[str, list[float]] = {}
        for stat in tracemalloc.take_snapshot().statistics("traceback"):
            key = _where(stat.traceback)
            entry = sizes.setdefault(key, [0.0, 0])
            entry[0] += stat.size / 2**20
            entry[1] += stat.count
        top = sorted(sizes.items(), key=lambda kv: -kv[1][0])[:TOP]
        return {
            "at": time.time(),
            "rss_mb": rss,
            "traced_mb": traced,
            "sites": [[k, round(v[0], 1), v[1]] for k, v in top],
        }

    def write(self) -> None:
        self.stop.set()
        out = os.environ.get("WANBOT_TRACE_OUT")
        if out:
            Path(out).write_text(json.dumps({"samples": self.samples, "peaks": self.peaks}))


def main() -> int:
    tracemalloc.start(FRAMES)
    tracer = Tracer()
    atexit.register(tracer.write)
    threading.Thread(target=tracer.run, name="wanbot-trace", daemon=True).start()
    from bot.__main__ import main as bot_main

    return bot_main([])


if __name__ == "__main__":
    sys.exit(main())
