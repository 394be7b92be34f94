"""The fake's world: users, guilds, roles, channels and members, and their API payloads."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from .constants import DM, GUILD_TEXT, MAX_REQUEST_SIZE, THREAD_TYPES, UPLOAD_LIMIT_BY_TIER


def iso(ts: float) -> str:
    """An ISO 8601 timestamp as Discord writes them."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


def snowflake_of(obj: Any) -> int:
    """The id of a model, a payload dict, a discord.py object or a plain id."""
    if isinstance(obj, int):
        return obj
    if isinstance(obj, str):
        return int(obj)
    if isinstance(obj, dict):
        return int(obj["id"])
    return int(obj.id)


@dataclass
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    # The language of the user's Discord client: sent as an interaction's `locale`, not in the user.
    locale: str = "en-US"
    # False: the user closed their DMs (privacy settings) or blocked the bot; the DM channel can
    # still be opened, but sending there gets 403 / 50007.
    accepts_dms: bool = True

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "avatar": self.avatar,
            "discriminator": "0",
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "global_name": self.global_name,
            "avatar_decoration_data": None,
            "collectibles": None,
            "banner_color": None,
            "clan": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data

    @property
    def name(self) -> str:
        return self.username

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None
    color: int = 0
    hoist: bool = False
    mentionable: bool = False

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": self.hoist,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass
class Channel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    last_message_id: int | None = None
    rate_limit_per_user: int = 0
    recipients: list[User] = field(default_factory=list)  # DMs
    # Threads only.
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    created_at: float = 0.0
    message_count: int = 0
    member_ids: list[int] = field(default_factory=list)
    invitable: bool = True

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self, *, with_guild_id: bool = True) -> dict[str, Any]:
        if self.type == DM:
            return {
                "id": str(self.id),
                "type": DM,
                "last_message_id": _opt(self.last_message_id),
                "flags": 0,
                "recipients": [u.payload() for u in self.recipients],
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "parent_id": _opt(self.parent_id),
            "last_message_id": _opt(self.last_message_id),
            "rate_limit_per_user": self.rate_limit_per_user,
            "flags": 0,
        }
        if with_guild_id and self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.is_thread:
            data.update(
                {
                    "owner_id": _opt(self.owner_id),
                    "message_count": self.message_count,
                    "total_message_sent": self.message_count,
                    "member_count": len(self.member_ids),
                    "member_ids_preview": [str(i) for i in self.member_ids[:8]],
                    "thread_metadata": {
                        "archived": self.archived,
                        "archive_timestamp": iso(self.created_at),
                        "auto_archive_duration": self.auto_archive_duration,
                        "locked": self.locked,
                        "create_timestamp": iso(self.created_at),
                        **({"invitable": self.invitable} if self.type == 12 else {}),
                    },
                }
            )
        else:
            data.update(
                {
                    "position": self.position,
                    "permission_overwrites": [o.payload() for o in self.overwrites.values()],
                    "topic": self.topic,
                    "nsfw": self.nsfw,
                    "icon_emoji": None,
                    "theme_color": None,
                }
            )
            if self.type == GUILD_TEXT:
                data["default_thread_rate_limit_per_user"] = 0
        return data


@dataclass
class Member:
    user: User
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: float = 0.0

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "deaf": False,
            "flags": 0,
            "joined_at": iso(self.joined_at),
            "mute": False,
            "nick": self.nick,
            "pending": False,
            "premium_since": None,
            "roles": [str(r) for r in self.roles],
            "unusual_dm_activity_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    upload_limit_override: int | None = None
    request_limit_override: int | None = None
    features: list[str] = field(default_factory=list)
    locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    created_at: float = 0.0
    bot_deny: int = 0  # bits set_bot_permissions() denies the bot guild-wide

    @property
    def upload_limit(self) -> int:
        """Largest file the server accepts here, in bytes."""
        if self.upload_limit_override is not None:
            return self.upload_limit_override
        return UPLOAD_LIMIT_BY_TIER[self.premium_tier]

    @property
    def request_limit(self) -> int:
        """Largest message request (all its files and its JSON) the server accepts, in bytes."""
        if self.request_limit_override is not None:
            return self.request_limit_override
        return max(MAX_REQUEST_SIZE, self.upload_limit)

    @property
    def everyone_role(self) -> Role:
        return self.roles[self.id]

    def payload(self) -> dict[str, Any]:
        """The guild object of ``GET /guilds/{id}`` (no channels or members)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": list(self.features),
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_presences": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": [0, 2, 7, 14][self.premium_tier],
            "preferred_locale": self.locale,
            "public_updates_channel_id": None,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
            "incidents_data": None,
            "home_header": None,
            "hub_type": None,
            "latest_onboarding_question_id": None,
            "inventory_settings": None,
        }


def _opt(value: int | None) -> str | None:
    return None if value is None else str(value)
