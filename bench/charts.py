"""What a usage chart costs the bot: memory and time, drawn with Pillow (bot/charts) against the
same chart drawn with matplotlib's Agg backend (bench/_charts_matplotlib.py).

    python bench/charts.py [--runs 3] [--renders 20]

Each variant runs in fresh processes (after one warm-up process, so matplotlib's font cache is
built): the process first imports what a running bot has loaded (discord.py, aiohttp, the job
runner, the store), which is the baseline, then draws the owner's chart of 30 days with five panels
in Chinese (the bigger font work), then draws it `--renders` more times. Printed per variant: the
process's memory at the baseline, what the first chart added to it (import, font, drawing), the
first chart's time and the median time per chart after it; medians over `--runs` processes.

Targets, PASS or MISS beside each: a chart adds at most 25 MB to the bot's memory (the baseline, the
bot's modules alone, is about 55 MB), the first chart takes at most 0.5 s, each later one at most 100 ms.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("none", "pillow", "matplotlib")
ADDED_MB = 25.0
FIRST_S = 0.5
EACH_MS = 100.0


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sample_chart():  # type: ignore[no-untyped-def]
    from bot.charts import Bar, Panel, UsageChart
    from bot.charts.gather import chart_title

    today = date(2025, 12, 7)

    def bars(scale: int) -> tuple[Bar, ...]:
        return tuple(
            Bar(
                today - timedelta(days=29 - i),
                {"delivered": scale * (i % 7 + 1), "undelivered": i % 3, "daily_limit": i % 4},
            )
            for i in range(30)
        )

    panels = [Panel("全部", bars(10), 100)]
    panels += [Panel(f"服务器 {n}", bars(n), 40) for n in range(1, 5)]
    return UsageChart(chart_title(30), tuple(panels), today)


def measure(variant: str, renders: int) -> dict[str, float]:
    """In this process: the baseline imports, then the variant's charts."""
    import aiohttp  # noqa: F401
    import discord  # noqa: F401

    import bot.jobs
    import bot.store
    import bot.wan  # noqa: F401

    base = rss_mb()
    chart = sample_chart()
    started = time.perf_counter()
    if variant == "pillow":
        from bot.charts import render
    elif variant == "matplotlib":
        from _charts_matplotlib import render_matplotlib as render
    else:
        return {"base": base, "added": rss_mb() - base, "first": 0.0, "each": 0.0, "peak": 0.0}
    png = render(chart, "zh-CN")
    first = time.perf_counter() - started
    added = rss_mb() - base
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        render(chart, "zh-CN")
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    return {
        "base": base,
        "added": added,
        "first": first,
        "each": statistics.median(times),
        "peak": peak,
        "png_kb": len(png) / 1024,
    }


def run(variant: str, renders: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", variant, "--renders", str(renders)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.renders)))
        return 0
    results: dict[str, dict[str, float]] = {}
    for variant in VARIANTS:
        run(variant, 1)  # warm-up: matplotlib builds its font cache once per machine
        samples = [run(variant, args.renders) for _ in range(args.runs)]
        results[variant] = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    print(
        f"{'variant':<11} {'bot MB':>7} {'+MB first':>9} {'+MB peak':>8} "
        f"{'first s':>8} {'each ms':>8} {'PNG kB':>7}"
    )
    for variant, r in results.items():
        print(
            f"{variant:<11} {r['base']:7.1f} {r['added']:9.1f} {r['peak']:8.1f} "
            f"{r['first']:8.3f} {r['each'] * 1000:8.1f} {r.get('png_kb', 0):7.1f}"
        )
    ok = True
    for variant in ("pillow", "matplotlib"):
        r = results[variant]
        checks = [
            (f"adds <= {ADDED_MB:.0f} MB", max(r["added"], r["peak"]) <= ADDED_MB),
            (f"first chart <= {FIRST_S} s", r["first"] <= FIRST_S),
            (f"each chart <= {EACH_MS:.0f} ms", r["each"] * 1000 <= EACH_MS),
        ]
        for what, passed in checks:
            print(f"{'PASS' if passed else 'MISS'}  {variant}: {what}")
        if variant == "pillow":
            ok = ok and all(passed for _, passed in checks)
    print("targets met by the bot's renderer (pillow)" if ok else "targets MISSED by pillow")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
