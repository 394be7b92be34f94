"""Wan's running times, kept in the store so that a restarted process plans its polls from what its
predecessors learned rather than from the prior (and other processes on the database add theirs).

One meta row holds the latest running times of one endpoint and model: times learned against another
(a sandbox, a different model) say nothing about this one and are started afresh."""

from __future__ import annotations

import asyncio
import json
import logging

from bot.store import Store
from bot.wan import TaskResult, WanClient
from bot.wan.durations import running_seconds

log = logging.getLogger(__name__)

KEY = "wan_running_seconds"
KEPT = 64  # as many as the model weighs (`DurationModel(max_samples=...)`)


class RunningTimes:
    """The stored running times of one store, for one Wan client."""

    def __init__(self, store: Store, wan: WanClient) -> None:
        self.store = store
        self.wan = wan
        # Jobs ending together would each read the row before the other wrote it.
        self._writing = asyncio.Lock()

    async def recall(self) -> int:
        """Teach the Wan client's poll scheduler the stored running times; return how many there
        were. A store that can't be read leaves the prior in place: polls are only placed less
        well."""
        try:
            samples = _samples(await self.store.get_meta(KEY), self.wan)
        except Exception:
            log.warning("could not read the stored running times; polls start from the prior")
            return 0
        self.wan.scheduler.durations.load(samples)
        return len(samples)

    async def remember(self, result: TaskResult) -> None:
        """Add a finished task's running time to the stored ones (failures and tasks without
        Wan's times add nothing). Never raises: the running times are a hint, not worth failing
        a job. Processes sharing a database may each miss one the other just wrote."""
        seconds = running_seconds(result)
        if seconds is None or seconds <= 0:
            return
        try:
            async with self._writing:
                stored = _samples(await self.store.get_meta(KEY), self.wan)
                samples = [*stored, round(seconds, 3)][-KEPT:]
                row = {"endpoint": self.wan.base_url, "model": self.wan.model, "seconds": samples}
                await self.store.set_meta(KEY, json.dumps(row))
        except Exception:
            log.warning("could not store a running time", exc_info=True)


def _samples(raw: str | None, wan: WanClient) -> list[float]:
    if raw is None:
        return []
    try:
        row = json.loads(raw)
        if row.get("endpoint") != wan.base_url or row.get("model") != wan.model:
            return []
        return [float(s) for s in row["seconds"] if float(s) > 0][-KEPT:]
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("the stored running times are unreadable; starting afresh")
        return []
