"""A server's own settings (chosen by its admins with /wansettings), kept in the store's meta table.

Each setting is one meta entry, `guild:<guild id>:<name>` -> its JSON value, so adding one (a later
`language`) needs no schema change, and a setting never set reads as its default. Using `get_meta` and
`set_meta` keeps the Store interface as it is: every backend already has them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields, replace
from typing import Any

from bot.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuildSettings:
    """Every server setting with its default. A new setting is a new field (JSON-able, typed)."""

    spoiler: bool = False  # post results as spoiler attachments unless the request says otherwise


NAMES: tuple[str, ...] = tuple(f.name for f in fields(GuildSettings))
_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(GuildSettings)}


def key(guild_id: int, name: str) -> str:
    return f"guild:{guild_id}:{name}"


async def load(store: Store, guild_id: int | None) -> GuildSettings:
    """The server's settings; the defaults for DMs (no server) and for anything never set."""
    settings = GuildSettings()
    if guild_id is None:
        return settings
    values: dict[str, Any] = {}
    for name in NAMES:
        raw = await store.get_meta(key(guild_id, name))
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, _TYPES[name]):
            values[name] = value
        else:  # written by hand or by another version: the default is safer than a guess
            log.warning("guild %d: ignoring stored setting %s=%r", guild_id, name, raw)
    return replace(settings, **values)


async def save(store: Store, guild_id: int, name: str, value: Any) -> tuple[Any, Any]:
    """Set one setting; return (old, new)."""
    if name not in _TYPES:
        raise ValueError(f"unknown server setting {name!r}")
    if not isinstance(value, _TYPES[name]):
        raise ValueError(f"{name} must be a {_TYPES[name].__name__}")
    old = getattr(await load(store, guild_id), name)
    await store.set_meta(key(guild_id, name), json.dumps(value))
    return old, value
