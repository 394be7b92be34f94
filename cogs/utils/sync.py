"""Slash-command sync: only when the command definitions changed since the last sync."""

from __future__ import annotations

import hashlib
import json
import logging

import discord
from discord import app_commands

from bot.store import Store

log = logging.getLogger(__name__)


def command_hash(tree: app_commands.CommandTree) -> str:
    """A hash of every command definition, to sync only when something changed."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    payload.sort(key=lambda c: (c.get("type", 1), c["name"]))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def sync_commands(
    tree: app_commands.CommandTree, store: Store, dev_guild: int | None, *, force: bool = False
) -> bool:
    """Sync the command tree (to `dev_guild` when set) if it changed since the last sync, or when forced."""
    guild = discord.Object(dev_guild) if dev_guild else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    key = f"command_hash:{dev_guild or 'global'}"
    digest = command_hash(tree)
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
