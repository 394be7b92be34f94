"""The trade-off the poll plan is chosen from: polls per task against detection lag, both as a
multiple of the official SDK's, for each worth of a poll (`PollConfig.poll_cost`).

Computed, not timed: the scheduler's own `next_poll_gap` and the SDK's documented sleeps
(1, 1, 2, 2, 2, 4, 4, 4, then 5 s) walked over tasks spread evenly over each range of running times,
each task alone (no budget limit, no queue). `bound` is the least any schedule could poll on an even
spread while keeping a given mean lag (dynamic programming on a 0.1 s grid), so the curve can be
read against what is possible at all.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bot.wan import PollConfig
from bot.wan.durations import DurationModel
from bot.wan.scheduler import next_poll_gap

SDK_SLEEPS = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0)
SDK_STEADY = 5.0
PENDING = 0.05  # the emulator's PENDING time before a task runs
FIRST_POLL = 0.2  # ours: a new task is first asked about a `min_interval` after its create
# Ranges of running times, in seconds: one deployment's tasks each, and all of them mixed.
DEPLOYMENTS = {"20-30 s": (20.0, 30.0), "40-60 s": (40.0, 60.0), "80-120 s": (80.0, 120.0)}
MIXED = {"20-120 s": (20.0, 120.0)}
COSTS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05)


def spread(lo: float, hi: float, n: int) -> list[float]:
    """n running times over [lo, hi], evenly spread but out of step with the SDK's 5 s polls (a
    low-discrepancy sequence), so neither client's lag depends on lucky multiples of 5 s."""
    return [lo + (hi - lo) * ((0.5 + i * 0.6180339887) % 1.0) for i in range(n)]


def sdk_plan(running: float) -> tuple[int, float]:
    """(polls, lag) of `ImageSynthesis.wait` on a task that runs `running` seconds."""
    end = PENDING + running
    t, polls = 0.0, 0
    while True:
        polls += 1
        if t >= end:
            return polls, t - end
        t += SDK_SLEEPS[polls - 1] if polls <= len(SDK_SLEEPS) else SDK_STEADY


def our_plan(
    running: float, model: DurationModel, cost: float, config: PollConfig
) -> tuple[int, float]:
    """(polls, lag) of our scheduler on a task that runs `running` seconds, knowing `model`."""
    end = PENDING + running
    t, polls = FIRST_POLL, 1
    while t < end:
        t += next_poll_gap(
            model, t - PENDING, cost, config.min_interval, config.running_max_interval
        )
        polls += 1
    return polls, t - end


def learned(lo: float, hi: float, config: PollConfig) -> DurationModel:
    """A model that has seen as many tasks of the range as it keeps."""
    model = DurationModel(config.prior)
    model.load(spread(lo, hi, 64))
    return model


def ratios(
    runs: Sequence[float], model: DurationModel, cost: float, config: PollConfig
) -> tuple[float, float]:
    """(polls per task, mean lag), each as a multiple of the SDK's on the same tasks."""
    ours = [our_plan(r, model, cost, config) for r in runs]
    sdk = [sdk_plan(r) for r in runs]
    polls = statistics.fmean(p for p, _ in ours) / statistics.fmean(p for p, _ in sdk)
    lag = statistics.fmean(lag for _, lag in ours) / statistics.fmean(lag for _, lag in sdk)
    return polls, lag


def bound(lo: float, hi: float, lag: float, step: float = 0.1, longest: float = 10.0) -> float:
    """The fewest polls per task any schedule needs on running times spread evenly over [lo, hi]
    for a mean lag of at most `lag` seconds: one poll when the task is created, none before `lo`
    (as if nothing could end earlier), then the best schedule from `lo` on (dynamic programming
    over the next poll's time, at most `longest` seconds on, minimising lag + λ·polls, λ
    searched)."""
    n = round((hi - lo) / step)
    width = hi - lo

    def best(price: float) -> tuple[float, float]:
        polls = [0.0] * (n + 1)
        lags = [0.0] * (n + 1)
        value = [0.0] * (n + 1)
        for i in range(n - 1, -1, -1):
            alive = (n - i) / n
            choice = None
            for j in range(i + 1, min(n, i + round(longest / step)) + 1):
                gap = (j - i) * step
                cost = price * alive + gap * gap / (2 * width) + value[j]
                if choice is None or cost < choice[0]:
                    choice = (cost, j, gap)
            assert choice is not None
            _, j, gap = choice
            value[i] = choice[0]
            polls[i] = alive + polls[j]
            lags[i] = gap * gap / (2 * width) + lags[j]
        return 1.0 + polls[0], lags[0]

    low, high = 1e-4, 1.0
    for _ in range(16):
        price = (low * high) ** 0.5
        _polls, mean_lag = best(price)
        if mean_lag > lag:
            high = price
        else:
            low = price
    return best(low)[0]


def table(config: PollConfig, chosen: float, tasks: int = 400) -> list[str]:
    """The curve as printable lines: for each worth of a poll, polls and lag as multiples of the
    SDK's, with the running times learned and from the prior alone."""
    ranges = {**DEPLOYMENTS, **MIXED}
    lines = [
        "poll plan trade-off: polls per task / mean lag, as multiples of the SDK's on the same tasks",
        "(computed from the scheduler's own plan, tasks alone; target x2.00 polls, x0.25 lag)",
        f"{'poll_cost':>10}  {'learned':<9}" + "".join(f"{name:>16}" for name in ranges),
    ]
    for cost in COSTS:
        for kind in ("learned", "prior"):
            cells = []
            for lo, hi in ranges.values():
                model = (
                    learned(lo, hi, config) if kind == "learned" else DurationModel(config.prior)
                )
                polls, lag = ratios(spread(lo, hi, tasks), model, cost, config)
                cells.append(f"x{polls:.2f} / x{lag:.3f}")
            mark = "*" if cost == chosen and kind == "learned" else " "
            lines.append(f"{cost:>9g}{mark}  {kind:<9}" + "".join(f"{c:>16}" for c in cells))
    for name, (lo, hi) in MIXED.items():
        sdk = [sdk_plan(r) for r in spread(lo, hi, tasks)]
        sdk_polls = statistics.fmean(p for p, _ in sdk)
        quarter = statistics.fmean(lag for _, lag in sdk) / 4
        least = bound(lo, hi, quarter)
        lines.append(
            f"best possible on {name} at a quarter of the SDK's lag ({quarter:.2f} s): "
            f"{least:.1f} polls per task, x{least / sdk_polls:.2f} of the SDK's {sdk_polls:.1f}"
        )
    return lines
