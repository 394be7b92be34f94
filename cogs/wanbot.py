"""`WanBot`, the `commands.Bot` subclass: reads the application, loads the cogs, syncs the commands and
starts the job runner in `setup_hook`; stops the runner before it leaves Discord in `close`.

Its parts (store, Wan client, metrics, the job runner and the persistent buttons) are opened and
handed to it by `cogs.launcher`, which also closes them: the bot closes nothing it did not open.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.jobs import JobRunner
from bot.metrics import Metrics
from bot.store import Store
from bot.wan import WanClient
from cogs.command_sync import sync_commands
from cogs.gateway import base_intents, point_gateway, read_application, use_discord_api_base
from cogs.intake.dm_access import DmMembers
from cogs.owner.cost_notes import warn_about_cost
from cogs.translator import CatalogueTranslator
from cogs.utils.click_guard import ClickGuard

log = logging.getLogger(__name__)


EXTENSIONS: tuple[str, ...] = (
    "cogs.errors",
    "cogs.edit",
    "cogs.imagine",
    "cogs.quota",
    "cogs.owner",
    "cogs.settings",
    "cogs.history",
    "cogs.health",
)


class WanBot(commands.Bot):
    """wanbot itself, on the parts `cogs.launcher` opened for it."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        wan: WanClient,
        metrics: Metrics,
        make_runner: Callable[[WanBot], JobRunner],
        persistent_items: Sequence[type[discord.ui.DynamicItem[Any]]] = (),
        sandbox: bool = False,
        force_sync: bool = False,
        sync_only: bool = False,
        **client_options: Any,
    ) -> None:
        self.wanted_intents = base_intents()
        super().__init__(
            # No text commands: mentions are edit requests (cogs.edit), so no prefix ever matches.
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
        self.store = store
        self.wan = wan
        self.metrics = metrics
        self.metrics.watch_latency(lambda: self.latency)
        self.sandbox = sandbox
        self.force_sync = force_sync or sync_only
        self.sync_only = sync_only
        self.persistent_items = tuple(persistent_items)
        self.message_content = False
        self.invite_url: str | None = None
        self.nonce_prefix = "wanjob"
        # Clicks being handled, so a double click starts one job (cogs.utils.click_guard).
        self.clicks = ClickGuard()
        # Who may use the bot in DMs under WAN_ALLOWED_GUILDS (cogs.intake.dm_access).
        self.dm_members = DmMembers(self.http, settings.allowed_guilds)
        use_discord_api_base(settings.discord_api_base)
        # Last: the runner's Discord door (its `Surface`) is built on this bot.
        self.runner = make_runner(self)

    async def setup_hook(self) -> None:
        settings = self.settings
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
        # Every button that must survive a restart, registered once (cogs.launcher).
        self.add_dynamic_items(*self.persistent_items)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        # Before the sync: the synced payload carries every command text's translations.
        await self.tree.set_translator(CatalogueTranslator())
        await sync_commands(self.tree, self.store, settings.dev_guild, force=self.force_sync)
        if self.sync_only:
            return
        await self.runner.start()
        # Holds whose job row was never written (a crash between reserving and storing the job),
        # old enough not to be another live process's between those two steps.
        await self.store.release_orphaned_reservations()
        await self.runner.resume()

    async def close(self) -> None:
        # The runner stops first, so a result being posted finishes while Discord is connected.
        try:
            await self.runner.stop()
        finally:
            await super().close()


class ShardedWanBot(WanBot, commands.AutoShardedBot):
    """`WanBot` on `AutoShardedBot`: this process runs `shard_ids` of `shard_count` shards
    (`WANBOT_SHARD_COUNT`, `WANBOT_SHARD_IDS`). Jobs are shared through PostgreSQL, so any process
    posts any job's progress and result (REST needs no gateway)."""
