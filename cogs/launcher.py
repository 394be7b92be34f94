"""Assembling the Discord bot from its parts and running it until it is closed or signalled.

The launcher owns every lifetime: it opens the store, the Wan client and the metrics server with one
`AsyncExitStack`, hands them to the bot, and closes them in reverse order once the bot has left
Discord, so the database is closed last, when nothing can write to it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord

from bot.config import Settings, store_limits
from bot.jobs import JobRunner
from bot.jobs.shared import shared_parts
from bot.metrics import Metrics, MetricsServer
from bot.store import StoreError, open_store
from bot.wan import PollConfig, WanClient, WanError
from cogs.edit.reply_offer import OfferButton
from cogs.edit.result_buttons import DeleteButton, EditButton, RerollButton, result_view
from cogs.history.claim import ClaimButton
from cogs.surface import DiscordSurface
from cogs.surface.cancel import CancelButton
from cogs.wanbot import ShardedWanBot, WanBot

log = logging.getLogger("bot")

# Every button that must work after a restart: their custom ids carry a job id, and the bot
# registers exactly these at start-up. A new persistent button is added here.
PERSISTENT_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    CancelButton,
    RerollButton,
    EditButton,
    DeleteButton,
    OfferButton,
    ClaimButton,
)


@dataclass(frozen=True)
class Tuning:
    """Timings below the settings (retry waits, poll timings, queue leases): the benches and the
    end-to-end tests shorten them; a real run keeps the defaults."""

    wan: dict[str, Any] = field(default_factory=dict)
    runner: dict[str, Any] = field(default_factory=dict)
    queue: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def assembled(
    settings: Settings,
    *,
    sandbox: bool = False,
    sync_only: bool = False,
    tuning: Tuning | None = None,
    **client_options: Any,
) -> AsyncIterator[WanBot]:
    """A `WanBot` on freshly opened parts, not yet logged in; every part is closed on the way out."""
    tuning = tuning or Tuning()
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as parts:
        # exclusive: a sqlite file is for one bot process (a second one refuses to start).
        store = await open_store(
            settings.database_url,
            default_daily_limit=settings.default_daily_limit,
            exclusive=True,
            limits=store_limits(settings),
        )
        parts.push_async_callback(store.close)
        # The job queue and DashScope's limits: this process's own on sqlite; on PostgreSQL the
        # database's, shared with every process on it.
        queue, gates = shared_parts(store, settings, **tuning.queue)
        assert settings.dashscope_api_key is not None
        wan = WanClient(
            settings.dashscope_api_key,
            settings.dashscope_base_url,
            model=settings.wan_model,
            transport=settings.image_transport,
            query_qps=settings.query_qps,
            **gates,
            **{
                "request_timeout": settings.request_timeout,
                "poll_config": PollConfig.for_tasks(*settings.task_seconds),
                **tuning.wan,
            },
        )
        await wan.start()
        parts.push_async_callback(wan.close)
        if settings.metrics_port is not None and not sync_only:
            ceiling = store_limits(settings).server_ceiling
            server = MetricsServer(
                metrics,
                settings.metrics_host,
                settings.metrics_port,
                refresh=lambda: metrics.refresh_usage(store, ceiling),
            )
            await server.start()
            parts.push_async_callback(server.close)

        def make_runner(bot: WanBot) -> JobRunner:
            surface = DiscordSurface(bot, result_view=result_view)
            # After the bot's own close (pushed later, so run first): progress edits still
            # waiting for their turn are dropped once nothing can follow them.
            parts.push_async_callback(surface.close)
            return JobRunner(
                store,
                wan,
                surface,
                max_concurrent=settings.max_concurrent_tasks,
                max_jobs_per_user=settings.max_jobs_per_user,
                metrics=metrics,
                queue=queue,
                retention_days=settings.retention_days,
                **tuning.runner,
            )

        if settings.shard_count is not None:
            client_options = {
                "shard_count": settings.shard_count,
                "shard_ids": list(settings.shard_ids) if settings.shard_ids else None,
                **client_options,
            }
        cls = ShardedWanBot if settings.shard_count is not None else WanBot
        bot = cls(
            settings,
            store=store,
            wan=wan,
            metrics=metrics,
            make_runner=make_runner,
            persistent_items=PERSISTENT_ITEMS,
            http_trace=discord_http_trace(metrics),
            sandbox=sandbox,
            sync_only=sync_only,
            **client_options,
        )
        # Left first: the bot stops its runner and leaves Discord before the Wan client and the
        # store close under it.
        parts.push_async_callback(bot.close)
        yield bot


def discord_http_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """A trace on discord.py's HTTP session that counts every answer of 400 or more by status."""
    trace = aiohttp.TraceConfig()

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        if params.response.status >= 400:
            metrics.discord_http_errors.labels(str(params.response.status)).inc()

    trace.on_request_end.append(on_request_end)
    return trace


def describe(err: BaseException) -> str | None:
    """One clear line for a start-up failure people meet, or None to let it raise."""
    if isinstance(err, discord.LoginFailure):
        return "Discord refused the token: copy it again from the developer portal (Bot tab) into DISCORD_TOKEN."
    if isinstance(err, discord.PrivilegedIntentsRequired):
        return "Discord refused a privileged intent: enable it in the developer portal or leave it off."
    if isinstance(err, StoreError):
        return f"Database: {err}"
    if isinstance(err, WanError):
        return f"DashScope: {err.user_message}"
    if isinstance(err, OSError | discord.GatewayNotFound):
        return f"Could not reach Discord: {err.__class__.__name__}. Check the network or DISCORD_API_BASE."
    return None


async def run(
    settings: Settings,
    *,
    sandbox: bool,
    sync_only: bool,
    status: str | None = None,
    tuning: Tuning | None = None,
) -> int:
    """Start the bot and run until closed or signalled (SIGINT/SIGTERM stop it cleanly).

    `status` is shown as the bot's custom status (sandbox mode says so there).
    """
    activity = discord.CustomActivity(name=status) if status else None
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    assert settings.discord_token is not None
    try:
        async with assembled(
            settings, sandbox=sandbox, sync_only=sync_only, tuning=tuning, activity=activity
        ) as bot:

            def on_signal(sig: signal.Signals) -> None:
                if not stopping:  # a second Ctrl-C while stopping changes nothing
                    stopping.append(asyncio.create_task(_shutdown(bot, sig)))

            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, on_signal, sig)
            try:
                async with bot:
                    if sync_only:
                        await bot.login(settings.discord_token)  # setup_hook syncs (forced)
                        log.info("commands synced")
                        return 0
                    await bot.start(settings.discord_token)
            finally:
                # `bot.start` returns, and discord.py's `__aexit__` waits, only for discord.py's own
                # part of `close()`; leaving before the whole close ends would let asyncio.run
                # cancel it and strand the database thread (a hang or a traceback at exit).
                if stopping:
                    await stopping[0]
    except Exception as err:
        text = describe(err)
        if text is None:
            raise
        log.error("%s", text)
        return 1
    return 0


async def _shutdown(bot: WanBot, sig: signal.Signals) -> None:
    log.info("received %s: stopping; jobs in flight resume at the next start", sig.name)
    await bot.close()
