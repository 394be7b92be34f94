"""Retries of the Wan client: one tenacity policy, with exponential full-jitter backoff and a cap,
honouring Retry-After."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

log = logging.getLogger(__name__)
# A WanError (the errors module imports this one, so it is not named here).
WanErrorLike = BaseException


@dataclass
class Backoff:
    """`delay(attempt)` is uniform in [0, min(cap, base * 2**attempt)] ("full jitter"), so many
    clients retrying at once spread out instead of hitting the server together."""

    base: float = 0.5
    cap: float = 20.0
    # A Retry-After longer than this is clamped: the caller's own timeout should decide instead.
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt)))
        jittered = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_retry_after))
        return jittered


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (it may be a number or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def policy(
    *,
    attempts: int,
    backoff: Backoff,
    retry_if: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]],
    what: str,
    on_retry: Callable[[WanErrorLike, float], None] | None = None,
) -> AsyncRetrying:
    """The one retry policy of the client (tenacity): at most `attempts` tries in all, the next one
    after `backoff.delay` (or the server's Retry-After), only for errors `retry_if` accepts; the
    last error is re-raised as it was."""

    # tenacity calls `wait` and `before_sleep` only after a failed attempt, when `outcome` and
    # `next_action` are both set; the guards only satisfy the types.
    def wait(state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome is not None else None
        return backoff.delay(state.attempt_number - 1, getattr(err, "retry_after", None))

    def before_sleep(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("%s: %s, retrying in %.2f s", what, getattr(err, "code", err), delay)
        if on_retry is not None and err is not None:
            on_retry(err, delay)

    return AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait,
        retry=retry_if_exception(retry_if),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
