"""Assembling the Discord bot from its parts, and running it until it is closed or signalled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import discord

from bot.config import Settings
from bot.metrics import Metrics
from cogs.utils.components import PERSISTENT_ITEMS, result_view
from cogs.utils.http_metrics import discord_http_trace
from cogs.utils.startup_errors import describe
from cogs.utils.surface import DiscordSurface
from cogs.utils.wanbot import ShardedWanBot, WanBot

log = logging.getLogger("bot")


def build_bot(settings: Settings, **options: Any) -> WanBot:
    """A `WanBot` with the Discord side's surface, persistent components and metrics passed in."""
    metrics = Metrics()
    if settings.shard_count is not None:
        options = {
            "shard_count": settings.shard_count,
            "shard_ids": list(settings.shard_ids) if settings.shard_ids else None,
            **options,
        }
    cls = ShardedWanBot if settings.shard_count is not None else WanBot
    return cls(
        settings,
        make_surface=lambda bot: DiscordSurface(bot, result_view=result_view),
        persistent_items=PERSISTENT_ITEMS,
        metrics=metrics,
        http_trace=discord_http_trace(metrics),
        **options,
    )


async def run(
    settings: Settings,
    *,
    sandbox: bool,
    sync_only: bool,
    status: str | None = None,
    options: dict[str, Any] | None = None,
) -> int:
    """Start the bot and run until closed or signalled (SIGINT/SIGTERM stop it cleanly).

    `status` is shown as the bot's custom status (sandbox mode says so there); `options` go to
    `build_bot` (tests run the real CLI path with fast timings).
    """
    activity = discord.CustomActivity(name=status) if status else None
    bot = build_bot(
        settings, sandbox=sandbox, sync_only=sync_only, activity=activity, **(options or {})
    )
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal(sig: signal.Signals) -> None:
        if not stopping:  # a second Ctrl-C while stopping changes nothing
            stopping.append(asyncio.create_task(_shutdown(bot, sig)))

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with bot:
            assert settings.discord_token is not None
            if sync_only:
                await bot.login(settings.discord_token)  # setup_hook syncs (forced) during login
                log.info("commands synced")
                return 0
            await bot.start(settings.discord_token)
    except Exception as err:
        # One clear line instead of a traceback for the start-up failures people meet.
        text = describe(err)
        if text is None:
            raise
        log.error("%s", text)
        return 1
    finally:
        # `bot.start` returns, and discord.py's `__aexit__` waits, only for discord.py's own part
        # of `close()`; WanBot.close goes on to stop the runner and close the store. Leaving before
        # it ends would let asyncio.run cancel it and strand the database thread (a hang or a
        # traceback at exit).
        if stopping:
            await stopping[0]
    return 0


async def _shutdown(bot: WanBot, sig: signal.Signals) -> None:
    log.info("received %s: stopping; jobs in flight resume at the next start", sig.name)
    await bot.close()
