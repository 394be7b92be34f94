"""Application commands: bulk overwrite / create / list, with the validation Discord applies."""

from __future__ import annotations

import re
from typing import Any

from .errors import invalid_form
from .world import World

CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3
_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
# Most commands of each type one scope (global, or one guild) may have.
_LIMITS = {CHAT_INPUT: 100, USER_COMMAND: 15, MESSAGE_COMMAND: 15}


def _err(path: list[str | int], code: str, message: str) -> dict[str, Any]:
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path):
        node = {str(part): node}
    return node


def _check_options(
    options: list[dict[str, Any]], path: list[str | int], errors: list[dict[str, Any]]
) -> None:
    if len(options) > 25:
        errors.append(
            _err([*path, "options"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        )
    seen_optional = False
    names: set[str] = set()
    for i, opt in enumerate(options):
        where = [*path, "options", i]
        name = opt.get("name", "")
        if not _NAME_RE.match(name) or name != name.lower():
            errors.append(
                _err(
                    [*where, "name"],
                    "APPLICATION_COMMAND_INVALID_NAME",
                    f"Command name is invalid: {name!r}",
                )
            )
        if name in names:
            errors.append(
                _err(
                    [*where, "name"],
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            )
        names.add(name)
        if not 1 <= len(opt.get("description", "")) <= 100:
            errors.append(
                _err(
                    [*where, "description"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            )
        if opt.get("type") in (1, 2):
            _check_options(opt.get("options", []), where, errors)
            continue
        if opt.get("required"):
            if seen_optional:
                errors.append(
                    _err(
                        [*where, "required"],
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
                )
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            errors.append(
                _err([*where, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            )


def validate(commands: list[dict[str, Any]]) -> None:
    """Raise 400 / 50035 Invalid Form Body for the mistakes Discord rejects."""
    errors: list[dict[str, Any]] = []
    counts: dict[int, int] = {}
    seen: set[tuple[int, str]] = set()
    for i, cmd in enumerate(commands):
        ctype = cmd.get("type", CHAT_INPUT)
        name = cmd.get("name", "")
        counts[ctype] = counts.get(ctype, 0) + 1
        if (ctype, name) in seen:
            errors.append(
                _err(
                    [i, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique: {name}",
                )
            )
        seen.add((ctype, name))
        if ctype == CHAT_INPUT:
            if not _NAME_RE.match(name) or name != name.lower():
                errors.append(
                    _err(
                        [i, "name"],
                        "APPLICATION_COMMAND_INVALID_NAME",
                        f"Command name is invalid: {name!r}",
                    )
                )
            if not 1 <= len(cmd.get("description", "")) <= 100:
                errors.append(
                    _err(
                        [i, "description"],
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
                )
            _check_options(cmd.get("options") or [], [i], errors)
        elif not 1 <= len(name) <= 32:
            errors.append(
                _err([i, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
            )
    for ctype, count in counts.items():
        if count > _LIMITS.get(ctype, 100):
            errors.append(
                {
                    "_errors": [
                        {
                            "code": "APPLICATION_COMMANDS_TOO_MANY",
                            "message": "Too many application commands",
                        }
                    ]
                }
            )
    if errors:
        merged: dict[str, Any] = {}
        for e in errors:
            _merge(merged, e)
        raise invalid_form(merged)


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for k, v in other.items():
        if k == "_errors":
            into.setdefault("_errors", []).extend(v)
        else:
            _merge(into.setdefault(k, {}), v)


class CommandRegistry:
    def __init__(self, world: World) -> None:
        self.world = world
        self.scopes: dict[int | None, list[dict[str, Any]]] = {None: []}
        self.sync_count = 0

    def list(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        return list(self.scopes.get(guild_id, []))

    def _stored(
        self, raw: dict[str, Any], guild_id: int | None, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        ids = self.world.ids
        ctype = raw.get("type", CHAT_INPUT)
        cmd: dict[str, Any] = {
            "id": previous["id"] if previous else str(ids.next()),
            "application_id": str(self.world.application_id),
            "version": str(ids.next()),
            "default_member_permissions": raw.get("default_member_permissions"),
            "type": ctype,
            "name": raw["name"],
            "name_localizations": raw.get("name_localizations"),
            "description": raw.get("description", "") if ctype == CHAT_INPUT else "",
            "description_localizations": raw.get("description_localizations"),
            "nsfw": raw.get("nsfw", False),
        }
        if guild_id is not None:
            cmd["guild_id"] = str(guild_id)
        else:
            cmd["dm_permission"] = raw.get("dm_permission", True)
            cmd["contexts"] = raw.get("contexts")
            cmd["integration_types"] = raw.get("integration_types", [0])
        if raw.get("options"):
            cmd["options"] = raw["options"]
        return cmd

    def bulk_overwrite(
        self, guild_id: int | None, commands: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        validate(commands)
        old = {(c["type"], c["name"]): c for c in self.scopes.get(guild_id, [])}
        stored = [
            self._stored(raw, guild_id, old.get((raw.get("type", CHAT_INPUT), raw["name"])))
            for raw in commands
        ]
        self.scopes[guild_id] = stored
        self.sync_count += 1
        self.world.notifier.changed()
        return stored

    def upsert(self, guild_id: int | None, raw: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        validate([raw])
        current = self.scopes.setdefault(guild_id, [])
        key = (raw.get("type", CHAT_INPUT), raw["name"])
        for i, c in enumerate(current):
            if (c["type"], c["name"]) == key:
                current[i] = self._stored(raw, guild_id, c)
                return current[i], False
        cmd = self._stored(raw, guild_id, None)
        current.append(cmd)
        self.world.notifier.changed()
        return cmd, True

    def delete(self, guild_id: int | None, command_id: str) -> bool:
        current = self.scopes.get(guild_id, [])
        for c in current:
            if c["id"] == command_id:
                current.remove(c)
                return True
        return False

    def find(self, name: str, ctype: int, guild_id: int | None) -> dict[str, Any]:
        """The command a user in ``guild_id`` would pick: the guild's own first, then global."""
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for c in self.scopes.get(scope, []):
                if c["name"] == name and c["type"] == ctype:
                    return c
        known = sorted({c["name"] for s in scopes for c in self.scopes.get(s, [])})
        raise LookupError(
            f"no registered command {name!r} (type {ctype}) for guild "
            f"{guild_id}; registered: {known}. Did the bot sync its tree?"
        )
