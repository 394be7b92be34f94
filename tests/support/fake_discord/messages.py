"""Stored messages, how they render as API payloads, and the Message Content blanking rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cdn import CdnFile
from .constants import (
    DM,
    FLAG_EPHEMERAL,
    GATEWAY_MESSAGE_CONTENT,
    GATEWAY_MESSAGE_CONTENT_LIMITED,
    INTENT_DIRECT_MESSAGE_REACTIONS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILD_MESSAGES,
    VIEW_CHANNEL,
)
from .models import Channel, User, iso
from .world import World

if TYPE_CHECKING:
    from .gateway import Gateway, Session


@dataclass(eq=False)
class Reaction:
    emoji: dict[str, Any]  # {"id": str|None, "name": str}
    user_ids: list[int] = field(default_factory=list)


@dataclass(eq=False)
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    timestamp: float
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[CdnFile] = field(default_factory=list)
    mention_ids: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    type: int = 0
    flags: int = 0
    tts: bool = False
    nonce: str | None = None
    reference: dict[str, Any] | None = None
    referenced_id: int | None = None
    edited_at: float | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    interaction_legacy: dict[str, Any] | None = None
    reactions: dict[str, Reaction] = field(default_factory=dict)
    thread_id: int | None = None
    position: int | None = None
    deleted: bool = False
    pinned: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)


def emoji_key(emoji: dict[str, Any]) -> str:
    return f"{emoji['name']}:{emoji['id']}" if emoji.get("id") else emoji["name"]


def assign_component_ids(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Discord numbers every component (``id``) in the order it appears, when the bot did not."""
    counter = 0
    used: set[int] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("id"), int):
                used.add(node["id"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    def walk(node: Any) -> None:
        nonlocal counter
        if isinstance(node, dict):
            if "type" in node and "id" not in node:
                counter += 1
                while counter in used:
                    counter += 1
                node["id"] = counter
            for key in ("components", "component", "accessory"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    collect(components)
    walk(components)
    return components


def iter_components(components: Iterable[Any]) -> Iterable[dict[str, Any]]:
    """Every component, nested ones included (rows, sections, containers, labels)."""
    for comp in components:
        if not isinstance(comp, dict):
            continue
        yield comp
        for key in ("components", "component", "accessory"):
            inner = comp.get(key)
            if isinstance(inner, dict):
                yield from iter_components([inner])
            elif isinstance(inner, list):
                yield from iter_components(inner)


class MessageService:
    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world = world
        self.gateway = gateway

    # -- the Message Content rule ----------------------------------------------------------

    def content_visible(self, msg: StoredMessage, privileged: bool) -> bool:
        """Whether a bot without/with the Message Content intent sees this message's content."""
        if privileged or msg.guild_id is None or msg.ephemeral:
            return True
        bot_id = self.world.bot_user.id
        return msg.author.id == bot_id or bot_id in msg.mention_ids

    def app_has_content_intent(self) -> bool:
        return bool(
            self.world.application_flags
            & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED)
        )

    # -- rendering -------------------------------------------------------------------------

    def render(
        self,
        msg: StoredMessage,
        *,
        content_access: bool = True,
        include_nonce: bool = False,
        gateway: bool = False,
        with_reference: bool = True,
    ) -> dict[str, Any]:
        """The message object; ``content_access=False`` applies the blanking rule."""
        w = self.world
        visible = self.content_visible(msg, content_access)
        guild = w.guilds.get(msg.guild_id) if msg.guild_id else None
        data: dict[str, Any] = {
            "type": msg.type,
            "content": msg.content if visible else "",
            "mentions": [
                self._mention_payload(uid, guild, gateway)
                for uid in msg.mention_ids
                if uid in w.users
            ],
            "mention_roles": [str(r) for r in msg.mention_roles],
            "attachments": [a.payload() for a in msg.attachments] if visible else [],
            "embeds": list(msg.embeds) if visible else [],
            "timestamp": iso(msg.timestamp),
            "edited_timestamp": iso(msg.edited_at) if msg.edited_at else None,
            "flags": msg.flags,
            "components": list(msg.components) if visible else [],
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "author": msg.author.payload(),
            "pinned": msg.pinned,
            "mention_everyone": msg.mention_everyone,
            "tts": msg.tts,
        }
        if msg.webhook_id is not None:
            data["webhook_id"] = str(msg.webhook_id)
        if msg.application_id is not None:
            data["application_id"] = str(msg.application_id)
        if msg.interaction_metadata is not None:
            data["interaction_metadata"] = msg.interaction_metadata
        if msg.interaction_legacy is not None:
            data["interaction"] = msg.interaction_legacy
        if include_nonce and msg.nonce is not None:
            data["nonce"] = msg.nonce
        if msg.position is not None:
            data["position"] = msg.position
        if msg.reactions:
            data["reactions"] = [
                self._reaction_payload(r) for r in msg.reactions.values() if r.user_ids
            ]
        if msg.reference is not None:
            data["message_reference"] = msg.reference
            if with_reference and msg.referenced_id is not None:
                ref = w.messages.get(msg.referenced_id)
                data["referenced_message"] = (
                    None
                    if ref is None or ref.deleted
                    else self.render(
                        ref, content_access=content_access, gateway=gateway, with_reference=False
                    )
                )
        if msg.thread_id is not None and msg.thread_id in w.channels:
            data["thread"] = w.channels[msg.thread_id].payload()
        if gateway and guild is not None:
            data["guild_id"] = str(guild.id)
            member = guild.members.get(msg.author.id)
            if member is not None and msg.webhook_id is None:
                data["member"] = member.payload(with_user=False)
        return data

    def _mention_payload(self, user_id: int, guild: Any, gateway: bool) -> dict[str, Any]:
        data = self.world.users[user_id].payload()
        if gateway and guild is not None and user_id in guild.members:
            data["member"] = guild.members[user_id].payload(with_user=False)
        return data

    def _reaction_payload(self, r: Reaction) -> dict[str, Any]:
        me = self.world.bot_user.id in r.user_ids
        return {
            "emoji": r.emoji,
            "count": len(r.user_ids),
            "count_details": {"burst": 0, "normal": len(r.user_ids)},
            "burst_colors": [],
            "me_burst": False,
            "burst_me": False,
            "me": me,
            "burst_count": 0,
        }

    def for_session(
        self, msg: StoredMessage, *, include_nonce: bool = False
    ) -> Callable[[Session], dict[str, Any]]:
        return lambda s: self.render(
            msg, content_access=s.content_intent, include_nonce=include_nonce, gateway=True
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def create(self, channel: Channel, author: User, **fields: Any) -> StoredMessage:
        """Store a new message and tell the gateway (unless it is ephemeral)."""
        w = self.world
        msg = StoredMessage(
            id=fields.pop("id", None) or w.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            timestamp=w.now(),
            **fields,
        )
        if msg.components:
            assign_component_ids(msg.components)
        w.messages[msg.id] = msg
        if not msg.ephemeral:
            channel.last_message_id = msg.id
            if channel.is_thread:
                msg.position = channel.message_count
                channel.message_count += 1
            # A bot is not told about messages in channels it cannot see.
            if channel.guild_id is None or w.bot_permissions(channel) & VIEW_CHANNEL:
                self.gateway.dispatch(
                    "MESSAGE_CREATE",
                    self.for_session(msg, include_nonce=True),
                    intents=self._message_intent(channel),
                )
        w.notifier.changed()
        return msg

    def updated(self, msg: StoredMessage, *, edited: bool = True) -> None:
        """Call after changing a stored message: stamps it and dispatches MESSAGE_UPDATE."""
        if edited:
            msg.edited_at = self.world.now()
        if msg.components:
            assign_component_ids(msg.components)
        if not msg.ephemeral:
            channel = self.world.channels[msg.channel_id]
            self.gateway.dispatch(
                "MESSAGE_UPDATE", self.for_session(msg), intents=self._message_intent(channel)
            )
        self.world.notifier.changed()

    def delete(self, msg: StoredMessage) -> None:
        msg.deleted = True
        if not msg.ephemeral:
            channel = self.world.channels[msg.channel_id]
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            self.gateway.dispatch("MESSAGE_DELETE", data, intents=self._message_intent(channel))
        self.world.notifier.changed()

    def add_reaction(self, msg: StoredMessage, user: User, emoji: dict[str, Any]) -> bool:
        """Record a reaction; False if this user had already reacted with it."""
        reaction = msg.reactions.setdefault(emoji_key(emoji), Reaction(emoji=emoji))
        if user.id in reaction.user_ids:
            return False
        reaction.user_ids.append(user.id)
        self._dispatch_reaction("MESSAGE_REACTION_ADD", msg, user, emoji)
        return True

    def remove_reaction(self, msg: StoredMessage, user: User, emoji: dict[str, Any]) -> None:
        reaction = msg.reactions.get(emoji_key(emoji))
        if reaction is None or user.id not in reaction.user_ids:
            return
        reaction.user_ids.remove(user.id)
        if not reaction.user_ids:
            del msg.reactions[emoji_key(emoji)]
        self._dispatch_reaction("MESSAGE_REACTION_REMOVE", msg, user, emoji)

    def _dispatch_reaction(
        self, event: str, msg: StoredMessage, user: User, emoji: dict[str, Any]
    ) -> None:
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "type": 0,
            "message_id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "emoji": emoji,
            "burst": False,
        }
        if event == "MESSAGE_REACTION_ADD":
            data.update({"message_author_id": str(msg.author.id), "burst_colors": []})
        intent = INTENT_DIRECT_MESSAGE_REACTIONS
        if msg.guild_id is not None:
            intent = INTENT_GUILD_MESSAGE_REACTIONS
            data["guild_id"] = str(msg.guild_id)
            member = self.world.guilds[msg.guild_id].members.get(user.id)
            if member is not None and event == "MESSAGE_REACTION_ADD":
                data["member"] = member.payload()
        self.gateway.dispatch(event, data, intents=intent)
        self.world.notifier.changed()

    @staticmethod
    def _message_intent(channel: Channel) -> int:
        return INTENT_DIRECT_MESSAGES if channel.type == DM else INTENT_GUILD_MESSAGES

    # -- helpers for building messages -----------------------------------------------------------

    def resolve_mentions(
        self, content: str, allowed: dict[str, Any] | None, replied_author: User | None
    ) -> tuple[list[int], list[int], bool]:
        """Which users/roles/@everyone a message really pings, per ``allowed_mentions``."""
        parse = ["users", "roles", "everyone"] if allowed is None else allowed.get("parse", [])
        allowed_users = set() if allowed is None else {int(u) for u in allowed.get("users", [])}
        allowed_roles = set() if allowed is None else {int(r) for r in allowed.get("roles", [])}
        users: list[int] = []
        for m in re.finditer(r"<@!?(\d+)>", content or ""):
            uid = int(m.group(1))
            if (
                uid in self.world.users
                and ("users" in parse or uid in allowed_users)
                and uid not in users
            ):
                users.append(uid)
        roles = [
            int(m.group(1))
            for m in re.finditer(r"<@&(\d+)>", content or "")
            if "roles" in parse or int(m.group(1)) in allowed_roles
        ]
        everyone = "everyone" in parse and bool(re.search(r"@(everyone|here)", content or ""))
        if replied_author is not None:
            ping = True if allowed is None else allowed.get("replied_user", False)
            if ping and replied_author.id not in users:
                users.append(replied_author.id)
        return users, roles, everyone

    def normalize_embeds(
        self, embeds: list[dict[str, Any]], attachments: list[CdnFile]
    ) -> list[dict[str, Any]]:
        """Fill in ``type`` and resolve ``attachment://name`` URLs like Discord does."""
        by_name = {a.filename: a for a in attachments}
        result = []
        for raw in embeds:
            embed = {"type": "rich", **raw}
            for key in ("image", "thumbnail"):
                part = embed.get(key)
                if isinstance(part, dict) and str(part.get("url", "")).startswith("attachment://"):
                    att = by_name.get(part["url"].removeprefix("attachment://"))
                    if att is not None:
                        embed[key] = {
                            "url": att.url,
                            "proxy_url": self.world.cdn.signed_url(att, "media"),
                            "width": att.width or 0,
                            "height": att.height or 0,
                            "content_type": att.content_type,
                            "placeholder_version": 1,
                            "flags": 0,
                        }
            result.append(embed)
        return result
