"""One poll scheduler per client, shared by every task being waited on.

Budget: every poll takes a token from the client's `RateLimiter` (the account-wide query limit), so
however many tasks wait, the total query rate never exceeds `query_qps`.

Where the budget goes: polling a task at rate r costs r polls per second and, if the task finishes
with hazard h (chance per second), leaves on average h / (2r) seconds of detection lag per second.
Minimising total lag for a fixed total rate gives r ∝ sqrt(h) (a Lagrange multiplier: r = sqrt(h / 2λ)
where λ is what one poll is worth in seconds of lag, `poll_cost`). So:

- RUNNING tasks use the hazard of the learned running-time distribution (`DurationModel`) at their
  elapsed running time: rarely polled early on, often around their likely end.
- PENDING tasks rarely finish by themselves (the account runs at most 5 tasks at once); they are
  polled slowly, except the oldest ones right after a slot frees up (a task we track finished, or
  fewer than `max_running` are known to be running): those are about to start, and seeing them
  start tells us when their running clock began.
- Rates are clamped to [floor, 1/min_interval] and scaled down together when their sum would exceed
  the budget. Each poll goes to the task whose next poll is most overdue (earliest deadline first),
  so no task is starved when the budget is tight.
- A task created PENDING while fewer than `max_running` of ours are unfinished has a free slot (the
  job runner takes one before each create): it is planned as running from then on, without a poll
  just to see it start, until an answer says it is still waiting.
- On a budget shared with other processes (a limiter with a `gate_rate`) the budget is not filled:
  a running task is next asked about when its learned running time says it has most likely ended
  since the last poll (`shared_end_quantile`), so a well-known running time costs about one poll,
  and the processes' polls together stay well under the shared budget, which the database
  enforces for all of them (`bot.store.budget`).
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

from bot.wan.durations import DurationModel
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
    # Floors: a RUNNING task is polled at least this often, a PENDING one at least that often
    # (unless the budget forces everyone slower).
    running_max_interval: float = 3.0
    pending_max_interval: float = 15.0
    # λ: seconds of expected detection lag one poll is worth. Smaller = more polls, less lag.
    poll_cost: float = 0.0005
    # λ on a budget shared with other processes: there a poll spent early on one task is a grant
    # another process's task, just ended, waits for, so polls are priced to go where ends are
    # expected instead of filling the budget (see `_budget`).
    shared_poll_cost: float = 0.05
    # On a shared budget, a running task is next asked about when it has ended since the last
    # poll with this probability (by the learned running times; see `_integrated_due`).
    shared_end_quantile: float = 0.8
    # Share of the limiter's rate the plan aims at; the rest absorbs cancels, lists and retries.
    budget_fraction: float = 0.9
    # The account runs at most this many tasks at once.
    max_running: int = 5
    # After a slot frees, the oldest PENDING tasks are expected to start within this many seconds.
    start_window: float = 3.0
    pending_start_hazard: float = 2.0
    pending_hazard: float = 0.0
    # Prior for running times (seconds); the real service takes 1-2 minutes.
    prior: tuple[float, float] = (30.0, 120.0)

    @classmethod
    def for_tasks(cls, shortest: float, longest: float) -> PollConfig:
        """The plan for tasks that usually run `shortest`-`longest` seconds (WAN_TASK_SECONDS):
        that prior, and floors scaled to it (the defaults for Wan's own 30-120 s). The running
        floor follows the longest time, not the shortest: floors of 0.5 s for five short tasks
        alone asked 10 queries/s (bench/cluster.py), the whole budget spent on early polls."""
        return cls(
            prior=(shortest, longest),
            running_max_interval=min(3.0, max(0.5, longest)),
            pending_max_interval=min(15.0, max(2.0, longest)),
        )


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
        self._due_cache: dict[str, tuple[tuple[float, float, int], float]] = {}
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
            self._due_cache.pop(task_id, None)
            self._wake.set()

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="wan-poll-scheduler")

    # ---- planning --------------------------------------------------------------------------

    def rates(self, now: float) -> dict[str, float]:
        """Planned polls per second for each watched task with a known status."""
        cfg = self.config
        hi = 1.0 / cfg.min_interval
        known = [w for w in self._watches.values() if w.status is not None]
        running = sum(1 for w in known if _runs(w))
        free = cfg.max_running - running
        pending = sorted((w for w in known if not _runs(w)), key=lambda w: w.order)
        rank = {w.task_id: i for i, w in enumerate(pending)}
        cost = self._poll_cost()
        want: dict[str, float] = {}
        floor: dict[str, float] = {}
        for w in known:
            if _runs(w):
                h = self.durations.hazard(now - self._started(w, now))
                floor[w.task_id] = 1.0 / cfg.running_max_interval
            else:
                since = max(self._slot_freed_at, w.created_at or w.registered_at)
                starting = rank.get(w.task_id, free) < free and now - since < cfg.start_window
                h = cfg.pending_start_hazard if starting else cfg.pending_hazard
                floor[w.task_id] = 1.0 / cfg.pending_max_interval
            want[w.task_id] = math.sqrt(h / (2.0 * cost))
        return _fit(want, floor, hi, self._budget())

    def _started(self, w: _Watch, now: float) -> float:
        if w.start_est is not None:
            return w.start_est
        return w.presumed_start if w.presumed_start is not None else now

    def _shared(self) -> bool:
        return getattr(self._limiter, "gate_rate", None) is not None

    def _poll_cost(self) -> float:
        return self.config.shared_poll_cost if self._shared() else self.config.poll_cost

    def _budget(self) -> float:
        """Queries per second the plan may spend. On a budget shared with other processes, the
        whole of it, with the database as the arbiter: a share per task (tasks/5 of it) held
        a process with one task near its end to one poll in 0.7 s while the budget sat idle.
        Crowding out is kept off by the price instead: at `shared_poll_cost` a task is polled at
        its floor until its learned end nears, so the processes' plans together stay well under
        the budget, and the shared gate never grants more than it anyway."""
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
            elif self._shared():
                due = self._end_due(w, rates[w.task_id], now)
            else:
                # One process fills its budget, but its rates come from the hazard now: a task
                # whose well-known end is near must not wait for the rate it had a second ago.
                due = w.last_sent + 1.0 / rates[w.task_id]
                if _runs(w):
                    due = min(due, self._end_due(w, rates[w.task_id], now))
            due = max(due, w.not_before)
            if best is None or (due, w.order) < best[:2]:
                best = (due, w.order, w)
        if best is None:
            return None
        self._due = best[0]
        return best[2]

    def _end_due(self, w: _Watch, rate_now: float, now: float) -> float:
        """A running task's next poll by its end (the only rule on a shared budget): when the
        learned running times say it has most likely ended since the last poll
        (`shared_end_quantile`), at least `min_interval` and at most `running_max_interval`
        after it. So a task whose running time is well known is asked about once, just after
        its end, instead of at a rate spread over its whole run; a widely varying one falls
        back to its floor."""
        assert w.last_sent is not None
        if not _runs(w):
            return w.last_sent + 1.0 / rate_now
        start = self._started(w, now)
        key = (w.last_sent, start, self.durations.observed)
        cached = self._due_cache.get(w.task_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        cfg = self.config
        # P(ended since the last poll) = 1 - exp(-(integrated hazard since then)).
        threshold = -math.log(1.0 - cfg.shared_end_quantile)
        step = cfg.min_interval / 20.0
        t = w.last_sent
        end = w.last_sent + cfg.running_max_interval
        integrated = 0.0
        while t < end:
            h = self.durations.hazard(t + step / 2.0 - start)
            if integrated + h * step >= threshold:
                t += (threshold - integrated) / h
                break
            integrated += h * step
            t += step
        due = max(w.last_sent + cfg.min_interval, min(t, end))
        self._due_cache[w.task_id] = (key, due)
        return due

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
            self._due_cache.pop(w.task_id, None)
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
        if result.scheduled_time is not None and result.end_time is not None:
            self.durations.observe((result.end_time - result.scheduled_time).total_seconds())
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
