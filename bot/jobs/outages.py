"""Database outages as the job runner meets them: telling them apart from bugs, retrying through them
(tenacity, exponential backoff with full jitter), and logging each once when it starts and once when
it ends, with its length, however many loops and jobs run into it meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_random_exponential,
)

from bot.store import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Backoff between tries while the database fails: from about FIRST_WAIT, doubling, never past
# LONGEST_WAIT, each wait drawn at random below its bound, so processes that lost the database
# together do not come back in step; work resumes within LONGEST_WAIT of its return.
FIRST_WAIT = 0.2
LONGEST_WAIT = 5.0
# How long a write that records what Wan already did (its task id, what it billed, how a job ended)
# is retried before the job is left as it is, for this process or another to take up later.
WRITE_PATIENCE = 120.0

# What the drivers raise when the server is away, slow or restarting. `TimeoutError` and the
# connection errors are `OSError`s.
_DRIVER_TROUBLE: tuple[type[BaseException], ...] = (
    StoreError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A server shutting down or starting up, a statement cancelled by an operator.
    asyncpg.OperatorInterventionError,
    asyncpg.LockNotAvailableError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    # A pooled connection left mid-operation by a cut or a cancelled call, until the pool drops it.
    asyncpg.exceptions.InternalClientError,
    sqlite3.OperationalError,
)


def store_trouble(err: BaseException) -> bool:
    """Whether `err` says the database can't be used right now (rather than a bug of ours)."""
    return isinstance(err, _DRIVER_TROUBLE)


class Outage:
    """Whether this process can use its database, as its loops and jobs find out. `failed` and `ok`
    are cheap and may be called on every try; the log gets one line at each edge."""

    def __init__(
        self, *, write_patience: float = WRITE_PATIENCE, clock: Callable[[], float] = time.time
    ) -> None:
        self.write_patience = write_patience
        self._clock = clock
        self.since: float | None = None  # wall-clock seconds, while the database is away
        self.last_error = ""
        self.outages = 0  # how many began since the start

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, err: BaseException) -> None:
        self.last_error = _one_line(err)
        if self.since is None:
            self.since = self._clock()
            self.outages += 1
            log.warning(
                "database unreachable (%s); jobs wait where they are and every loop keeps retrying",
                self.last_error,
            )

    def ok(self) -> None:
        if self.since is not None:
            lasted = self._clock() - self.since
            self.since = None
            log.warning("database reachable again after %.1f s; work resumes", lasted)


def _one_line(err: BaseException) -> str:
    return " ".join((str(err) or type(err).__name__).split())


def patient(
    outage: Outage,
    *,
    patience: float | None = WRITE_PATIENCE,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """Retrying on store trouble only, with backoff, for `patience` seconds (None: for ever); the
    last error is raised as it was. Every failure and the first success go to `outage`."""

    def before_sleep(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome is not None else None
        if err is not None:
            outage.failed(err)

    options: dict[str, object] = {}
    if sleep is not None:
        options["sleep"] = sleep
    return AsyncRetrying(
        retry=retry_if_exception(store_trouble),
        wait=wait_random_exponential(multiplier=FIRST_WAIT, max=LONGEST_WAIT),
        stop=stop_never if patience is None else stop_after_delay(patience),
        before_sleep=before_sleep,
        reraise=True,
        **options,  # type: ignore[arg-type]
    )


async def persist(outage: Outage, call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, made again through a database outage for up to `outage.write_patience`
    seconds; then its last error is raised."""
    async for attempt in patient(outage, patience=outage.write_patience):
        with attempt:
            result = await call()
    outage.ok()
    return result
