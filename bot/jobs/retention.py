"""The daily purge of what is older than WANBOT_RETENTION_DAYS (`Store.purge`): every process asks
every `every` seconds, and the store lets one of them purge once a day. Nothing stops the loop: a
failure (the database away or locked, or a bug) is logged once until a try goes through again, and
the next try comes at the next turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.jobs.outages import store_trouble
from bot.store import Store
from bot.store.retention import BATCH, Purged

log = logging.getLogger(__name__)

# The first try waits for the start to settle; then one an hour (a purge is due once a day).
FIRST_AFTER = 60.0
EVERY = 3600.0


class DailyPurge:
    """`start` the loop (nothing with 0 days), `stop` it; `run_once` is one turn of it."""

    def __init__(
        self,
        store: Store,
        days: int,
        *,
        first_after: float = FIRST_AFTER,
        every: float = EVERY,
        batch: int = BATCH,
    ) -> None:
        self.store, self.days, self.batch = store, days, batch
        self.first_after, self.every = first_after, every
        self.task: asyncio.Task[None] | None = None
        self.failures = 0  # tries in a row that failed

    def start(self) -> None:
        if self.days and self.task is None:
            self.task = asyncio.create_task(self._loop(), name="wanbot-retention")

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_after)
        while True:
            await self.run_once()
            await asyncio.sleep(self.every)

    async def run_once(self) -> Purged | None:
        """Purge if a purge is due; what went (None: nothing was due, or the try failed)."""
        try:
            purged = await self.store.purge(self.days, batch=self.batch)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.failures += 1
            if self.failures == 1:
                if store_trouble(err):
                    log.warning("retention: could not purge (%s); trying again later", err)
                else:
                    log.exception("retention: could not purge; trying again later")
            return None
        if self.failures:
            log.info("retention: purging works again after %d failed tries", self.failures)
            self.failures = 0
        if purged is not None:
            log.info(
                "retention: deleted what was older than %d days: %d job(s), %d reservation(s), "
                "%d member day(s), %d audit entries, in %d transactions",
                self.days,
                purged.jobs,
                purged.reservations,
                purged.member_days,
                purged.audit,
                purged.batches,
            )
        return purged
