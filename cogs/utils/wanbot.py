"""`WanBot`, the `commands.Bot` subclass: opens the store and the Wan client, starts the job runner,
loads the cogs and syncs commands in `setup_hook`; closes it all in `close`.

What the Discord side gives the job runner (its `Surface`) and the persistent components are passed in
by whoever assembles the bot (`cogs.utils.launcher.build_bot`), never patched on at run time.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings, store_limits
from bot.jobs import JobRunner, Surface
from bot.metrics import Metrics, MetricsServer
from bot.store import Store, open_store
from bot.store.postgres import PostgresStore
from bot.wan import PollConfig, WanClient
from cogs.utils.gateway import base_intents, point_gateway, read_application, use_discord_api_base
from cogs.utils.once import ClickGuard
from cogs.utils.owner_notes import warn_about_cost
from cogs.utils.sync import sync_commands
from cogs.utils.translator import CatalogueTranslator

log = logging.getLogger(__name__)

# Creates per second the account takes (wan-api.md §6), for every process together.
SUBMIT_RPS = 5.0

EXTENSIONS: tuple[str, ...] = (
    "cogs.errors",
    "cogs.wanedit",
    "cogs.quota",
    "cogs.owner",
    "cogs.menu",
    "cogs.replies",
    "cogs.settings",
    "cogs.history",
    "cogs.health",
)


class WanBot(commands.Bot):
    """wanbot itself. Dependencies are opened in `setup_hook` and closed in `close`."""

    store: Store
    wan: WanClient
    runner: JobRunner
    surface: Surface

    def __init__(
        self,
        settings: Settings,
        *,
        make_surface: Callable[[WanBot], Surface],
        persistent_items: Sequence[type[discord.ui.DynamicItem[Any]]] = (),
        metrics: Metrics | None = None,
        sandbox: bool = False,
        force_sync: bool = False,
        sync_only: bool = False,
        extensions: tuple[str, ...] = EXTENSIONS,
        runner_options: dict[str, Any] | None = None,
        wan_options: dict[str, Any] | None = None,
        queue_options: dict[str, Any] | None = None,
        **client_options: Any,
    ) -> None:
        self.wanted_intents = base_intents()
        super().__init__(
            # No text commands: mentions are edit requests (cogs/replies.py), so no prefix ever matches.
            command_prefix=lambda bot, message: [],
            intents=self.wanted_intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
            # Where every command may be used: installed to a server only, never to a member's own
            # account (a user-installed copy would run in servers without the bot, its quotas and
            # its admins), and there in the server's channels and the bot's own DMs, not group DMs.
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=True, private_channel=False
            ),
            **client_options,
        )
        self.settings = settings
        self.sandbox = sandbox
        self.force_sync = force_sync or sync_only
        self.sync_only = sync_only
        self.wan_options = wan_options or {}
        self.queue_options = queue_options or {}
        self.extensions_to_load = extensions
        self.runner_options = runner_options or {}
        self.make_surface = make_surface
        self.persistent_items = tuple(persistent_items)
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics.watch_latency(lambda: self.latency)
        self.metrics_server: MetricsServer | None = None
        self.message_content = False
        self.invite_url: str | None = None
        self.nonce_prefix = "wanjob"
        # Clicks being handled, so a double click starts one job (cogs.utils.once).
        self.clicks = ClickGuard()
        use_discord_api_base(settings.discord_api_base)

    async def setup_hook(self) -> None:
        settings = self.settings
        # exclusive: a sqlite file is for one bot process (a second one refuses to start).
        self.store = await open_store(
            settings.database_url,
            default_daily_limit=settings.default_daily_limit,
            exclusive=True,
            limits=store_limits(settings),
        )
        assert settings.dashscope_api_key is not None
        shared: dict[str, Any] = {}
        if isinstance(self.store, PostgresStore):
            # Several processes may share this database: one queue and one DashScope budget.
            queue_options = {"ttl": settings.lease_seconds, **self.queue_options}
            shared["queue"] = self.store.job_queue(
                max_slots=settings.max_concurrent_tasks, **queue_options
            )
            gates = {
                "query_gate": self.store.shared_rate("query", settings.query_qps),
                "submit_gate": self.store.shared_rate("create", SUBMIT_RPS),
            }
        else:
            gates = {}
        self.wan = WanClient(
            settings.dashscope_api_key,
            settings.dashscope_base_url,
            model=settings.wan_model,
            transport=settings.image_transport,
            query_qps=settings.query_qps,
            **gates,
            **{
                "request_timeout": settings.request_timeout,
                "poll_config": PollConfig.for_tasks(*settings.task_seconds),
                **self.wan_options,
            },
        )
        await self.wan.start()
        self.surface = self.make_surface(self)
        self.runner = JobRunner(
            self.store,
            self.wan,
            self.surface,
            max_concurrent=settings.max_concurrent_tasks,
            max_jobs_per_user=settings.max_jobs_per_user,
            metrics=self.metrics,
            **shared,
            **self.runner_options,
        )
        # Message nonces (Discord's duplicate guard) carry a per-database salt, so job #5 of a fresh
        # or sandbox database never matches job #5 of another within Discord's dedup window.
        salt = await self.store.get_meta("nonce_salt")
        if salt is None:
            salt = secrets.token_hex(4)
            await self.store.set_meta("nonce_salt", salt)
        self.nonce_prefix = f"w{salt}j"
        app = await read_application(self, self.wanted_intents, settings.owner_ids)
        self.message_content, self.invite_url = app.message_content, app.invite_url
        # discord.py's own attribute for `is_owner`; the owner commands check it in code.
        self.owner_ids = set(app.owner_ids)
        warn_about_cost(settings, app.public)
        await point_gateway(self, settings.discord_api_base)
        # Every button that must survive a restart, registered once (cogs.utils.components).
        self.add_dynamic_items(*self.persistent_items)
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
        # Before the sync: the synced payload carries every command text's translations.
        await self.tree.set_translator(CatalogueTranslator())
        await sync_commands(self.tree, self.store, settings.dev_guild, force=self.force_sync)
        if self.sync_only:
            return
        if settings.metrics_port is not None:
            self.metrics_server = MetricsServer(
                self.metrics, settings.metrics_host, settings.metrics_port
            )
            await self.metrics_server.start()
        await self.runner.start()
        # Holds whose job row was never written (a crash between reserving and storing the job).
        await self.store.release_orphaned_reservations()
        await self.runner.resume()

    async def close(self) -> None:
        try:
            runner = getattr(self, "runner", None)
            wan = getattr(self, "wan", None)
            try:
                if runner is not None:
                    await runner.stop()
            finally:
                try:
                    if wan is not None:
                        await wan.close()
                    if self.metrics_server is not None:
                        await self.metrics_server.close()
                finally:
                    await super().close()
        finally:
            # Whatever happened above, the database is closed last, once nothing can write to it.
            store = getattr(self, "store", None)
            if store is not None:
                await store.close()


class ShardedWanBot(WanBot, commands.AutoShardedBot):
    """`WanBot` on `AutoShardedBot`: this process runs `shard_ids` of `shard_count` shards
    (`WANBOT_SHARD_COUNT`, `WANBOT_SHARD_IDS`). Jobs are shared through PostgreSQL, so any process
    posts any job's progress and result (REST needs no gateway)."""
