"""Interactions: building INTERACTION_CREATE payloads like Discord's, and the server side of
the callback and the interaction webhook (``@original``, follow-ups), with real token rules."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from .cdn import CdnFile
from .commands import CHAT_INPUT, MESSAGE_COMMAND, USER_COMMAND, CommandRegistry
from .constants import (
    ADD_REACTIONS,
    ATTACH_FILES,
    CB_AUTOCOMPLETE_RESULT,
    CB_CHANNEL_MESSAGE,
    CB_DEFERRED_CHANNEL_MESSAGE,
    CB_DEFERRED_UPDATE_MESSAGE,
    CB_MODAL,
    CB_PONG,
    CB_UPDATE_MESSAGE,
    DM,
    EMBED_LINKS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    IX_APPLICATION_COMMAND,
    IX_AUTOCOMPLETE,
    IX_MESSAGE_COMPONENT,
    IX_MODAL_SUBMIT,
    IX_PING,
    MSG_CHAT_INPUT_COMMAND,
    MSG_CONTEXT_MENU_COMMAND,
    MSG_DEFAULT,
    MSG_REPLY,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    THREAD_TYPES,
    UPLOAD_LIMIT_BY_TIER,
    VIEW_CHANNEL,
    field_error,
)
from .errors import ApiError, invalid_form
from .gateway import Gateway
from .message_input import INTERACTION_FLAGS, Upload, apply_edit, new_message_fields
from .messages import MessageService, StoredMessage, iter_components
from .models import Channel, Guild, Role, User
from .notifier import Notifier
from .world import World

log = logging.getLogger(__name__)

_DM_PERMISSIONS = (VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
                   | READ_MESSAGE_HISTORY | ADD_REACTIONS)
_SELECT_TYPES = (3, 5, 6, 7, 8)
_ALLOWED_CALLBACKS = {
    IX_PING: {CB_PONG},
    IX_APPLICATION_COMMAND: {CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE, CB_MODAL},
    IX_MESSAGE_COMPONENT: {CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE,
                           CB_DEFERRED_UPDATE_MESSAGE, CB_UPDATE_MESSAGE, CB_MODAL},
    IX_AUTOCOMPLETE: {CB_AUTOCOMPLETE_RESULT},
    IX_MODAL_SUBMIT: {CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE,
                      CB_DEFERRED_UPDATE_MESSAGE, CB_UPDATE_MESSAGE},
}


class FakeInteraction:
    """A handle on one interaction the fake sent, and everything the bot did with it."""

    def __init__(self, service: InteractionService, *, id: int, token: str, type: int,
                 payload: dict[str, Any], user: User, channel: Channel,
                 source_message_id: int | None, command_name: str | None,
                 created_at: float) -> None:
        self._service = service
        self.id = id
        self.token = token
        self.type = type
        self.payload = payload
        self.user = user
        self.channel_id = channel.id
        self.guild_id = channel.guild_id
        self.source_message_id = source_message_id
        self.command_name = command_name
        self.created_at = created_at
        self.response_type: int | None = None
        self.response_data: dict[str, Any] | None = None
        self.original_id: int | None = None
        self.original_history: list[dict[str, Any]] = []
        self.followup_ids: list[int] = []
        self.modal: dict[str, Any] | None = None
        self.autocomplete_choices: list[dict[str, Any]] | None = None
        self.token_expired = False
        self.rejected_callbacks: list[dict[str, Any]] = []  # late or duplicate acks

    def __repr__(self) -> str:
        return (f"<FakeInteraction id={self.id} type={self.type} name={self.command_name!r} "
                f"response_type={self.response_type}>")

    # -- what the bot did ----------------------------------------------------------------------

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    @property
    def original(self) -> dict[str, Any] | None:
        """The ``@original`` message as it is now (None before a response or once deleted)."""
        msg = self._service.world.messages.get(self.original_id or 0)
        if msg is None or msg.deleted:
            return None
        return self._service.messages.render(msg)

    @property
    def followups(self) -> list[dict[str, Any]]:
        w = self._service.world
        return [self._service.messages.render(w.messages[i]) for i in self.followup_ids
                if not w.messages[i].deleted]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Everything the user was shown for this interaction: the ``@original`` (once it is no
        longer the "thinking" placeholder) and then the follow-ups. After a type 5 deferral
        the first follow-up *replaces* the placeholder (as on Discord), so it is the original."""
        original = self.original
        head = [original] if original is not None and not original["flags"] & FLAG_LOADING else []
        return head + self.followups

    @property
    def ephemeral(self) -> bool:
        """Whether the response (message or deferral) is ephemeral (flag 64)."""
        msg = self._service.world.messages.get(self.original_id or 0)
        if msg is not None and self.response_type in (CB_CHANNEL_MESSAGE,
                                                      CB_DEFERRED_CHANNEL_MESSAGE):
            return msg.ephemeral
        flags = (self.response_data or {}).get("flags") or 0
        return bool(flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while the deferred "thinking..." message has not been edited yet."""
        msg = self._service.world.messages.get(self.original_id or 0)
        return msg is not None and bool(msg.flags & FLAG_LOADING)

    async def wait_response(self, timeout: float = 5.0) -> FakeInteraction:
        """Wait for the initial callback (type 4/5/6/7/9)."""
        return await self.wait_for(lambda ix: ix.responded, timeout)

    async def wait_for(self, predicate: Callable[[FakeInteraction], Any],
                       timeout: float = 5.0) -> FakeInteraction:
        """Wait until ``predicate(self)`` is truthy, re-checked on every change."""
        await self._service.notifier.wait_until(lambda: self if predicate(self) else None,
                                                timeout, describe=lambda: repr(self))
        return self

    async def wait_original(self, predicate: Callable[[dict[str, Any]], Any] | None = None,
                            timeout: float = 5.0) -> dict[str, Any]:
        """Wait for a non-loading ``@original`` matching ``predicate`` and return it."""

        def probe() -> dict[str, Any] | None:
            msg = self.original
            if msg is None or msg["flags"] & FLAG_LOADING:
                return None
            return msg if predicate is None or predicate(msg) else None

        return await self._service.notifier.wait_until(probe, timeout, describe=lambda: repr(self))


class InteractionService:
    def __init__(self, world: World, messages: MessageService, commands: CommandRegistry,
                 gateway: Gateway, *, ack_timeout: float, token_ttl: float) -> None:
        self.world = world
        self.messages = messages
        self.commands = commands
        self.gateway = gateway
        self.notifier: Notifier = world.notifier
        self.ack_timeout = ack_timeout
        self.token_ttl = token_ttl
        self.by_id: dict[int, FakeInteraction] = {}
        self.by_token: dict[str, FakeInteraction] = {}
        self.modals: dict[str, tuple[dict[str, Any], FakeInteraction]] = {}

    # -- building and dispatching ------------------------------------------------------------------

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

    async def dispatch(self, ix_type: int, channel: Channel, user: User, data: dict[str, Any], *,
                       message: StoredMessage | None = None,
                       command_name: str | None = None) -> FakeInteraction:
        w = self.world
        guild = self._guild_of(channel)
        if guild is not None and user.id not in guild.members:
            raise ValueError(f"user {user.username} is not a member of guild {guild.name}; "
                             "call fd.add_member first")
        ix_id = w.ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: dict[str, Any] = {
            "type": ix_type,
            "token": token,
            "id": str(ix_id),
            "version": 1,
            "application_id": str(w.application_id),
            "app_permissions": str(_DM_PERMISSIONS if guild is None
                                   else w.bot_permissions(channel)),
            "attachment_size_limit": guild.upload_limit if guild else UPLOAD_LIMIT_BY_TIER[0],
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": 0 if guild is not None else 1,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "locale": "en-US",
            "channel": self._channel_payload(channel, user),
            "channel_id": str(channel.id),
            "data": data,
        }
        if guild is not None:
            payload.update({
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": guild.locale,
                          "features": list(guild.features)},
                "guild_locale": guild.locale,
                "member": self._member_payload(guild, user, channel),
            })
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = self.messages.render(message)
        ix = FakeInteraction(self, id=ix_id, token=token, type=ix_type, payload=payload,
                             user=user, channel=channel,
                             source_message_id=message.id if message else None,
                             command_name=command_name, created_at=w.now())
        self.by_id[ix_id] = ix
        self.by_token[token] = ix
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        await self.gateway.flush()
        return ix

    async def slash(self, channel: Channel, user: User, name: str, options: dict[str, Any],
                    subcommand: str | None) -> FakeInteraction:
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
            raise ValueError(f"/{name} {subcommand or ''} needs a subcommand: "
                             f"{[o['name'] for o in schema]}")
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
        return await self.dispatch(IX_APPLICATION_COMMAND, channel, user, data,
                                   command_name=full_name)

    async def context_menu(self, channel: Channel, user: User, name: str, *,
                           target_message: StoredMessage | None,
                           target_user: User | None) -> FakeInteraction:
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
        data: dict[str, Any] = {"type": ctype, "name": name, "id": cmd["id"],
                                "target_id": str(target_id), "resolved": resolved}
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        return await self.dispatch(IX_APPLICATION_COMMAND, channel, user, data, command_name=name)

    async def click(self, channel: Channel, user: User, message: StoredMessage, custom_id: str,
                    values: list[str] | None) -> FakeInteraction:
        comp = next((c for c in iter_components(message.components)
                     if c.get("custom_id") == custom_id), None)
        if comp is None:
            ids = [c.get("custom_id") for c in iter_components(message.components)
                   if c.get("custom_id")]
            raise ValueError(f"message {message.id} has no component {custom_id!r}; has {ids}")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; a user cannot use it")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"],
                                "id": comp.get("id")}
        if comp["type"] in _SELECT_TYPES:
            if values is None:
                raise ValueError(f"{custom_id!r} is a select menu: pass values=[...]")
            data["values"] = [str(v) for v in values]
        return await self.dispatch(IX_MESSAGE_COMPONENT, channel, user, data, message=message)

    async def submit_modal(self, channel: Channel, user: User, custom_id: str,
                           values: dict[str, Any], message: StoredMessage | None
                           ) -> FakeInteraction:
        shown = self.modals.get(custom_id)
        if shown is None:
            raise ValueError(f"no modal {custom_id!r} was shown by the bot; known: "
                             f"{sorted(self.modals)}")
        modal, opener = shown
        if message is None and opener.source_message_id is not None:
            message = self.world.messages.get(opener.source_message_id)
        remaining = dict(values)
        components = [self._modal_component(c, remaining) for c in modal.get("components", [])]
        if remaining:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(remaining)}")
        data = {"custom_id": custom_id, "components": [c for c in components if c]}
        return await self.dispatch(IX_MODAL_SUBMIT, channel, user, data, message=message)

    def _modal_component(self, comp: dict[str, Any], values: dict[str, Any]
                         ) -> dict[str, Any] | None:
        ctype = comp.get("type")
        if ctype == 1:
            return {"type": 1, "id": comp.get("id"),
                    "components": [x for x in (self._modal_component(c, values)
                                               for c in comp.get("components", [])) if x]}
        if ctype == 18:
            inner = self._modal_component(comp["component"], values)
            return {"type": 18, "id": comp.get("id"), "component": inner}
        cid = comp.get("custom_id")
        if cid is None:
            return None  # text displays and the like submit nothing
        if ctype == 4:
            value = values.pop(cid, "")
            if comp.get("required", True) and not value:
                raise ValueError(f"modal field {cid!r} is required")
            return {"type": 4, "id": comp.get("id"), "custom_id": cid, "value": str(value)}
        raw = values.pop(cid, [])
        return {"type": ctype, "id": comp.get("id"), "custom_id": cid,
                "values": [str(v) for v in (raw if isinstance(raw, list) else [raw])]}

    # -- option building -------------------------------------------------------------------------

    def _build_options(self, schema: list[dict[str, Any]], values: dict[str, Any],
                       channel: Channel, user: User, resolved: dict[str, dict[str, Any]]
                       ) -> list[dict[str, Any]]:
        unknown = set(values) - {o["name"] for o in schema}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; the command has "
                             f"{[o['name'] for o in schema]}")
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

    def _option_value(self, opt: dict[str, Any], value: Any, channel: Channel, user: User,
                      resolved: dict[str, dict[str, Any]]) -> Any:
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
            if ("min_value" in opt and value < opt["min_value"]) or \
                    ("max_value" in opt and value > opt["max_value"]):
                raise ValueError(f"option {name!r}: {value} outside "
                                 f"[{opt.get('min_value')}, {opt.get('max_value')}]")
        if choices and otype in (3, 4, 10) and value not in [c["value"] for c in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of the choices")
        if otype in (3, 4, 5, 10):
            return value
        if otype == 11:
            if not isinstance(value, CdnFile):
                raise TypeError(f"option {name!r} takes a file from fd.add_cdn_file()")
            att = self.world.cdn.copy(value, f"ephemeral-attachments/{self.world.application_id}",
                                      ephemeral=True)
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
            data: dict[str, Any] = {"id": str(value.id), "name": value.name, "type": value.type,
                                    "permissions": str(self.world.permissions(value, user.id)),
                                    "parent_id": str(value.parent_id) if value.parent_id else None}
            if value.type in THREAD_TYPES:
                data["thread_metadata"] = value.payload()["thread_metadata"]
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        raise ValueError(f"option type {otype} of {name!r} is not supported by the fake")

    def _resolve_user(self, user: User, channel: Channel,
                      resolved: dict[str, dict[str, Any]]) -> None:
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        guild = self._guild_of(channel)
        if guild is not None and user.id in guild.members:
            member = guild.members[user.id].payload(with_user=False)
            member["permissions"] = str(self.world.permissions(channel, user.id, guild))
            resolved.setdefault("members", {})[str(user.id)] = member

    # -- callback ---------------------------------------------------------------------------------

    def _upload_limit(self, ix: FakeInteraction) -> int:
        return int(ix.payload["attachment_size_limit"])

    def callback(self, ix_id: int, token: str, body: dict[str, Any], uploads: list[Upload]
                 ) -> dict[str, Any]:
        ix = self.by_id.get(ix_id)
        if ix is None or ix.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        if ix.responded:
            ix.rejected_callbacks.append(body)
            log.warning("fake discord: %r acknowledged twice -> 40060", ix)
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        age = self.world.now() - ix.created_at
        if age > self.ack_timeout:
            ix.rejected_callbacks.append(body)
            self.notifier.changed()
            log.warning("fake discord: %r acknowledged after %.2fs (limit %.1fs) -> 10062",
                        ix, age, self.ack_timeout)
            raise ApiError(404, 10062, "Unknown interaction")
        cb_type = body.get("type")
        allowed = set(_ALLOWED_CALLBACKS.get(ix.type, set()))
        if ix.type == IX_MODAL_SUBMIT and ix.source_message_id is None:
            allowed -= {CB_DEFERRED_UPDATE_MESSAGE, CB_UPDATE_MESSAGE}
        if cb_type not in allowed:
            raise invalid_form(field_error(["type"], "INTERACTION_CALLBACK_TYPE_INVALID",
                                           f"Callback type {cb_type} is not valid here"))
        data = body.get("data") or {}
        message: StoredMessage | None = None
        if cb_type == CB_CHANNEL_MESSAGE:
            message = self._create_response_message(ix, data, uploads, loading=False)
        elif cb_type == CB_DEFERRED_CHANNEL_MESSAGE:
            message = self._create_response_message(ix, data, [], loading=True)
        elif cb_type == CB_DEFERRED_UPDATE_MESSAGE:
            ix.original_id = ix.source_message_id
        elif cb_type == CB_UPDATE_MESSAGE:
            message = self.world.messages[ix.source_message_id or 0]
            apply_edit(self.world, message, data, uploads, upload_limit=self._upload_limit(ix))
            ix.original_id = message.id
            self.messages.updated(message)
        elif cb_type == CB_MODAL:
            self._check_modal(data)
            ix.modal = data
            self.modals[data["custom_id"]] = (data, ix)
        elif cb_type == CB_AUTOCOMPLETE_RESULT:
            ix.autocomplete_choices = data.get("choices", [])
        ix.response_type = cb_type
        ix.response_data = data
        self._snapshot(ix)
        self.notifier.changed()
        result: dict[str, Any] = {"interaction": {"id": str(ix.id), "type": ix.type},
                                  "resource": {"type": cb_type}}
        if message is not None:
            result["interaction"].update({
                "response_message_id": str(message.id),
                "response_message_loading": bool(message.flags & FLAG_LOADING),
                "response_message_ephemeral": message.ephemeral,
            })
            result["resource"]["message"] = self.messages.render(message)
        return result

    @staticmethod
    def _check_modal(data: dict[str, Any]) -> None:
        if not data.get("custom_id") or not data.get("title"):
            raise invalid_form(field_error(["data"], "BASE_TYPE_REQUIRED",
                                           "custom_id and title are required"))
        if len(data["title"]) > 45:
            raise invalid_form(field_error(["data", "title"], "BASE_TYPE_MAX_LENGTH",
                                           "Must be 45 or fewer in length."))
        if not 1 <= len(data.get("components") or []) <= 5:
            raise invalid_form(field_error(["data", "components"], "BASE_TYPE_BAD_LENGTH",
                                           "Must be between 1 and 5 in length."))

    def _interaction_metadata(self, ix: FakeInteraction) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": str(ix.id), "type": ix.type, "user": ix.user.payload(),
                                "authorizing_integration_owners":
                                    ix.payload["authorizing_integration_owners"]}
        data = ix.payload["data"]
        if ix.type == IX_APPLICATION_COMMAND:
            meta["name"] = ix.command_name
            meta["command_type"] = data.get("type", CHAT_INPUT)
            if data.get("type") == MESSAGE_COMMAND:
                meta["target_message_id"] = data["target_id"]
            elif data.get("type") == USER_COMMAND:
                meta["target_user"] = self.world.users[int(data["target_id"])].payload()
        elif ix.type == IX_MESSAGE_COMPONENT:
            meta["interacted_message_id"] = str(ix.source_message_id)
        elif ix.type == IX_MODAL_SUBMIT:
            opener = self.modals.get(data["custom_id"], (None, None))[1]
            if opener is not None:
                meta["triggering_interaction_metadata"] = self._interaction_metadata(opener)
        return meta

    def _create_response_message(self, ix: FakeInteraction, data: dict[str, Any],
                                 uploads: list[Upload], *, loading: bool,
                                 followup: bool = False) -> StoredMessage:
        w = self.world
        channel = w.channels[ix.channel_id]
        flags = int(data.get("flags") or 0)
        if loading:
            fields: dict[str, Any] = {"content": "", "flags": FLAG_LOADING | (flags & FLAG_EPHEMERAL)}
        else:
            fields = new_message_fields(w, data, uploads, channel_id=channel.id,
                                        upload_limit=self._upload_limit(ix),
                                        allowed_flags=INTERACTION_FLAGS)
            fields["embeds"] = self.messages.normalize_embeds(fields["embeds"],
                                                              fields["attachments"])
            mentions, roles, everyone = self.messages.resolve_mentions(
                fields["content"], data.get("allowed_mentions"), None)
            fields.update(mention_ids=mentions, mention_roles=roles, mention_everyone=everyone)
        msg_type = MSG_DEFAULT
        if ix.type == IX_APPLICATION_COMMAND:
            is_menu = ix.payload["data"].get("type", CHAT_INPUT) != CHAT_INPUT
            msg_type = MSG_CONTEXT_MENU_COMMAND if is_menu else MSG_CHAT_INPUT_COMMAND
        reference = None
        original = w.messages.get(ix.original_id or 0)
        if followup and original is not None and not original.deleted and not original.ephemeral:
            msg_type = MSG_REPLY
            reference = {"type": 0, "channel_id": str(channel.id), "message_id": str(original.id)}
            if channel.guild_id:
                reference["guild_id"] = str(channel.guild_id)
        legacy = None
        if ix.type == IX_APPLICATION_COMMAND:
            legacy = {"id": str(ix.id), "type": ix.type, "name": ix.command_name,
                      "user": ix.user.payload()}
        msg = self.messages.create(
            channel, w.bot_user, type=msg_type, webhook_id=w.application_id,
            application_id=w.application_id, interaction_metadata=self._interaction_metadata(ix),
            interaction_legacy=legacy, reference=reference,
            referenced_id=original.id if reference and original else None, **fields)
        if not followup:
            ix.original_id = msg.id
        return msg

    def _snapshot(self, ix: FakeInteraction) -> None:
        current = ix.original
        if current is not None and (not ix.original_history or ix.original_history[-1] != current):
            ix.original_history.append(current)

    # -- the interaction webhook -------------------------------------------------------------------

    def webhook_interaction(self, app_id: int, token: str) -> FakeInteraction:
        if app_id != self.world.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        ix = self.by_token.get(token)
        if ix is None or ix.token_expired or self.world.now() - ix.created_at > self.token_ttl:
            log.info("fake discord: webhook call with a dead interaction token -> 50027")
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return ix

    def _webhook_message(self, ix: FakeInteraction, message_id: str) -> StoredMessage:
        if message_id == "@original":
            target = ix.original_id
        else:
            target = int(message_id) if message_id.isdigit() else None
            if target not in ([ix.original_id, *ix.followup_ids]):
                target = None
        msg = self.world.messages.get(target or 0)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def get_message(self, ix: FakeInteraction, message_id: str) -> dict[str, Any]:
        return self.messages.render(self._webhook_message(ix, message_id))

    def edit_message(self, ix: FakeInteraction, message_id: str, payload: dict[str, Any],
                     uploads: list[Upload]) -> dict[str, Any]:
        msg = self._webhook_message(ix, message_id)
        was_loading = bool(msg.flags & FLAG_LOADING)
        apply_edit(self.world, msg, payload, uploads, upload_limit=self._upload_limit(ix))
        msg.flags &= ~FLAG_LOADING
        if "embeds" in payload:
            msg.embeds = self.messages.normalize_embeds(msg.embeds, msg.attachments)
        if "content" in payload or "allowed_mentions" in payload:
            msg.mention_ids, msg.mention_roles, msg.mention_everyone = \
                self.messages.resolve_mentions(msg.content, payload.get("allowed_mentions"), None)
        # Replacing the "thinking..." placeholder is not an edit in Discord's eyes.
        self.messages.updated(msg, edited=not was_loading)
        self._snapshot(ix)
        self.notifier.changed()
        return self.messages.render(msg)

    def delete_message(self, ix: FakeInteraction, message_id: str) -> None:
        self.messages.delete(self._webhook_message(ix, message_id))

    def followup(self, ix: FakeInteraction, payload: dict[str, Any], uploads: list[Upload]
                 ) -> dict[str, Any]:
        if not ix.responded:
            raise ApiError(404, 10015, "Unknown Webhook")
        original = self.world.messages.get(ix.original_id or 0)
        if (ix.response_type == CB_DEFERRED_CHANNEL_MESSAGE and original is not None
                and original.flags & FLAG_LOADING):
            # Discord: the first follow-up after a deferral replaces the "thinking" message.
            payload = {k: v for k, v in payload.items() if k != "flags"}
            return self.edit_message(ix, "@original", payload, uploads)
        msg = self._create_response_message(ix, payload, uploads, loading=False, followup=True)
        ix.followup_ids.append(msg.id)
        self.notifier.changed()
        return self.messages.render(msg)
