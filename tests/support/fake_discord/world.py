"""Registries of everything the fake knows, with lookups that raise Discord's 404 errors."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .cdn import Cdn
from .constants import DM, THREAD_TYPES
from .errors import ApiError
from .models import Channel, Guild, Member, User
from .notifier import Notifier
from .permissions import channel_permissions
from .snowflake import SnowflakeFactory

if TYPE_CHECKING:
    from .messages import StoredMessage


class World:
    def __init__(
        self, *, token: str, application_flags: int, bot_name: str, cdn_url_ttl: float
    ) -> None:
        self.token = token
        self.application_flags = application_flags
        self.ids = SnowflakeFactory()
        self.notifier = Notifier()
        self.cdn = Cdn(self.ids, cdn_url_ttl)
        # What GET /gateway/bot recommends (`shards`); a test of a big bot sets more.
        self.recommended_shards = 1
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, StoredMessage] = {}
        self.application_id = self.ids.next()
        self.bot_user = User(id=self.application_id, username=bot_name, bot=True)
        self.users[self.bot_user.id] = self.bot_user
        self.owner = self.add_user("app-owner")
        # A team-owned application (`set_team`): its owner and members with their roles.
        self.team: dict[str, Any] | None = None
        self.bot_public = True
        self.verify_key = secrets.token_hex(32)

    # -- creation -------------------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False, global_name: str | None = None) -> User:
        user = User(id=self.ids.next(), username=name, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and ``user`` (made on first use)."""
        for ch in self.channels.values():
            if ch.type == DM and ch.recipients and ch.recipients[0].id == user.id:
                return ch
        ch = Channel(id=self.ids.next(), type=DM, name=None, recipients=[user])
        self.channels[ch.id] = ch
        return ch

    # -- lookups (raise ApiError so REST handlers can let them propagate) ------------------

    def guild(self, guild_id: int) -> Guild:
        g = self.guilds.get(guild_id)
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return g

    def channel(self, channel_id: int) -> Channel:
        ch = self.channels.get(channel_id)
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return ch

    def user(self, user_id: int) -> User:
        u = self.users.get(user_id)
        if u is None:
            raise ApiError(404, 10013, "Unknown User")
        return u

    def message(self, channel_id: int, message_id: int) -> StoredMessage:
        msg = self.messages.get(message_id)
        if msg is None or msg.channel_id != channel_id or msg.deleted or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def member(self, guild_id: int, user_id: int) -> Member:
        m = self.guild(guild_id).members.get(user_id)
        if m is None:
            raise ApiError(404, 10007, "Unknown Member")
        return m

    def parent_of(self, channel: Channel) -> Channel | None:
        if channel.type in THREAD_TYPES and channel.parent_id is not None:
            return self.channels.get(channel.parent_id)
        return None

    def permissions(self, channel: Channel | None, user_id: int, guild: Guild | None = None) -> int:
        """Effective permissions of ``user_id`` in ``channel`` (0 if not a member)."""
        if guild is None:
            if channel is None or channel.guild_id is None:
                return 0
            guild = self.guilds[channel.guild_id]
        member = guild.members.get(user_id)
        if member is None:
            return 0
        parent = self.parent_of(channel) if channel is not None else None
        return channel_permissions(guild, channel, member, parent)

    def bot_permissions(self, channel: Channel) -> int:
        return self.permissions(channel, self.bot_user.id)

    def set_team(
        self, name: str, owner: User, members: Sequence[tuple[User, str]] = ()
    ) -> dict[str, Any]:
        """Make the application team-owned, as Discord shows it: `team` with `owner_user_id` and
        `members[]` (`user`, `role` admin/developer/read_only, `membership_state` 2 = accepted),
        and `owner` a synthetic team user, as Discord sends for team applications."""
        team_id = self.ids.next()
        rows = [(owner, "admin"), *members]
        self.team = {
            "id": str(team_id),
            "name": name,
            "icon": None,
            "owner_user_id": str(owner.id),
            "members": [
                {
                    "user": user.payload(),
                    "team_id": str(team_id),
                    "membership_state": 2,
                    "permissions": ["*"],
                    "role": role,
                }
                for user, role in rows
            ],
        }
        return self.team

    def application_payload(self) -> dict[str, Any]:
        """``GET /applications/@me`` and ``/oauth2/applications/@me``."""
        owner = self.owner.payload()
        if self.team is not None:
            # Discord's owner of a team application is a placeholder user named after the team.
            owner = {
                "id": self.team["id"],
                "username": f"team{self.team['id']}",
                "discriminator": "0000",
                "global_name": None,
                "avatar": None,
                "flags": 1024,
            }
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": self.bot_public,
            "bot_require_code_grant": False,
            "verify_key": self.verify_key,
            "flags": self.application_flags,
            "owner": owner,
            "team": self.team,
            "bot": self.bot_user.payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "event_webhooks_url": None,
            "event_webhooks_status": 1,
            "tags": [],
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
            "integration_types_config": {"0": {}, "1": {}},
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "is_monetized": False,
            "is_verified": False,
            "is_discoverable": False,
            "rpc_origins": [],
        }

    @staticmethod
    def now() -> float:
        return time.time()
