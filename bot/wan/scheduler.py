"""One poll scheduler per client, shared by every task being waited on.

Budget: every poll takes a token from the client's `RateLimiter` (the account-wide query limit), so
however many tasks wait, the total query rate never exceeds `query_qps`.

Where polls go: a poll is worth `poll_cost` seconds of detection lag (the time a task lies finished
before we know). A RUNNING task is next asked about when the time it has probably lain finished
unnoticed since the last poll reaches that worth, by the learned running times (`DurationModel`):
rarely early in its run, often around its likely end, once just after it when that end is well
known. Where the running times are spread this is the square-root rule (polls per second
sqrt(h / 2λ) for hazard h and worth λ), which gives the least lag for a number of polls.

- The gap after a poll stays within [min_interval, running_max_interval] whatever the model says.
- PENDING tasks rarely finish by themselves (the account runs at most 5 tasks at once); they are
  polled slowly, except the oldest ones right after a slot frees up (a task we track finished, or
  fewer than `max_running` are known to be running): those are about to start, and seeing them
  start tells us when their running clock began.
- Every plan is a rate; when their sum would exceed the budget they are scaled down together (the
  floors too if they alone are too much). Each poll goes to the task whose next poll is most overdue
  (earliest deadline first), so no task is starved when the budget is tight.
- On a budget shared with other processes (a limiter with a `gate_rate`, enforced for all of them
  by the database, `bot.store.budget`), a task created PENDING while fewer than
  `max_running` of ours are unfinished has a free slot (the job runner takes one before each
  create): it is planned as running from then on, without a poll just to see it start, until an
  answer says it is still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.wan.durations import DurationModel, running_seconds
from bot.wan.errors import CLIENT_CLOSED, WAIT_TIMEOUT, WanError
from bot.wan.models import TaskResult, TaskStatus
from bot.wan.ratelimit import Limiter
from bot.wan.retry import Backoff

log = logging.getLogger(__name__)

OnUpdate = Callable[[TaskResult], Awaitable[None] | None]
Fetch = Callable[[str], Awaitable[TaskResult]]


@dataclass(frozen=True)
class PollConfig:
    # Per-task ceiling: never poll one task more often than this, however idle the budget.
    min_interval: float = 0.2
    # Floors: a RUNNING task is polled at least this often (the official SDK's steady interval,
    # so an end the running times did not foresee is never seen later than the SDK would), a
    # PENDING one at least that often (unless the budget forces everyone slower).
    running_max_interval: float = 5.0
    pending_max_interval: float = 15.0
    # λ: seconds of expected detection lag one poll is worth. Smaller = more polls, less lag.
    # Chosen from the trade-off curve in docs/polling.md: on tasks of 20 s to 2 minutes about 1.5
    # times the SDK's polls at a seventh of its lag.
    poll_cost: float = 0.02
    # Share of the limiter's rate the plan aims at; the rest absorbs cancels, lists and retries.
    budget_fraction: float = 0.9
    # The account runs at most this many tasks at once.
    max_running: int = 5
    # After a slot frees, the oldest PENDING tasks are expected to start within this many seconds.
    start_window: float = 3.0
    pending_start_hazard: float = 2.0
    pending_hazard: float = 0.0
    # Prior for running times (seconds); Wan documents 30-60 s (SDK) to 1-2 minutes (HTTP API).
    prior: tuple[float, float] = (30.0, 120.0)

    @classmethod
    def for_tasks(cls, shortest: float, longest: float) -> PollConfig:
        """The plan for tasks that usually run `shortest`-`longest` seconds (WAN_TASK_SECONDS):
        that prior, and floors scaled to it (the defaults for Wan's own 30-120 s). The running
        floor follows the longest time, not the shortest: floors of 0.5 s for five short tasks
        alone asked 10 queries/s (bench/cluster.py), the whole budget spent on early polls."""
        return cls(
            prior=(shortest, longest),
            running_max_interval=min(5.0, max(0.5, longest)),
            pending_max_interval=min(15.0, max(2.0, longest)),
        )


def next_poll_gap(
    durations: DurationModel, since_start: float, cost: float, lo: float, hi: float
) -> float:
    """Seconds from a poll sent `since_start` seconds into a task's run to the next one: when the
    time the task has probably lain finished since that poll, E[(t - end)+ | running then],
    reaches `cost`; at least `lo`, at most `hi`.

    That time is the integral of P(ended by x | running at the poll) from the poll to t, with
    P = 1 - exp(-(H(x) - H(poll))) for the cumulative hazard H. Stepped at the model's resolution,
    64 steps over `hi` at least."""
    h0 = durations.cumulative_hazard(since_start)
    dt = min(durations.resolution, hi / 64.0)
    lag = 0.0
    t = 0.0
    ended = 0.0
    while t < hi:
        after = 1.0 - math.exp(h0 - durations.cumulative_hazard(since_start + t + dt))
        step_lag = (ended + after) * dt / 2.0
        if lag + step_lag >= cost:
            # Where within this step the lag reaches the cost (linear between the ends).
            t += dt * (cost - lag) / step_lag
            return min(hi, max(lo, t))
        lag += step_lag
        ended = after
        t += dt
    return hi


@dataclass
class _Waiter:
    queue: asyncio.Queue[TaskResult | WanError] = field(default_factory=asyncio.Queue)


@dataclass
class _Watch:
    task_id: str
    order: int
    registered_at: float
    status: TaskStatus | None = None
    strange: int = 0  # undocumented statuses answered in a row (their polls back off)
    last_sent: float | None = None  # monotonic time the last poll was sent (or the task created)
    in_flight: bool = False
    pending_seen_at: float | None = None  # sent time of the last poll that saw PENDING
    created_at: float | None = None
    start_est: float | None = None  # monotonic estimate of when it started RUNNING
    # Created PENDING into a free slot: planned as running since then (no poll spent just to see
    # it start); cleared when a poll sees it still PENDING.
    presumed_start: float | None = None
    errors: int = 0
    not_before: float = float("-inf")
    polls: int = 0
    waiters: list[_Waiter] = field(default_factory=list)


@dataclass(frozen=True)
class _Hint:
    status: TaskStatus
    created_at: float
    order: int
    free_slot: bool = False


class PollScheduler:
    def __init__(
        self,
        fetch: Fetch,
        limiter: Limiter,
        *,
        config: PollConfig | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or PollConfig()
        self.durations = DurationModel(self.config.prior)
        self._fetch = fetch
        self._limiter = limiter
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._wall = wall_clock
        self._watches: dict[str, _Watch] = {}
        self._hints: OrderedDict[str, _Hint] = OrderedDict()
        self._order = itertools.count()
        self._slot_freed_at = float("-inf")
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._polls: set[asyncio.Task[None]] = set()
        self._closed = False
        self._due = 0.0
        self._gap_cache: dict[str, tuple[tuple[float, float, int], float]] = {}
        # Seconds a task created into a free slot stays PENDING (Wan's scheduled - submit time).
        self._pending_est = 0.0
        self.total_polls = 0

    # ---- public ----------------------------------------------------------------------------

    def note_created(self, task_id: str, status: TaskStatus) -> None:
        """Remember a task we just created: its status and creation time seed its first polls.
        Created while fewer than `max_running` of our tasks are unfinished, it has a free slot
        at Wan (the job runner takes a slot before each create, counted in the database for all
        processes): it starts within Wan's brief PENDING, so it is planned as running at once."""
        unfinished = sum(
            1 for w in self._watches.values() if w.status is None or not w.status.is_final
        ) + sum(1 for h in self._hints.values() if not h.status.is_final)
        # Only on a shared budget, where the poll it saves is another process's: one process
        # still asks at once, so the member sees "Wan is editing" for a short task too.
        free = self._shared() and unfinished < self.config.max_running
        self._hints[task_id] = _Hint(status, self._clock(), next(self._order), free)
        while len(self._hints) > 1000:
            self._hints.popitem(last=False)

    async def watch(
        self,
        task_id: str,
        *,
        on_update: OnUpdate | None = None,
        timeout: float | None = None,
    ) -> TaskResult:
        """Wait until `task_id` reaches a final status; `on_update` sees every status change."""
        if self._closed:
            raise WanError(CLIENT_CLOSED, "the Wan client is closed", retryable=True)
        waiter = _Waiter()
        self._register(task_id, waiter)
        last: TaskStatus | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    item = await waiter.queue.get()
                    if isinstance(item, WanError):
                        raise item
                    if item.status != last:
                        last = item.status
                        await _call(on_update, item, task_id)
                    if item.status.is_final:
                        return item
        except TimeoutError:
            raise WanError(
                WAIT_TIMEOUT, f"task {task_id} not finished after {timeout} s", retryable=True
            ) from None
        finally:
            self._unregister(task_id, waiter)

    def polls_for(self, task_id: str) -> int:
        w = self._watches.get(task_id)
        return w.polls if w else 0

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._loop_task, *self._polls) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        closed = WanError(CLIENT_CLOSED, "the Wan client is closed", retryable=True)
        for w in self._watches.values():
            for waiter in w.waiters:
                waiter.queue.put_nowait(closed)

    # ---- registration ----------------------------------------------------------------------

    def _register(self, task_id: str, waiter: _Waiter) -> None:
        w = self._watches.get(task_id)
        if w is None:
            now = self._clock()
            hint = self._hints.pop(task_id, None)
            w = _Watch(
                task_id=task_id,
                order=hint.order if hint else next(self._order),
                registered_at=now,
            )
            if hint is not None and not hint.status.is_final:
                # We know its status from the create call: no need to ask right away.
                w.status = hint.status
                w.created_at = hint.created_at
                w.last_sent = hint.created_at
                if hint.status == TaskStatus.PENDING:
                    w.pending_seen_at = hint.created_at
                    if hint.free_slot:
                        w.presumed_start = hint.created_at + self._pending_est
            self._watches[task_id] = w
        w.waiters.append(waiter)
        self._ensure_loop()
        self._wake.set()

    def _unregister(self, task_id: str, waiter: _Waiter) -> None:
        w = self._watches.get(task_id)
        if w is None:
            return
        with contextlib.suppress(ValueError):
            w.waiters.remove(waiter)
        if not w.waiters:
            del self._watches[task_id]
            self._gap_cache.pop(task_id, None)
            self._wake.set()

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="wan-poll-scheduler")

    # ---- planning --------------------------------------------------------------------------

    def rates(self, now: float) -> dict[str, float]:
        """Planned polls per second for each watched task with a known status, within the budget."""
        cfg = self.config
        hi = 1.0 / cfg.min_interval
        known = [w for w in self._watches.values() if w.status is not None]
        running = sum(1 for w in known if _runs(w))
        free = cfg.max_running - running
        pending = sorted((w for w in known if not _runs(w)), key=lambda w: w.order)
        rank = {w.task_id: i for i, w in enumerate(pending)}
        want: dict[str, float] = {}
        floor: dict[str, float] = {}
        for w in known:
            if _runs(w):
                want[w.task_id] = 1.0 / self._gap(w, now)
                floor[w.task_id] = 1.0 / cfg.running_max_interval
            else:
                since = max(self._slot_freed_at, w.created_at or w.registered_at)
                starting = rank.get(w.task_id, free) < free and now - since < cfg.start_window
                h = cfg.pending_start_hazard if starting else cfg.pending_hazard
                want[w.task_id] = math.sqrt(h / (2.0 * cfg.poll_cost))
                floor[w.task_id] = 1.0 / cfg.pending_max_interval
        return _fit(want, floor, hi, self._budget())

    def _started(self, w: _Watch, now: float) -> float:
        if w.start_est is not None:
            return w.start_est
        return w.presumed_start if w.presumed_start is not None else now

    def _gap(self, w: _Watch, now: float) -> float:
        """Seconds from a running task's last poll to its next, by its likely end (cached until
        the task is polled again or the model changes)."""
        sent = w.last_sent if w.last_sent is not None else now
        start = self._started(w, now)
        key = (sent, start, self.durations.version)
        cached = self._gap_cache.get(w.task_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        cfg = self.config
        gap = next_poll_gap(
            self.durations,
            sent - start,
            cfg.poll_cost,
            cfg.min_interval,
            cfg.running_max_interval,
        )
        self._gap_cache[w.task_id] = (key, gap)
        return gap

    def _shared(self) -> bool:
        return getattr(self._limiter, "gate_rate", None) is not None

    def _budget(self) -> float:
        """Queries per second the plan may spend: a share of the limiter's rate, or of the budget
        shared with other processes when that is lower (the database arbitrates between them)."""
        cfg = self.config
        rate = self._limiter.rate
        shared: float | None = getattr(self._limiter, "gate_rate", None)
        if shared is None:
            return cfg.budget_fraction * rate
        return cfg.budget_fraction * min(rate, shared)

    def _next(self, now: float) -> _Watch | None:
        """The watched task whose next poll is due first (or None), with its due time set."""
        rates = self.rates(now)
        best: tuple[float, int, _Watch] | None = None
        for w in self._watches.values():
            if w.in_flight:
                continue
            if w.status is None or w.last_sent is None:
                due = w.registered_at
            else:
                due = w.last_sent + 1.0 / rates[w.task_id]
            due = max(due, w.not_before)
            if best is None or (due, w.order) < best[:2]:
                best = (due, w.order, w)
        if best is None:
            return None
        self._due = best[0]
        return best[2]

    # ---- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug here must not leave every waiter hanging: log it and carry on.
                log.exception("poll scheduler step failed")
                await asyncio.sleep(0.5)

    async def _step(self) -> None:
        """Wait for the most urgent poll to be due and for a token, then launch it."""
        self._wake.clear()
        w = self._next(self._clock())
        if w is None:
            await self._wake.wait()
            return
        delay = self._due - self._clock()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            return
        await self._limiter.acquire()
        # Things may have changed while we waited for the token: ask again.
        w = self._next(self._clock())
        if w is None or self._due > self._clock() + 1.0 / self._limiter.rate:
            return
        w.in_flight = True
        task = asyncio.create_task(self._poll(w), name=f"wan-poll-{w.task_id}")
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)

    async def _poll(self, w: _Watch) -> None:
        sent = self._clock()
        w.last_sent = sent
        w.polls += 1
        self.total_polls += 1
        try:
            result = await self._fetch(w.task_id)
        except WanError as err:
            self._poll_failed(w, err)
        except Exception as err:  # a bug in parsing etc.: keep trying, but say so
            log.exception("poll of task %s failed unexpectedly", w.task_id)
            self._poll_failed(w, WanError("Unknown", type(err).__name__, retryable=True))
        else:
            w.errors = 0
            self._observe(w, result, sent, self._clock())
        finally:
            w.in_flight = False
            self._wake.set()

    def _poll_failed(self, w: _Watch, err: WanError) -> None:
        if not err.retryable:
            log.warning(
                "task %s: poll failed: %s (request %s)", w.task_id, err.code, err.request_id
            )
            self._deliver(w, err)
            self._watches.pop(w.task_id, None)
            return
        w.errors += 1
        delay = self._backoff.delay(w.errors - 1, err.retry_after)
        w.not_before = self._clock() + delay
        if err.http_status == 429:
            # The whole account is throttled, not just this task.
            self._limiter.pause(delay)
        log.info("task %s: poll failed (%s), next try in %.2f s", w.task_id, err.code, delay)

    def _observe(self, w: _Watch, result: TaskResult, sent: float, received: float) -> None:
        prev = w.status
        w.status = result.status
        if result.status == TaskStatus.PENDING:
            w.pending_seen_at = sent
            w.presumed_start = None  # it is waiting for a slot after all
        elif result.status == TaskStatus.RUNNING and w.start_est is None:
            w.start_est = self._start_estimate(w, result.scheduled_time, received)
        if result.status == TaskStatus.UNRECOGNISED:
            # Not final: ask again, backing off while the answers stay strange.
            w.strange += 1
            w.not_before = self._clock() + self._backoff.delay(w.strange - 1, None)
        else:
            w.strange = 0
        if result.status.is_final:
            if prev in (None, TaskStatus.RUNNING) or w.presumed_start is not None:
                self._slot_freed_at = received
            self._gap_cache.pop(w.task_id, None)
            self._learn(w, result, received)
            self._watches.pop(w.task_id, None)
        self._deliver(w, result)

    def _start_estimate(self, w: _Watch, scheduled: datetime | None, received: float) -> float:
        """When the task began running, on our monotonic clock.

        It began after the last poll that saw it PENDING was sent and before this answer arrived;
        `scheduled_time` (server clock) narrows that down when present.
        """
        lo = w.pending_seen_at if w.pending_seen_at is not None else w.created_at
        hi = received
        if scheduled is not None:
            est = received - (self._wall() - scheduled.timestamp())
            return min(max(est, lo), hi) if lo is not None else min(est, hi)
        return (lo + hi) / 2.0 if lo is not None else hi

    def _learn(self, w: _Watch, result: TaskResult, received: float) -> None:
        if result.status != TaskStatus.SUCCEEDED:
            return  # failures are often instant and would skew the running times
        if w.presumed_start is not None and result.submit_time and result.scheduled_time:
            pending = (result.scheduled_time - result.submit_time).total_seconds()
            if 0.0 <= pending < self.config.start_window:
                self._pending_est += 0.2 * (pending - self._pending_est)
        seconds = running_seconds(result)
        if seconds is not None:
            self.durations.observe(seconds)
        elif w.start_est is not None:
            self.durations.observe(received - w.start_est)

    def _deliver(self, w: _Watch, item: TaskResult | WanError) -> None:
        for waiter in w.waiters:
            waiter.queue.put_nowait(item)


