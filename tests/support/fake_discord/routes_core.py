"""REST routes for the gateway URL, users, the application, commands, guilds and channels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .constants import GATEWAY_GUILD_MEMBERS, GATEWAY_GUILD_MEMBERS_LIMITED, VIEW_CHANNEL
from .errors import ApiError, missing_access
from .models import Guild
from .rest_common import json_response, no_content, read_body

if TYPE_CHECKING:
    from .server import FakeDiscord


def _int(request: web.Request, key: str) -> int:
    value = request.match_info[key]
    if not value.isdigit():
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {
                key: {
                    "_errors": [
                        {
                            "code": "NUMBER_TYPE_COERCE",
                            "message": f'Value "{value}" is not snowflake.',
                        }
                    ]
                }
            },
        )
    return int(value)


class CoreRoutes:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd
        self.w = fd.world

    def register(self, router: web.UrlDispatcher, prefix: str) -> None:
        add = router.add_route
        add("GET", prefix + "/gateway", self.gateway)
        add("GET", prefix + "/gateway/bot", self.gateway_bot)
        add("GET", prefix + "/users/@me", self.me)
        add("GET", prefix + "/users/{user_id}", self.get_user)
        add("POST", prefix + "/users/@me/channels", self.create_dm)
        add("GET", prefix + "/applications/@me", self.application)
        add("GET", prefix + "/oauth2/applications/@me", self.application)
        for scope in ("", "/guilds/{guild_id}"):
            base = prefix + "/applications/{app_id}" + scope + "/commands"
            add("GET", base, self.list_commands)
            add("PUT", base, self.bulk_overwrite)
            add("POST", base, self.create_command)
            add("GET", base + "/{command_id}", self.get_command)
            add("PATCH", base + "/{command_id}", self.edit_command)
            add("DELETE", base + "/{command_id}", self.delete_command)
        add("GET", prefix + "/guilds/{guild_id}", self.get_guild)
        add("GET", prefix + "/guilds/{guild_id}/channels", self.guild_channels)
        add("GET", prefix + "/guilds/{guild_id}/roles", self.guild_roles)
        add("GET", prefix + "/guilds/{guild_id}/members", self.list_members)
        add("GET", prefix + "/guilds/{guild_id}/members/{user_id}", self.get_member)
        add("GET", prefix + "/guilds/{guild_id}/threads/active", self.active_threads)
        add("GET", prefix + "/channels/{channel_id}", self.get_channel)
        add("PUT", prefix + "/channels/{channel_id}/thread-members/@me", self.join_thread)
        add("POST", prefix + "/channels/{channel_id}/typing", self.typing)
        add("POST", prefix + "/attachments/refresh-urls", self.refresh_urls)

    # -- gateway and identity ---------------------------------------------------------------------

    async def gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.fd.gateway_url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self.fd.gateway_url,
                "shards": self.fd.world.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14400000,
                    "max_concurrency": 1,
                },
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        data = self.w.bot_user.payload()
        data.update(
            {
                "verified": True,
                "mfa_enabled": False,
                "email": None,
                "bot": True,
                "locale": "en-US",
                "premium_type": 0,
            }
        )
        return json_response(data)

    async def get_user(self, request: web.Request) -> web.Response:
        return json_response(self.w.user(_int(request, "user_id")).payload())

    async def create_dm(self, request: web.Request) -> web.Response:
        body, _ = await read_body(request)
        try:
            user = self.w.user(int(body["recipient_id"]))
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, 50035, "Invalid Form Body") from None
        channel = self.w.dm_channel(user)
        return json_response(channel.payload())

    async def application(self, request: web.Request) -> web.Response:
        return json_response(self.w.application_payload())

    # -- application commands ---------------------------------------------------------------------

    def _scope(self, request: web.Request) -> int | None:
        if _int(request, "app_id") != self.w.application_id:
            raise missing_access()
        if "guild_id" not in request.match_info:
            return None
        guild = self.w.guild(_int(request, "guild_id"))
        if self.w.bot_user.id not in guild.members:
            raise missing_access()
        return guild.id

    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.fd.command_registry.list(self._scope(request)))

    async def bulk_overwrite(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body, _ = await read_body(request)
        commands = body.get("__list__")
        if not isinstance(commands, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        return json_response(self.fd.command_registry.bulk_overwrite(scope, commands))

    async def create_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body, _ = await read_body(request)
        cmd, created = self.fd.command_registry.upsert(scope, body)
        return json_response(cmd, 201 if created else 200)

    def _find(self, request: web.Request) -> tuple[int | None, dict[str, Any]]:
        scope = self._scope(request)
        cid = request.match_info["command_id"]
        for c in self.fd.command_registry.list(scope):
            if c["id"] == cid:
                return scope, c
        raise ApiError(404, 10063, "Unknown application command")

    async def get_command(self, request: web.Request) -> web.Response:
        return json_response(self._find(request)[1])

    async def edit_command(self, request: web.Request) -> web.Response:
        scope, cmd = self._find(request)
        body, _ = await read_body(request)
        updated, _ = self.fd.command_registry.upsert(scope, {**cmd, **body})
        return json_response(updated)

    async def delete_command(self, request: web.Request) -> web.Response:
        scope, cmd = self._find(request)
        self.fd.command_registry.delete(scope, cmd["id"])
        return no_content()

    # -- guilds and channels --------------------------------------------------------------------

    def _guild(self, request: web.Request) -> Guild:
        guild = self.w.guild(_int(request, "guild_id"))
        if self.w.bot_user.id not in guild.members:
            raise missing_access()
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        data = guild.payload()
        if request.query.get("with_counts") in ("true", "1", "True"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        channels = [self.w.channels[c] for c in guild.channel_ids]
        return json_response([c.payload() for c in channels if not c.is_thread])

    async def guild_roles(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response([r.payload() for r in guild.roles.values()])

    async def list_members(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if not self.w.application_flags & (GATEWAY_GUILD_MEMBERS | GATEWAY_GUILD_MEMBERS_LIMITED):
            raise missing_access()
        limit = int(request.query.get("limit", "1"))
        after = int(request.query.get("after", "0"))
        members = sorted(
            (m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id
        )
        return json_response([m.payload() for m in members[:limit]])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response(self.w.member(guild.id, _int(request, "user_id")).payload())

    async def active_threads(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        threads = [
            self.w.channels[c]
            for c in guild.channel_ids
            if self.w.channels[c].is_thread and not self.w.channels[c].archived
        ]
        return json_response({"threads": [t.payload() for t in threads], "members": []})

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self.w.channel(_int(request, "channel_id"))
        if channel.guild_id is not None and not self.w.bot_permissions(channel) & VIEW_CHANNEL:
            raise missing_access()
        return json_response(channel.payload())

    async def join_thread(self, request: web.Request) -> web.Response:
        channel = self.w.channel(_int(request, "channel_id"))
        if not channel.is_thread:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if self.w.bot_user.id not in channel.member_ids:
            channel.member_ids.append(self.w.bot_user.id)
        return no_content()

    async def typing(self, request: web.Request) -> web.Response:
        self.w.channel(_int(request, "channel_id"))
        self.fd.typing_count += 1
        return no_content()

    # -- attachments ------------------------------------------------------------------------------

    async def refresh_urls(self, request: web.Request) -> web.Response:
        """``POST /attachments/refresh-urls`` ``{"attachment_urls": [...]}`` (1-50 URLs) ->
        ``{"refreshed_urls": [{"original": url, "refreshed": url}, ...]}``."""
        body, _ = await read_body(request)
        urls = body.get("attachment_urls")
        if (
            not isinstance(urls, list)
            or not 1 <= len(urls) <= 50
            or not all(isinstance(u, str) for u in urls)
        ):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "attachment_urls": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_BAD_LENGTH",
                                "message": "Must be between 1 and 50 in length.",
                            }
                        ]
                    }
                },
            )
        self.fd.refresh_requests.append(list(urls))
        cdn = self.w.cdn
        return json_response(
            {"refreshed_urls": [{"original": u, "refreshed": cdn.refresh(u)} for u in urls]}
        )
