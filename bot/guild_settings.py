"""A server's own settings (chosen by its admins with /wansettings), kept in the store's meta table.

Each setting is one meta entry, `guild:<guild id>:<name>` -> its JSON value, so adding one needs no
schema change, and a setting never set reads as its default. Using `get_meta` and `set_meta` keeps the
Store interface as it is: every backend already has them.

The language was once kept apart (`guild_language:<guild id>`, the plain catalogue name, set by the
old /wanlanguage): while a server has no `guild:<id>:language` entry, that value is read instead, so
a choice made before the upgrade keeps working; the next change writes the new entry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields, replace
from typing import Any

from bot.i18n import available_languages
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuildSettings:
    """Every server setting with its default. A new setting is a new field (JSON-able, typed)."""

    spoiler: bool = False  # post results as spoiler attachments unless the request says otherwise
    # The language of public messages: a catalogue name (`zh_CN`), or "" for the server's own
    # Discord language (its `guild_locale`), else English.
    language: str = ""


NAMES: tuple[str, ...] = tuple(f.name for f in fields(GuildSettings))
_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(GuildSettings)}


def key(guild_id: int, name: str) -> str:
    return f"guild:{guild_id}:{name}"


def legacy_language_key(guild_id: int) -> str:
    """Where the old /wanlanguage kept a server's language (read while no new entry exists)."""
    return f"guild_language:{guild_id}"


def _valid(name: str, value: Any) -> bool:
    if not isinstance(value, _TYPES[name]):
        return False
    # A language whose catalogue is gone (or never was) would silently be English: say so instead.
    return name != "language" or value == "" or value in available_languages()


async def _raw(store: Store, guild_id: int, name: str) -> str | None:
    raw = await store.get_meta(key(guild_id, name))
    if raw is None and name == "language":
        legacy = await store.get_meta(legacy_language_key(guild_id))
        return json.dumps(legacy) if legacy is not None else None
    return raw


async def load(store: Store, guild_id: int | None) -> GuildSettings:
    """The server's settings; the defaults for DMs (no server) and for anything never set."""
    settings = GuildSettings()
    if guild_id is None:
        return settings
    values: dict[str, Any] = {}
    for name in NAMES:
        raw = await _raw(store, guild_id, name)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if _valid(name, value):
            values[name] = value
        else:  # written by hand or by another version: the default is safer than a guess
            log.warning("guild %d: ignoring stored setting %s=%r", guild_id, name, raw)
    return replace(settings, **values)


async def save(store: Store, guild_id: int, name: str, value: Any) -> tuple[Any, Any]:
    """Set one setting; return (old, new)."""
    if name not in _TYPES:
        raise ValueError(f"unknown server setting {name!r}")
    if not _valid(name, value):
        raise ValueError(f"{name} can't be {value!r}")
    old = getattr(await load(store, guild_id), name)
    await store.set_meta(key(guild_id, name), json.dumps(value))
    return old, value
