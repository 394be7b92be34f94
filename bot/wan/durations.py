"""How long Wan tasks run, learned from finished tasks, as a hazard rate for the poll scheduler.

The hazard h(e) is the chance per second that a task which has been running for `e` seconds finishes
now. The model is a kernel density over recent running times (`end_time - scheduled_time`), mixed with
a prior (uniform over 30-120 s: the real service documents "1 to 2 minutes") that fades as
real samples arrive, plus a small heavy tail (Lomax) so a task that overruns everything seen so far
is still expected to finish soon-ish rather than at once or never.
"""

from __future__ import annotations

import math
from collections import deque

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


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
        grid_points: int = 400,
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
        self.observed = 0  # samples learned so far (changes whenever the model does)
        self._rel_bw = relative_bandwidth
        self._min_bw = min_bandwidth
        self._tail_weight = tail_weight
        self._tail_shape = tail_shape
        self._grid_points = grid_points
        self._build()

    @property
    def samples(self) -> list[float]:
        return list(self._samples)

    def observe(self, seconds: float) -> None:
        """Learn one finished task's running time."""
        if seconds > 0 and math.isfinite(seconds):
            self._samples.append(seconds)
            self.observed += 1
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
        kernels = self._kernels()
        total = sum(w for _, w, _ in kernels)
        self._kernels_norm = [(c, w / total, b) for c, w, b in kernels]
        # Scale of the tail: the mean running time.
        self._tau = sum(c * w for c, w, _ in self._kernels_norm)
        # A log-spaced grid: equal relative resolution for 0.2 s test tasks and 2 min real ones.
        self._grid_start = self._min_bw / 4.0
        self._grid_end = max(c + 4.0 * b for c, _, b in self._kernels_norm)
        self._log_start = math.log(self._grid_start)
        self._log_step = (math.log(self._grid_end) - self._log_start) / self._grid_points
        self._grid = [
            self._exact(math.exp(self._log_start + i * self._log_step))
            for i in range(self._grid_points + 1)
        ]

    def _exact(self, e: float) -> float:
        density = 0.0
        survival = 0.0
        for c, w, b in self._kernels_norm:
            z = (e - c) / b
            density += w * math.exp(-0.5 * z * z) / (b * _SQRT2PI)
            survival += w * 0.5 * math.erfc(z / _SQRT2)
        eps = self._tail_weight
        a, tau = self._tail_shape, self._tau
        tail_survival = (1.0 + e / tau) ** -a
        tail_density = a / tau * (1.0 + e / tau) ** (-a - 1.0)
        return ((1 - eps) * density + eps * tail_density) / max(
            (1 - eps) * survival + eps * tail_survival, 1e-300
        )

    def hazard(self, elapsed: float) -> float:
        """Finishing rate (1/s) of a task that has been running `elapsed` seconds."""
        e = max(0.0, elapsed)
        if e >= self._grid_end:
            # Past every kernel only the tail is left: its hazard is a / (tau + e).
            return self._tail_shape / (self._tau + e)
        if e <= self._grid_start:
            return self._grid[0]
        pos = (math.log(e) - self._log_start) / self._log_step
        i = min(int(pos), self._grid_points - 1)
        frac = pos - i
        return self._grid[i] * (1 - frac) + self._grid[i + 1] * frac

    def mean(self) -> float:
        return self._tau


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
