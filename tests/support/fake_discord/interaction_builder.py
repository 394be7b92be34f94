"""Building INTERACTION_CREATE payloads the way Discord does (slash options typed from the
registered schema, resolved data, context menus, components, modal submits) and sending them."""

from __future__ import annotations

import secrets
from typing import Any

from .cdn import CdnFile
from .commands import CHAT_INPUT, MESSAGE_COMMAND, USER_COMMAND, CommandRegistry
from .constants import (
    ADD_REACTIONS,
    ATTACH_FILES,
    DM,
    EMBED_LINKS,
    IX_APPLICATION_COMMAND,
    IX_MESSAGE_COMPONENT,
    IX_MODAL_SUBMIT,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    THREAD_TYPES,
    UPLOAD_LIMIT_BY_TIER,
    VIEW_CHANNEL,
)
from .gateway import Gateway
from .interaction_handle import TOKEN_LIFETIME_S, FakeInteraction, InteractionRegistry
from .messages import StoredMessage, iter_components
from .models import Channel, Guild, Role, User

_DM_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
)
_SELECT_TYPES = (3, 5, 6, 7, 8)


class InteractionBuilder:
    def __init__(
        self, registry: InteractionRegistry, commands: CommandRegistry, gateway: Gateway
    ) -> None:
        self.registry = registry
        self.world = registry.world
        self.messages = registry.messages
        self.commands = commands
        self.gateway = gateway

    def _guild_of(self, channel: Channel) -> Guild | None:
        return self.world.guilds.get(channel.guild_id) if channel.guild_id else None

    def _user_permissions(self, channel: Channel, user: User) -> int:
        if channel.type == DM:
            return _DM_PERMISSIONS
        return self.world.permissions(channel, user.id)

    def _channel_payload(self, channel: Channel, user: User) -> dict[str, Any]:
        data = channel.payload()
        data["permissions"] = str(self._user_permissions(channel, user))
        return data

    def _member_payload(self, guild: Guild, user: User, channel: Channel) -> dict[str, Any]:
        data = guild.members[user.id].payload()
        data["permissions"] = str(self.world.permissions(channel, user.id, guild))
        return data

    async def dispatch(
        self,
        ix_type: int,
        channel: Channel,
        user: User,
        data: dict[str, Any],
        *,
        message: StoredMessage | None = None,
        command_name: str | None = None,
    ) -> FakeInteraction:
        w = self.world
        guild = self._guild_of(channel)
        if guild is not None and user.id not in guild.members:
            raise ValueError(
                f"user {user.username} is not a member of guild {guild.name}; "
                "call fd.add_member first"
            )
        created = w.now()
        ttl = self.registry.token_ttl
        # The id carries the interaction's time, from which the client reckons its token's
        # expiry: date it so that instant is also when this fake stops accepting the token.
        ix_id = (
            w.ids.next() if ttl == TOKEN_LIFETIME_S else w.ids.at(created + ttl - TOKEN_LIFETIME_S)
        )
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: dict[str, Any] = {
            "type": ix_type,
            "token": token,
            "id": str(ix_id),
            "version": 1,
            "application_id": str(w.application_id),
            "app_permissions": str(
                _DM_PERMISSIONS if guild is None else w.bot_permissions(channel)
            ),
            "attachment_size_limit": guild.upload_limit if guild else UPLOAD_LIMIT_BY_TIER[0],
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": 0 if guild is not None else 1,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "locale": user.locale,
            "channel": self._channel_payload(channel, user),
            "channel_id": str(channel.id),
            "data": data,
        }
        if guild is not None:
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild": {
                        "id": str(guild.id),
                        "locale": guild.locale,
                        "features": list(guild.features),
                    },
                    "guild_locale": guild.locale,
                    "member": self._member_payload(guild, user, channel),
                }
            )
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = self.messages.render(message)
        ix = FakeInteraction(
            self.registry,
            id=ix_id,
            token=token,
            type=ix_type,
            payload=payload,
            user=user,
            channel=channel,
            source_message_id=message.id if message else None,
            command_name=command_name,
            created_at=created,
            token_expires_at=created + ttl,
        )
        self.registry.add(ix)
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        await self.gateway.flush()
        return ix

    async def slash(
        self,
        channel: Channel,
        user: User,
        name: str,
        options: dict[str, Any],
        subcommand: str | None,
    ) -> FakeInteraction:
        guild = self._guild_of(channel)
        cmd = self.commands.find(name, CHAT_INPUT, guild.id if guild else None)
        resolved: dict[str, dict[str, Any]] = {}
        path = subcommand.split() if subcommand else []
        schema = cmd.get("options") or []
        wrappers: list[tuple[int, str]] = []
        for part in path:
            sub = next((o for o in schema if o["name"] == part and o["type"] in (1, 2)), None)
            if sub is None:
                raise ValueError(f"/{name} has no subcommand (group) {part!r}")
            wrappers.append((sub["type"], part))
            schema = sub.get("options") or []
        if any(o["type"] in (1, 2) for o in schema):
            raise ValueError(
                f"/{name} {subcommand or ''} needs a subcommand: {[o['name'] for o in schema]}"
            )
        built = self._build_options(schema, options, channel, user, resolved)
        for otype, oname in reversed(wrappers):
            built = [{"type": otype, "name": oname, "options": built}]
        data: dict[str, Any] = {"type": CHAT_INPUT, "name": name, "id": cmd["id"]}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        full_name = " ".join([name, *path])
        return await self.dispatch(
            IX_APPLICATION_COMMAND, channel, user, data, command_name=full_name
        )

    async def context_menu(
        self,
        channel: Channel,
        user: User,
        name: str,
        *,
        target_message: StoredMessage | None,
        target_user: User | None,
    ) -> FakeInteraction:
        guild = self._guild_of(channel)
        ctype = MESSAGE_COMMAND if target_message is not None else USER_COMMAND
        cmd = self.commands.find(name, ctype, guild.id if guild else None)
        resolved: dict[str, dict[str, Any]] = {}
        if target_message is not None:
            # The target's content is always sent, with or without the Message Content intent.
            resolved["messages"] = {str(target_message.id): self.messages.render(target_message)}
            target_id = target_message.id
        else:
            assert target_user is not None
            self._resolve_user(target_user, channel, resolved)
            target_id = target_user.id
        data: dict[str, Any] = {
            "type": ctype,
            "name": name,
            "id": cmd["id"],
            "target_id": str(target_id),
            "resolved": resolved,
        }
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        return await self.dispatch(IX_APPLICATION_COMMAND, channel, user, data, command_name=name)

    async def click(
        self,
        channel: Channel,
        user: User,
        message: StoredMessage,
        custom_id: str,
        values: list[str] | None,
    ) -> FakeInteraction:
        comp = next(
            (c for c in iter_components(message.components) if c.get("custom_id") == custom_id),
            None,
        )
        if comp is None:
            ids = [
                c.get("custom_id")
                for c in iter_components(message.components)
                if c.get("custom_id")
            ]
            raise ValueError(f"message {message.id} has no component {custom_id!r}; has {ids}")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; a user cannot use it")
        data: dict[str, Any] = {
            "custom_id": custom_id,
            "component_type": comp["type"],
            "id": comp.get("id"),
        }
        if comp["type"] in _SELECT_TYPES:
            if values is None:
                raise ValueError(f"{custom_id!r} is a select menu: pass values=[...]")
            data["values"] = [str(v) for v in values]
        return await self.dispatch(IX_MESSAGE_COMPONENT, channel, user, data, message=message)

    async def submit_modal(
        self,
        channel: Channel,
        user: User,
        custom_id: str,
        values: dict[str, Any],
        message: StoredMessage | None,
    ) -> FakeInteraction:
        shown = self.registry.modals.get(custom_id)
        if shown is None:
            raise ValueError(
                f"no modal {custom_id!r} was shown by the bot; known: "
                f"{sorted(self.registry.modals)}"
            )
        modal, opener = shown
        if message is None and opener.source_message_id is not None:
            message = self.world.messages.get(opener.source_message_id)
        remaining = dict(values)
        components = [self._modal_component(c, remaining) for c in modal.get("components", [])]
        if remaining:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(remaining)}")
        data = {"custom_id": custom_id, "components": [c for c in components if c]}
        return await self.dispatch(IX_MODAL_SUBMIT, channel, user, data, message=message)

    def _modal_component(
        self, comp: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        ctype = comp.get("type")
        if ctype == 1:
            return {
                "type": 1,
                "id": comp.get("id"),
                "components": [
                    x
                    for x in (self._modal_component(c, values) for c in comp.get("components", []))
                    if x
                ],
            }
        if ctype == 18:
            inner = self._modal_component(comp["component"], values)
            return {"type": 18, "id": comp.get("id"), "component": inner}
        cid = comp.get("custom_id")
        if cid is None:
            return None  # text displays and the like submit nothing
        # A field the user leaves alone submits what it showed: a text input's pre-filled value,
        # a select's default options (as Discord's clients do).
        if ctype == 4:
            value = values.pop(cid, comp.get("value") or "")
            if comp.get("required", True) and not value:
                raise ValueError(f"modal field {cid!r} is required")
            return {"type": 4, "id": comp.get("id"), "custom_id": cid, "value": str(value)}
        shown = [o["value"] for o in comp.get("options", []) if o.get("default")]
        raw = values.pop(cid, shown)
        return {
            "type": ctype,
            "id": comp.get("id"),
            "custom_id": cid,
            "values": [str(v) for v in (raw if isinstance(raw, list) else [raw])],
        }

    # -- option building -------------------------------------------------------------------------

    def _build_options(
        self,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        channel: Channel,
        user: User,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        unknown = set(values) - {o["name"] for o in schema}
        if unknown:
            raise ValueError(
                f"unknown options {sorted(unknown)}; the command has {[o['name'] for o in schema]}"
            )
        built = []
        for opt in schema:
            name = opt["name"]
            if name not in values or values[name] is None:
                if opt.get("required"):
                    raise ValueError(f"option {name!r} is required")
                continue
            value = self._option_value(opt, values[name], channel, user, resolved)
            built.append({"type": opt["type"], "name": name, "value": value})
        return built

    def _option_value(
        self,
        opt: dict[str, Any],
        value: Any,
        channel: Channel,
        user: User,
        resolved: dict[str, dict[str, Any]],
    ) -> Any:
        otype, name = opt["type"], opt["name"]
        choices = opt.get("choices")
        if otype == 3:
            if not isinstance(value, str):
                raise TypeError(f"option {name!r} takes a string")
            if not opt.get("min_length", 0) <= len(value) <= opt.get("max_length", 6000):
                raise ValueError(f"option {name!r}: length outside the allowed range")
        elif otype == 4:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"option {name!r} takes an integer")
        elif otype == 10:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"option {name!r} takes a number")
        elif otype == 5:
            if not isinstance(value, bool):
                raise TypeError(f"option {name!r} takes a boolean")
        if otype in (4, 10):
            if ("min_value" in opt and value < opt["min_value"]) or (
                "max_value" in opt and value > opt["max_value"]
            ):
                raise ValueError(
                    f"option {name!r}: {value} outside "
                    f"[{opt.get('min_value')}, {opt.get('max_value')}]"
                )
        if choices and otype in (3, 4, 10) and value not in [c["value"] for c in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of the choices")
        if otype in (3, 4, 5, 10):
            return value
        if otype == 11:
            if not isinstance(value, CdnFile):
                raise TypeError(f"option {name!r} takes a file from fd.add_cdn_file()")
            att = self.world.cdn.copy(
                value, f"ephemeral-attachments/{self.world.application_id}", ephemeral=True
            )
            resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
            return str(att.id)
        if otype == 6 or (otype == 9 and isinstance(value, User)):
            if not isinstance(value, User):
                raise TypeError(f"option {name!r} takes a user from fd.add_user()")
            self._resolve_user(value, channel, resolved)
            return str(value.id)
        if otype == 8 or (otype == 9 and isinstance(value, Role)):
            if not isinstance(value, Role):
                raise TypeError(f"option {name!r} takes a role")
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if otype == 7:
            if not isinstance(value, Channel):
                raise TypeError(f"option {name!r} takes a channel")
            types = opt.get("channel_types")
            if types and value.type not in types:
                raise ValueError(f"option {name!r} accepts channel types {types}")
            data: dict[str, Any] = {
                "id": str(value.id),
                "name": value.name,
                "type": value.type,
                "permissions": str(self.world.permissions(value, user.id)),
                "parent_id": str(value.parent_id) if value.parent_id else None,
            }
            if value.type in THREAD_TYPES:
                data["thread_metadata"] = value.payload()["thread_metadata"]
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        raise ValueError(f"option type {otype} of {name!r} is not supported by the fake")

    def _resolve_user(
        self, user: User, channel: Channel, resolved: dict[str, dict[str, Any]]
    ) -> None:
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        guild = self._guild_of(channel)
        if guild is not None and user.id in guild.members:
            member = guild.members[user.id].payload(with_user=False)
            member["permissions"] = str(self.world.permissions(channel, user.id, guild))
            resolved.setdefault("members", {})[str(user.id)] = member

    # -- callback ---------------------------------------------------------------------------------