def _runs(w: _Watch) -> bool:
    """Planned as running: seen RUNNING, or created into a free slot and not seen waiting."""
    return w.status == TaskStatus.RUNNING or (
        w.status == TaskStatus.PENDING and w.presumed_start is not None
    )


def _fit(
    want: dict[str, float], floor: dict[str, float], hi: float, budget: float
) -> dict[str, float]:
    """Clamp each wanted rate to [floor, hi]; if the sum exceeds the budget, scale the wanted rates
    down together (keeping their sqrt-hazard proportions), and the floors too if they alone are too
    much."""

    def total(c: float) -> float:
        return sum(min(hi, max(floor[k], c * v)) for k, v in want.items())

    if total(1.0) <= budget:
        return {k: min(hi, max(floor[k], v)) for k, v in want.items()}
    floor_sum = sum(floor.values())
    if floor_sum >= budget:
        return {k: floor[k] * budget / floor_sum for k in want}
    lo_c, hi_c = 0.0, 1.0
    for _ in range(40):
        mid = (lo_c + hi_c) / 2.0
        if total(mid) <= budget:
            lo_c = mid
        else:
            hi_c = mid
    return {k: min(hi, max(floor[k], lo_c * v)) for k, v in want.items()}


async def _call(on_update: OnUpdate | None, result: TaskResult, task_id: str) -> None:
    if on_update is None:
        return
    try:
        ret = on_update(result)
        if inspect.isawaitable(ret):
            await ret
    except Exception:
        # The caller's progress display failing must not stop us from waiting for the result.
        log.exception("on_update for task %s raised", task_id)
