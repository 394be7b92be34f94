"""The `commands.Bot` subclass: opens the store and the Wan client, runs jobs, loads cogs, syncs commands."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from bot.config import Settings
from bot.delivery import DiscordSurface
from bot.jobs import JobRunner
from bot.store import Job, Store, open_store
from bot.views import CancelButton
from bot.wan import WanClient

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "cogs.errors",
    "cogs.wanedit",
    "cogs.quota",
    "cogs.results",
    "cogs.menu",
    "cogs.replies",
)

# Exactly what the bot uses: post results and threads, react on reply requests, read the message a
# reply points to (for its images), and attach files and embeds.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    attach_files=True,
    embed_links=True,
    add_reactions=True,
    read_message_history=True,
)
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)  # GATEWAY_MESSAGE_CONTENT(_LIMITED)


def use_discord_api_base(base: str | None) -> None:
    """Send every REST call of discord.py to `base` (a REST proxy, or our loopback fake)."""
    if base:
        Route.BASE = base.rstrip("/")


class WanBot(commands.Bot):
    """wanbot itself. Dependencies are opened in `setup_hook` and closed in `close`."""

    store: Store
    wan: WanClient
    runner: JobRunner

    def __init__(
        self,
        settings: Settings,
        *,
        sandbox: bool = False,
        force_sync: bool = False,
        sync_only: bool = False,
        extensions: tuple[str, ...] = EXTENSIONS,
        runner_options: dict[str, Any] | None = None,
        wan_options: dict[str, Any] | None = None,
        **client_options: Any,
    ) -> None:
        # The fewest intents that work: guilds (cache of channels/threads) and messages (replies that
        # mention the bot carry their content without the privileged intent). Message Content is added in
        # `setup_hook` only when the application has it enabled.
        self.wanted_intents = discord.Intents.none()
        self.wanted_intents.guilds = True
        self.wanted_intents.guild_messages = True
        self.wanted_intents.dm_messages = True
        super().__init__(
            # No text commands: mentions are edit requests (cogs/replies.py), so no prefix ever matches.
            command_prefix=lambda bot, message: [],
            intents=self.wanted_intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
            **client_options,
        )
        self.settings = settings
        self.sandbox = sandbox
        self.force_sync = force_sync or sync_only
        self.sync_only = sync_only
        self.wan_options = wan_options or {}
        self.extensions_to_load = extensions
        self.runner_options = runner_options or {}
        self.message_content = False
        self.invite_url: str | None = None
        self.nonce_prefix = "wanjob"
        use_discord_api_base(settings.discord_api_base)

    async def setup_hook(self) -> None:
        settings = self.settings
        self.store = await open_store(
            settings.database_url, default_daily_limit=settings.default_daily_limit
        )
        assert settings.dashscope_api_key is not None
        self.wan = WanClient(
            settings.dashscope_api_key,
            settings.dashscope_base_url,
            model=settings.wan_model,
            transport=settings.image_transport,
            query_qps=settings.query_qps,
            **self.wan_options,
        )
        await self.wan.start()
        self.runner = JobRunner(
            self.store,
            self.wan,
            DiscordSurface(self),
            max_concurrent=settings.max_concurrent_tasks,
            max_jobs_per_user=settings.max_jobs_per_user,
            **self.runner_options,
        )
        # Message nonces (Discord's duplicate guard) carry a per-database salt, so job #5 of a fresh
        # or sandbox database never matches job #5 of another within Discord's dedup window.
        salt = await self.store.get_meta("nonce_salt")
        if salt is None:
            salt = secrets.token_hex(4)
            await self.store.set_meta("nonce_salt", salt)
        self.nonce_prefix = f"w{salt}j"
        await self._read_application()
        await self._point_gateway()
        self.add_dynamic_items(CancelButton)
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
        await self.sync_commands(force=self.force_sync)
        if self.sync_only:
            return
        await self.runner.start()
        # Holds whose job row was never written (a crash between reserving and storing the job).
        await self.store.release_orphaned_reservations()
        await self.runner.resume()

    async def _read_application(self) -> None:
        app = await self.application_info()
        self.message_content = bool(app.flags.value & MESSAGE_CONTENT_FLAGS)
        # Asked for only when enabled in the portal: asking without it makes Discord refuse to connect.
        self.wanted_intents.message_content = self.message_content
        self.invite_url = discord.utils.oauth_url(
            app.id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
        )
        log.info("invite the bot with: %s", self.invite_url)
        if self.message_content:
            log.info("Message Content intent enabled: replies to anyone's images work")
        else:
            log.info(
                "Message Content intent not enabled: reply edits work on the bot's own results; "
                "use the 'Edit with Wan' menu for other images"
            )

    async def _point_gateway(self) -> None:
        # discord.py's plain Bot connects to its built-in gateway and never asks; behind a REST proxy
        # (or our fake) the gateway must come from the same place as the REST API.
        if not self.settings.discord_api_base:
            return
        data = await self.http.request(Route("GET", "/gateway/bot"))
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(data["url"])

    # ---- command sync -------------------------------------------------------------------------

    def command_hash(self) -> str:
        """A hash of every command definition, to sync only when something changed."""
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        payload.sort(key=lambda c: (c.get("type", 1), c["name"]))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync the command tree if it changed since the last sync (or when forced)."""
        guild_id = self.settings.dev_guild
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        key = f"command_hash:{guild_id or 'global'}"
        digest = self.command_hash()
        if not force and await self.store.get_meta(key) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        synced: list[app_commands.AppCommand] = await self.tree.sync(guild=guild)
        await self.store.set_meta(key, digest)
        log.info(
            "synced %d command(s) %s",
            len(synced),
            f"to guild {guild_id}" if guild_id else "globally",
        )
        return True

    # ---- results ------------------------------------------------------------------------------

    def result_view(self, job: Job, image_count: int) -> discord.ui.View | None:
        """Buttons for a result message; the results cog replaces this when it is loaded."""
        builder = getattr(self, "result_view_builder", None)
        return builder(job, image_count) if builder is not None else None

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
                finally:
                    await super().close()
        finally:
            # Whatever happened above, the database is closed last, once nothing can write to it.
            store = getattr(self, "store", None)
            if store is not None:
                await store.close()
