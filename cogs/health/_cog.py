"""Heartbeats for `python -m bot check --live`: every few seconds this process writes whether it is
connected to the gateway, whether its job runner is alive and whether the database answers it
(`bot.health`), and removes the rows of processes that died. The same loop has the job runner
release, every few minutes, the holds a dead process left without a job."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

from bot import health
from bot.jobs.outages import store_trouble

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)


class Health(commands.Cog):
    """Writes this process's heartbeat; a clean stop says so, so it is not taken for a crash."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        self.process = health.process_name()
        self.connected = False
        self.since = self.started = time.time()
        self.beats = 0

    async def cog_load(self) -> None:
        self.beat.start()

    async def cog_unload(self) -> None:
        self.beat.cancel()
        await self.write(stopped=True)

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self.since = time.time()

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        self._set_connected(True)
        await self.write()

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        self._set_connected(True)
        await self.write()

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        self._set_connected(False)

    @tasks.loop(seconds=health.BEAT_EVERY)
    async def beat(self) -> None:
        # is_ready() is False again while the gateway reconnects after a drop.
        self._set_connected(self.bot.is_ready() and not self.bot.is_closed())
        await self.write()
        runner = getattr(self.bot, "runner", None)
        if runner is not None:
            # Every few minutes (the runner keeps the time), and it never raises.
            await runner.release_orphans()

    def _shards(self) -> str:
        ids = getattr(self.bot, "shard_ids", None)  # AutoShardedBot
        if ids is None and self.bot.shard_id is not None:
            ids = [self.bot.shard_id]
        return ",".join(str(i) for i in ids or [])

    async def write(self, *, stopped: bool = False) -> None:
        """Write the heartbeat now (the loop does it every few seconds). Never raises: a database
        that is away must not stop the heartbeats that say so once it is back."""
        runner = getattr(self.bot, "runner", None)
        outage = runner.outage if runner is not None else None
        latency = self.bot.latency
        shard_count = self.bot.shard_count if self._shards() else None
        heartbeat = health.Heartbeat(
            process=self.process,
            written_at=time.time(),
            connected=self.connected and not stopped,
            since=self.since,
            runner_alive=runner is not None and runner.alive(),
            stopped=stopped,
            shards=self._shards(),
            latency=latency if latency == latency and latency != float("inf") else None,
            started_at=self.started,
            shard_count=shard_count,
            database_trouble_since=outage.since if outage is not None else None,
        )
        try:
            await health.beat(self.bot.store, heartbeat)
            if not stopped:
                self.bot.metrics.heartbeat.set(heartbeat.written_at)
            self.beats += 1
            if self.beats % FORGET_EVERY == 1 and not stopped:
                await health.forget_leftovers(self.bot.store)
        except Exception as err:
            if not store_trouble(err):
                log.exception("could not write the heartbeat")
                return
            # The database being away must not kill the heartbeat loop.
            self.bot.metrics.store_errors.labels("heartbeat").inc()
            if outage is not None:
                outage.failed(err)  # logged there, once for the whole outage
            else:
                log.warning("could not write the heartbeat: %s", err)
            return
        if outage is not None:
            outage.ok()


# Every how many heartbeats the rows of dead processes are looked for (and at the first one).
FORGET_EVERY = 6
