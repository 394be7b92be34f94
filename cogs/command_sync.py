"""Slash-command sync: only when the command definitions changed since the last sync."""

from __future__ import annotations

import hashlib
import json
import logging

import discord
from discord import app_commands

from bot.store import Store

log = logging.getLogger(__name__)


async def command_hash(
    tree: app_commands.CommandTree,
    application_id: int | None,
    guild: discord.Object | None = None,
) -> str:
    """A hash of every command definition (of `guild`'s, when given) as it is sent, translations
    included (as `tree.sync` makes them), and of the application they belong to: sync only when
    something changed (a translation too), and when a database is reused with another application."""
    translator = tree.translator
    commands = tree.get_commands(guild=guild)
    if translator is not None:
        payload = [await command.get_translated_payload(tree, translator) for command in commands]
    else:
        payload = [command.to_dict(tree) for command in commands]
    payload.sort(key=lambda c: (c.get("type", 1), c["name"]))
    body = {"application_id": application_id, "commands": payload}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def sync_commands(
    tree: app_commands.CommandTree, store: Store, dev_guild: int | None, *, force: bool = False
) -> bool:
    """Sync the command tree (to `dev_guild` when set) if it changed since the last sync, or when forced."""
    guild = discord.Object(dev_guild) if dev_guild else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    key = f"command_hash:{dev_guild or 'global'}"
    # With a dev guild, what is synced is the guild's set: the global commands copied there plus
    # the guild-only ones (/wanowner).
    digest = await command_hash(tree, tree.client.application_id, guild)
    # Processes starting together on one database sync once: the first holds the lock and
    # stores the hash, the others then find it unchanged.
    async with store.exclusive("command-sync"):
        if not force and await store.get_meta(key) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        synced: list[app_commands.AppCommand] = await tree.sync(guild=guild)
        await store.set_meta(key, digest)
    log.info(
        "synced %d command(s) %s",
        len(synced),
        f"to guild {dev_guild}" if dev_guild else "globally",
    )
    return True
