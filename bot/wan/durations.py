"""How long Wan tasks run, learned from finished tasks, for the poll scheduler.

A kernel density over recent running times (`end_time - scheduled_time`), mixed with a prior (even
over the documented range, 30-120 s for the real service) that fades as real samples arrive, plus a
small heavy tail (Lomax) so a task that overruns everything seen so far is still expected to finish
soon-ish rather than at once or never. It answers with the hazard (chance per second that a task
running for `e` seconds ends now) and the cumulative hazard (-ln of the chance it is still running).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from bot.wan.models import TaskResult, TaskStatus

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
# A kernel is evaluated within this many bandwidths of its centre; beyond, it has all of its
# weight still to come (left) or none (right).
_REACH = 6.0


class DurationModel:
    def __init__(
        self,
        prior: tuple[float, float] = (30.0, 120.0),
        *,
        prior_weight: float = 3.0,
        prior_points: int = 8,
        max_samples: int = 64,
        relative_bandwidth: float = 0.1,
        min_bandwidth: float = 0.05,
        tail_weight: float = 0.03,
        tail_shape: float = 2.0,
        max_grid_points: int = 2000,
    ) -> None:
        lo, hi = prior
        if not 0 < lo <= hi:
            raise ValueError("prior must be (low, high) seconds with 0 < low <= high")
        self.prior = (lo, hi)
        width = max(hi - lo, lo * 0.2)
        step = width / prior_points
        # (centre, weight, bandwidth) kernels; the prior ones stay, real samples come and go.
        self._prior = [
            (lo + (i + 0.5) * (hi - lo) / prior_points, prior_weight / prior_points, step)
            for i in range(prior_points)
        ]
        self._samples: deque[float] = deque(maxlen=max_samples)
        self._rel_bw = relative_bandwidth
        self._min_bw = min_bandwidth
        self._tail_weight = tail_weight
        self._tail_shape = tail_shape
        self._max_points = max_grid_points
        self._unbuilt = 0  # samples learned since the grid was built
        self.version = 0  # changes whenever the answers do
        self._build()

    @property
    def samples(self) -> list[float]:
        return list(self._samples)

    def observe(self, seconds: float) -> None:
        """Learn one finished task's running time."""
        self.load([seconds])

    def load(self, samples: Iterable[float]) -> None:
        """Learn running times (a restarted process: the ones its predecessor learned).

        The grid is rebuilt when next asked, and only once the new samples are an eighth of all
        (every one of the first eight): one more sample among sixty barely moves the estimate,
        and a rebuild costs milliseconds of the event loop."""
        for seconds in samples:
            if seconds > 0 and math.isfinite(seconds):
                self._samples.append(seconds)
                self._unbuilt += 1

    def _fresh(self) -> None:
        if self._unbuilt and self._unbuilt >= max(1, len(self._samples) // 8):
            self._build()

    def _kernels(self) -> list[tuple[float, float, float]]:
        # Each sample's kernel is 10% of it wide, or narrower when the samples themselves agree
        # more closely (Silverman's rule): tasks that all take 2.0 s are expected at 2.0 s, not
        # anywhere in 1.6-2.4 s, so their polls can wait for their end.
        spread = _silverman(list(self._samples))
        real = [(d, 1.0, max(self._min_bw, min(self._rel_bw * d, spread))) for d in self._samples]
        # The prior fades as evidence arrives: after 12 samples it weighs a quarter of its start.
        fade = 1.0 / (1.0 + len(real) / 4.0)
        return [(c, w * fade, b) for c, w, b in self._prior] + real

    def _build(self) -> None:
        self._unbuilt = 0
        self.version += 1
        kernels = self._kernels()
        total = sum(w for _, w, _ in kernels)
        kernels = [(c, w / total, b) for c, w, b in kernels]
        # Scale of the tail: the mean running time.
        self._tau = sum(c * w for c, w, _ in kernels)
        # An even grid from 0 to past the last kernel, a quarter of the narrowest kernel apart
        # (so every kernel's shape is resolved), at most `max_grid_points` points.
        end = max(c + _REACH * b for c, _, b in kernels)
        step = max(min(b for _, _, b in kernels) / 4.0, end / self._max_points)
        n = math.ceil(end / step)
        self._step, self._end = step, n * step
        density = [0.0] * (n + 1)
        survival = [0.0] * (n + 1)
        # Weight of kernels still wholly ahead at each point, as a difference array.
        ahead = [0.0] * (n + 2)
        for c, w, b in kernels:
            first = max(0, math.ceil((c - _REACH * b) / step))
            last = min(n, math.floor((c + _REACH * b) / step))
            ahead[0] += w
            ahead[first] -= w
            for i in range(first, last + 1):
                z = (i * step - c) / b
                density[i] += w * math.exp(-0.5 * z * z) / (b * _SQRT2PI)
                survival[i] += w * 0.5 * math.erfc(z / _SQRT2)
        eps, a, tau = self._tail_weight, self._tail_shape, self._tau
        self._hazard: list[float] = []
        self._cumulative: list[float] = []
        still = 0.0
        for i in range(n + 1):
            still += ahead[i]
            e = i * step
            s = (1 - eps) * (survival[i] + still) + eps * (1.0 + e / tau) ** -a
            f = (1 - eps) * density[i] + eps * a / tau * (1.0 + e / tau) ** (-a - 1.0)
            s = max(s, 1e-300)
            self._hazard.append(f / s)
            self._cumulative.append(-math.log(s))

    def _at(self, grid: list[float], e: float) -> float:
        pos = e / self._step
        i = min(int(pos), len(grid) - 2)
        frac = pos - i
        return grid[i] * (1 - frac) + grid[i + 1] * frac

    def hazard(self, elapsed: float) -> float:
        """Finishing rate (1/s) of a task that has been running `elapsed` seconds."""
        self._fresh()
        e = max(0.0, elapsed)
        if e >= self._end:
            # Past every kernel only the tail is left: its hazard is a / (tau + e).
            return self._tail_shape / (self._tau + e)
        return self._at(self._hazard, e)

    def cumulative_hazard(self, elapsed: float) -> float:
        """-ln P(still running after `elapsed` seconds)."""
        self._fresh()
        e = max(0.0, elapsed)
        if e >= self._end:
            tau = self._tau
            return self._cumulative[-1] + self._tail_shape * math.log((tau + e) / (tau + self._end))
        return self._at(self._cumulative, e)

    @property
    def resolution(self) -> float:
        """Seconds between the points the answers are interpolated from."""
        self._fresh()
        return self._step

    def mean(self) -> float:
        self._fresh()
        return self._tau


def running_seconds(result: TaskResult) -> float | None:
    """How long a task that succeeded ran by Wan's own clock (None without both times). Failed
    tasks are left out: they often end at once and would skew the running times."""
    if result.status is not TaskStatus.SUCCEEDED:
        return None
    if result.scheduled_time is None or result.end_time is None:
        return None
    return (result.end_time - result.scheduled_time).total_seconds()


def _silverman(samples: list[float]) -> float:
    """Silverman's rule-of-thumb bandwidth (inf with fewer than 8 samples: not enough to trust)."""
    n = len(samples)
    if n < 8:
        return math.inf
    ordered = sorted(samples)
    mean = sum(ordered) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in ordered) / (n - 1))
    iqr = ordered[(3 * n) // 4] - ordered[n // 4]
    scale = min(sd, iqr / 1.34) if iqr > 0 else sd
    return 0.9 * scale * n**-0.2
