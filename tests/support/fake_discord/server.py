"""FakeDiscord: the loopback Discord (REST v10 + gateway + CDN) and the test-facing API."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from .cdn import CdnFile
from .commands import CommandRegistry
from .constants import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    GUILD_TEXT,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILDS,
    MSG_REPLY,
    PUBLIC_THREAD,
)
from .gateway import Gateway
from .holds import Hold
from .interaction_builder import InteractionBuilder
from .interaction_handle import FakeInteraction, InteractionRegistry
from .interaction_responder import InteractionResponder
from .messages import MessageService, StoredMessage
from .models import Channel, Guild, Member, Overwrite, Role, User, snowflake_of
from .permissions import as_bits
from .ratelimits import GENEROUS_RATE_LIMITS, RateLimiter, RateLimits
from .rest_common import API_PREFIX, InjectedFailure, RequestRecord, make_middleware
from .routes_core import CoreRoutes
from .routes_interactions import InteractionRoutes
from .routes_messages import MessageRoutes, parse_emoji
from .world import World


class FakeDiscord:
    """A Discord that lives on 127.0.0.1 inside the test process. See the package docstring."""

    def __init__(
        self,
        token: str = "Bot-token-123",
        application_flags: int = 0,
        *,
        bot_name: str = "WanBot",
        heartbeat_interval_ms: int = 41250,
        interaction_ack_timeout: float = 3.0,
        interaction_token_ttl: float = 900.0,
        cdn_url_ttl: float = 86400.0,
        host: str = "127.0.0.1",
        rate_limits: RateLimits = GENEROUS_RATE_LIMITS,
    ) -> None:
        self.world = World(
            token=token,
            application_flags=application_flags,
            bot_name=bot_name,
            cdn_url_ttl=cdn_url_ttl,
        )
        self.gateway = Gateway(self.world, heartbeat_interval_ms=heartbeat_interval_ms)
        self.message_service = MessageService(self.world, self.gateway)
        self.command_registry = CommandRegistry(self.world)
        # The URL lists of every POST /attachments/refresh-urls, in order.
        self.refresh_requests: list[list[str]] = []
        self.interaction_registry = InteractionRegistry(
            self.world, self.message_service, token_ttl=interaction_token_ttl
        )
        self.interaction_builder = InteractionBuilder(
            self.interaction_registry, self.command_registry, self.gateway
        )
        self.interaction_responder = InteractionResponder(
            self.interaction_registry,
            ack_timeout=interaction_ack_timeout,
        )
        self.host = host
        self.port = 0
        self.request_log: list[RequestRecord] = []
        self.unknown_routes: list[str] = []
        self.failures: list[InjectedFailure] = []
        self.rate_limiter = RateLimiter(rate_limits)
        self.nonce_dedup_count = 0
        # A guild's cap on active threads; past it thread creation answers 400/160006.
        self.max_active_threads = 1000
        self.typing_count = 0
        self.holds: list[Hold] = []
        # Members whose DMs are closed to the bot (see `close_dms`).
        self._message_routes: MessageRoutes | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        app = web.Application(
            client_max_size=512 * 1024 * 1024,
            middlewares=[
                make_middleware(
                    token=lambda: self.world.token,
                    records=self.request_log,
                    failures=self.failures,
                    unknown=self.unknown_routes,
                    changed=self.world.notifier.changed,
                    limiter=lambda: self.rate_limiter,
                    holds=self.holds,
                )
            ],
        )
        CoreRoutes(self).register(app.router, API_PREFIX)
        self._message_routes = MessageRoutes(self)
        self._message_routes.register(app.router, API_PREFIX)
        InteractionRoutes(self).register(app.router, API_PREFIX)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/cdn/{path:.+}", self.world.cdn.handle)
        app.router.add_get("/media/{path:.+}", self.world.cdn.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://{self.host}:{self.port}"
        self.world.cdn.base = base
        self.gateway.url = self.gateway_url
        return self

    async def close(self) -> None:
        for h in self.holds:  # a test that failed mid-hold must not keep the server from stopping
            h.release(fail=(503, {"message": "fake Discord is shutting down", "code": 0}))
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- addresses and identity ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` should be set to."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def cdn_base(self) -> str:
        return self.base_url + "/cdn"

    @property
    def token(self) -> str:
        return self.world.token

    @property
    def bot_user(self) -> User:
        return self.world.bot_user

    @property
    def application_id(self) -> int:
        return self.world.application_id

    # -- building the world ------------------------------------------------------------------------

    def add_user(
        self, name: str = "alice", *, bot: bool = False, global_name: str | None = None
    ) -> User:
        return self.world.add_user(name, bot=bot, global_name=global_name)

    def set_team(
        self, name: str, owner: User, members: Sequence[tuple[User, str]] = ()
    ) -> dict[str, Any]:
        """Make the application team-owned (`members`: (user, "admin"|"developer"|"read_only"))."""
        return self.world.set_team(name, owner, members)

    def add_guild(
        self,
        name: str = "Test",
        *,
        owner: User | None = None,
        owner_id: int | None = None,
        premium_tier: int = 0,
        upload_limit: int | None = None,
        request_limit: int | None = None,
        features: Sequence[str] = (),
        bot_permissions: Any = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: Any = DEFAULT_EVERYONE_PERMISSIONS,
        with_bot: bool = True,
        locale: str = "en-US",
    ) -> Guild:
        """A server (with @everyone, the bot's managed role and the bot as member unless
        ``with_bot=False``). ``upload_limit`` overrides the premium tier's per-file limit and
        ``request_limit`` the per-request one (25 MiB), in bytes; see constants.py for Discord's
        documented rules."""
        w = self.world
        if owner is None:
            owner = w.users[owner_id] if owner_id is not None else self.add_user(f"{name}-owner")
        guild = Guild(
            id=w.ids.next(),
            name=name,
            owner_id=owner.id,
            premium_tier=premium_tier,
            upload_limit_override=upload_limit,
            request_limit_override=request_limit,
            features=list(features),
            locale=locale,
            created_at=w.now(),
        )
        guild.roles[guild.id] = Role(
            id=guild.id,
            guild_id=guild.id,
            name="@everyone",
            permissions=as_bits(everyone_permissions),
        )
        w.guilds[guild.id] = guild
        guild.members[owner.id] = Member(user=owner, guild_id=guild.id, joined_at=w.now())
        if with_bot:
            self.add_bot_to_guild(guild, permissions=bot_permissions)
        return guild

    def add_bot_to_guild(
        self, guild: Guild, *, permissions: Any = DEFAULT_BOT_PERMISSIONS
    ) -> Member:
        """Invite the bot (dispatches GUILD_CREATE if it is connected)."""
        w = self.world
        role = Role(
            id=w.ids.next(),
            guild_id=guild.id,
            name=w.bot_user.username,
            permissions=as_bits(permissions),
            position=1,
            managed=True,
            bot_id=w.bot_user.id,
        )
        guild.roles[role.id] = role
        member = Member(user=w.bot_user, guild_id=guild.id, roles=[role.id], joined_at=w.now())
        guild.members[w.bot_user.id] = member
        self.gateway.dispatch(
            "GUILD_CREATE",
            lambda s: self.gateway.guild_create_payload(guild, s, joined=True),
            intents=INTENT_GUILDS,
        )
        w.notifier.changed()
        return member

    def add_role(self, guild: Guild, name: str, permissions: Any = 0) -> Role:
        w = self.world
        role = Role(
            id=w.ids.next(),
            guild_id=guild.id,
            name=name,
            permissions=as_bits(permissions),
            position=len(guild.roles),
        )
        guild.roles[role.id] = role
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild.id), "role": role.payload()},
            intents=INTENT_GUILDS,
        )
        return role

    def add_member(
        self,
        guild: Guild,
        user: User,
        *,
        permissions: Any = None,
        roles: Iterable[Role | int] = (),
        nick: str | None = None,
    ) -> Member:
        """Make ``user`` a member; ``permissions`` gives them a role of their own with those."""
        w = self.world
        role_ids = [snowflake_of(r) for r in roles]
        if permissions is not None:
            role_ids.append(self.add_role(guild, f"{user.username}-role", permissions).id)
        member = Member(user=user, guild_id=guild.id, roles=role_ids, nick=nick, joined_at=w.now())
        guild.members[user.id] = member
        data = member.payload()
        data["guild_id"] = str(guild.id)
        self.gateway.dispatch("GUILD_MEMBER_ADD", data, intents=INTENT_GUILD_MEMBERS)
        w.notifier.changed()
        return member

    def add_text_channel(
        self,
        guild: Guild,
        name: str = "general",
        *,
        topic: str | None = None,
        nsfw: bool = False,
        parent_id: int | None = None,
    ) -> Channel:
        w = self.world
        channel = Channel(
            id=w.ids.next(),
            type=GUILD_TEXT,
            name=name,
            guild_id=guild.id,
            position=len(guild.channel_ids),
            topic=topic,
            nsfw=nsfw,
            parent_id=parent_id,
        )
        if guild.bot_deny:
            channel.overwrites[w.bot_user.id] = Overwrite(
                id=w.bot_user.id, type=1, deny=guild.bot_deny
            )
        w.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        self.gateway.dispatch("CHANNEL_CREATE", channel.payload(), intents=INTENT_GUILDS)
        w.notifier.changed()
        return channel

    def add_thread(
        self, channel: Channel, name: str, *, owner: User, type: int = PUBLIC_THREAD
    ) -> Channel:
        """A thread someone else started (without a starter message)."""
        return self.create_thread_channel(channel, name, owner=owner, type=type)

    def create_thread_channel(
        self,
        parent: Channel,
        name: str,
        *,
        owner: User,
        thread_id: int | None = None,
        type: int = PUBLIC_THREAD,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
        invitable: bool = True,
    ) -> Channel:
        w = self.world
        assert parent.guild_id is not None
        thread = Channel(
            id=thread_id or w.ids.next(),
            type=type,
            name=name,
            guild_id=parent.guild_id,
            parent_id=parent.id,
            owner_id=owner.id,
            created_at=w.now(),
            auto_archive_duration=auto_archive_duration,
            rate_limit_per_user=rate_limit_per_user,
            member_ids=[owner.id],
            invitable=invitable,
        )
        w.channels[thread.id] = thread
        w.guilds[parent.guild_id].channel_ids.append(thread.id)

        def payload(session: Any) -> dict[str, Any]:
            data = thread.payload()
            data["newly_created"] = True
            if owner.id == w.bot_user.id:
                data["member"] = {
                    "id": str(thread.id),
                    "user_id": str(owner.id),
                    "join_timestamp": data["thread_metadata"]["create_timestamp"],
                    "flags": 1,
                }
            return data

        self.gateway.dispatch("THREAD_CREATE", payload, intents=INTENT_GUILDS)
        w.notifier.changed()
        return thread

    def dm_channel(self, user: User) -> Channel:
        return self.world.dm_channel(user)

    def close_dms(self, user: User) -> None:
        """The user closes their DMs to the bot (privacy settings, or blocking it): the bot's
        messages to them get 403 / 50007 Cannot send messages to this user, as on Discord;
        opening the DM channel still works."""
        user.accepts_dms = False

    def open_dms(self, user: User) -> None:
        user.accepts_dms = True

    def set_interaction_token_expired(self, ix: FakeInteraction) -> None:
        """Kill the interaction's webhook token now, before its time (follow-ups and edits get
        401 / 50027), as when Discord drops it early: the bot's own reckoning still thinks it lives."""
        ix.token_expires_at = self.world.now()

    def set_bot_permissions(
        self, guild: Guild, channel: Channel | None = None, *, allow: Any = 0, deny: Any = 0
    ) -> None:
        """Change what the bot may do, the way a server admin would.

        With ``channel`` (a thread means its parent): set the bot's member overwrite there.
        Without: the bot's role gains ``allow`` and loses ``deny``; since @everyone may still
        grant denied bits, every channel (also ones added later) gets a member overwrite
        denying them too. discord.py's cache sees the same changes (GUILD_ROLE_UPDATE,
        CHANNEL_UPDATE)."""
        w = self.world
        allow_bits, deny_bits = as_bits(allow), as_bits(deny)
        if channel is not None:
            target = w.parent_of(channel) or channel
            self._set_bot_overwrite(target, allow_bits, deny_bits)
            w.notifier.changed()
            return
        member = guild.members[w.bot_user.id]
        role = next(guild.roles[r] for r in member.roles if guild.roles[r].managed)
        role.permissions = (role.permissions | allow_bits) & ~deny_bits
        guild.bot_deny = (guild.bot_deny | deny_bits) & ~allow_bits
        self.gateway.dispatch(
            "GUILD_ROLE_UPDATE",
            {"guild_id": str(guild.id), "role": role.payload()},
            intents=INTENT_GUILDS,
        )
        for cid in guild.channel_ids:
            ch = w.channels[cid]
            if not ch.is_thread:
                old = ch.overwrites.get(w.bot_user.id)
                self._set_bot_overwrite(
                    ch,
                    (old.allow if old else 0) & ~deny_bits,
                    ((old.deny if old else 0) | deny_bits) & ~allow_bits,
                )
        w.notifier.changed()

    def _set_bot_overwrite(self, channel: Channel, allow: int, deny: int) -> None:
        bot_id = self.world.bot_user.id
        if allow or deny:
            channel.overwrites[bot_id] = Overwrite(id=bot_id, type=1, allow=allow, deny=deny)
        else:
            channel.overwrites.pop(bot_id, None)
        self.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), intents=INTENT_GUILDS)

    def add_cdn_file(
        self,
        data: bytes,
        filename: str = "image.png",
        content_type: str | None = None,
        *,
        description: str | None = None,
        stalls: bool = False,
    ) -> CdnFile:
        """A file a user could upload; use it in ``attachments=`` or an attachment option. With
        ``stalls`` its download never finishes (see `CdnFile.stalls`)."""
        f = self.world.cdn.store(
            data, filename, content_type, folder="attachments/0", description=description
        )
        f.stalls = stalls
        return f

    def forget_cdn_file(self, f: CdnFile) -> None:
        """Remove a file from the CDN, as Discord does some time after its message is deleted."""
        self.world.cdn.forget(f)

    def advance_cdn_clock(self, seconds: float) -> None:
        """Move the CDN's clock: URLs signed before now expire as they would after that time."""
        self.world.cdn.clock_offset += seconds

    @property
    def rate_limits(self) -> RateLimits:
        """The reaction and message-edit limits in force (see ratelimits.py); settable."""
        return self.rate_limiter.limits

    @rate_limits.setter
    def rate_limits(self, limits: RateLimits) -> None:
        self.rate_limiter.limits = limits

    @property
    def interaction_token_ttl(self) -> float:
        """Seconds the tokens of interactions created from now on live (Discord: 900). After
        that every webhook call with the token gets 401 / 50027 Invalid Webhook Token. A test
        may set a short value; the interaction's id is dated to match (see InteractionRegistry),
        so the client's ``Interaction.expires_at`` agrees with the fake."""
        return self.interaction_registry.token_ttl

    @interaction_token_ttl.setter
    def interaction_token_ttl(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a token must live for some time")
        self.interaction_registry.token_ttl = seconds

    def inject_failure(
        self,
        method: str,
        path_pattern: str,
        status: int = 500,
        body: dict[str, Any] | None = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` API requests matching ``method`` ("*" = any) and the regex
        ``path_pattern`` (searched in the path relative to the API base) with this error."""
        hdrs = dict(headers or {})
        if status == 429:
            hdrs.setdefault("Via", "1.1 google")  # discord.py treats a 429 without it as a ban
            body = body or {
                "message": "You are being rate limited.",
                "retry_after": 0.05,
                "global": False,
            }
        self.failures.append(
            InjectedFailure(
                method.upper(),
                re.compile(path_pattern),
                status,
                body or {"message": "500: Internal Server Error", "code": 0},
                times,
                hdrs,
            )
        )

    def hold(
        self,
        method: str,
        path_pattern: str,
        *,
        times: int = 1,
        body_contains: bytes | str | None = None,
        after_handling: bool = False,
    ) -> Hold:
        """Park the next ``times`` requests matching ``method`` and the regex ``path_pattern``
        (relative to the API base; CDN downloads are ``/cdn/attachments/...``), and with
        ``body_contains`` in their JSON body if given, until ``hold.release()``; with
        ``after_handling`` the request is carried out and only its answer waits. Imitates a slow
        Discord or CDN, on the test's cue instead of a timer."""
        needle = body_contains.encode() if isinstance(body_contains, str) else body_contains
        h = Hold(method.upper(), re.compile(path_pattern), times, needle, after_handling)
        self.holds.append(h)
        return h

    def forget_nonces(self) -> None:
        """Let Discord's nonce window pass: it checks ``enforce_nonce`` only against the last few
        minutes, so a message re-sent later with the same nonce is posted again."""
        if self._message_routes is not None:
            self._message_routes.nonces.clear()

    def delete_channel(self, channel: Channel) -> None:
        """A moderator deletes a text channel: it and its threads (and their messages) are gone;
        Discord then answers 404 / 10003 Unknown Channel and sends CHANNEL_DELETE and THREAD_DELETE."""
        w = self.world
        threads = [c for c in w.channels.values() if c.is_thread and c.parent_id == channel.id]
        for gone in [*threads, channel]:
            w.channels.pop(gone.id, None)
            if gone.guild_id is not None:
                ids = w.guilds[gone.guild_id].channel_ids
                if gone.id in ids:
                    ids.remove(gone.id)
            for msg in w.messages.values():
                if msg.channel_id == gone.id:
                    msg.deleted = True
        for thread in threads:
            self.gateway.dispatch(
                "THREAD_DELETE",
                {
                    "id": str(thread.id),
                    "guild_id": str(thread.guild_id),
                    "parent_id": str(channel.id),
                    "type": thread.type,
                },
                intents=INTENT_GUILDS,
            )
        self.gateway.dispatch("CHANNEL_DELETE", channel.payload(), intents=INTENT_GUILDS)
        w.notifier.changed()

    # -- users acting ------------------------------------------------------------------------------

    def _stored(self, message: Any) -> StoredMessage:
        msg = self.world.messages.get(snowflake_of(message))
        if msg is None:
            raise KeyError(f"unknown message {message!r}")
        return msg

    async def post_user_message(
        self,
        channel: Channel | int,
        user: User,
        content: str = "",
        *,
        attachments: Iterable[CdnFile | tuple[str, bytes]] = (),
        reference: Any = None,
        mentions: Iterable[User] = (),
        ping_reply: bool = True,
        embeds: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A user posts a message (dispatched as MESSAGE_CREATE). ``reference`` makes it a reply,
        which pings the replied-to author unless ``ping_reply=False``. Returns the full message."""
        w, svc = self.world, self.message_service
        ch = w.channel(snowflake_of(channel))
        if ch.guild_id is not None and user.id not in w.guilds[ch.guild_id].members:
            raise ValueError(f"{user.username} is not a member of the channel's guild")
        files = []
        for item in attachments:
            if isinstance(item, CdnFile):
                files.append(w.cdn.copy(item, f"attachments/{ch.id}"))
            else:
                fname, data = item
                files.append(w.cdn.store(data, fname, folder=f"attachments/{ch.id}"))
        mention_ids = [u.id for u in mentions]
        mention_ids += [
            int(m)
            for m in re.findall(r"<@!?(\d+)>", content)
            if int(m) in w.users and int(m) not in mention_ids
        ]
        ref_payload, referenced = None, None
        if reference is not None:
            referenced = self._stored(reference)
            ref_payload = {
                "type": 0,
                "channel_id": str(referenced.channel_id),
                "message_id": str(referenced.id),
            }
            if referenced.guild_id:
                ref_payload["guild_id"] = str(referenced.guild_id)
            if ping_reply and referenced.author.id not in mention_ids:
                mention_ids.append(referenced.author.id)
        msg = svc.create(
            ch,
            user,
            content=content,
            attachments=files,
            embeds=embeds or [],
            mention_ids=mention_ids,
            reference=ref_payload,
            referenced_id=referenced.id if referenced else None,
            type=MSG_REPLY if referenced else 0,
        )
        await self.gateway.flush()
        return svc.render(msg)

    async def add_user_reaction(self, message: Any, user: User, emoji: str) -> None:
        self.message_service.add_reaction(self._stored(message), user, parse_emoji(emoji))
        await self.gateway.flush()

    async def delete_user_message(self, message: Any) -> None:
        self.message_service.delete(self._stored(message))
        await self.gateway.flush()

    # -- interactions --------------------------------------------------------------------------------

    def _channel(self, channel: Any) -> Channel:
        return self.world.channel(snowflake_of(channel))

    async def slash(
        self,
        guild: Guild | None,
        channel: Any,
        user: User,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """``/name`` with ``options`` typed per the registered schema; ``subcommand`` is
        ``"sub"`` or ``"group sub"``. Attachments: pass a CdnFile from add_cdn_file()."""
        ch = self._channel(channel)
        if guild is not None and ch.guild_id != guild.id:
            raise ValueError("channel is not in that guild")
        return await self.interaction_builder.slash(ch, user, name, options or {}, subcommand)

    async def context_menu(
        self,
        guild: Guild | None,
        channel: Any,
        user: User,
        name: str,
        *,
        target_message: Any = None,
        target_user: User | None = None,
    ) -> FakeInteraction:
        ch = self._channel(channel)
        target = self._stored(target_message) if target_message is not None else None
        if target is None and target_user is None:
            raise ValueError("pass target_message= or target_user=")
        return await self.interaction_builder.context_menu(
            ch, user, name, target_message=target, target_user=target_user
        )

    async def click(
        self,
        channel: Any,
        user: User,
        message: Any,
        custom_id: str,
        *,
        values: list[str] | None = None,
    ) -> FakeInteraction:
        """Press a button (or pick ``values`` in a select) on ``message``."""
        return await self.interaction_builder.click(
            self._channel(channel), user, self._stored(message), custom_id, values
        )

    async def submit_modal(
        self, channel: Any, user: User, custom_id: str, values: dict[str, Any], message: Any = None
    ) -> FakeInteraction:
        """Submit a modal the bot showed, with ``{field_custom_id: value}``."""
        msg = self._stored(message) if message is not None else None
        return await self.interaction_builder.submit_modal(
            self._channel(channel), user, custom_id, values, msg
        )

    # -- reading back ---------------------------------------------------------------------------------

    def messages(self, channel: Any) -> list[dict[str, Any]]:
        """Live (not deleted, not ephemeral) messages of a channel or thread, oldest first."""
        cid = snowflake_of(channel)
        # world.messages is in creation order, which is id order.
        return [
            self.message_service.render(m)
            for m in self.world.messages.values()
            if m.channel_id == cid and not m.deleted and not m.ephemeral
        ]

    def message(self, message_id: Any) -> dict[str, Any] | None:
        msg = self.world.messages.get(snowflake_of(message_id))
        return None if msg is None or msg.deleted else self.message_service.render(msg)

    @property
    def threads(self) -> list[Channel]:
        return [c for c in self.world.channels.values() if c.is_thread]

    def reactions(self, message: Any, user: User | None = None) -> list[str]:
        """Emoji on a message (``name:id`` for custom ones); only ``user``'s if given."""
        msg = self._stored(message)
        return [
            key
            for key, r in msg.reactions.items()
            if r.user_ids and (user is None or user.id in r.user_ids)
        ]

    def files(self, message: Any) -> list[tuple[str, bytes]]:
        """(filename, bytes) of each attachment of a message."""
        return [(a.filename, a.data) for a in self._stored(message).attachments]

    def commands(self, guild_id: Any = None) -> list[dict[str, Any]]:
        return self.command_registry.list(None if guild_id is None else snowflake_of(guild_id))

    @property
    def command_sync_count(self) -> int:
        return self.command_registry.sync_count

    @property
    def interactions(self) -> list[FakeInteraction]:
        return list(self.interaction_registry.by_id.values())

    def mark(self) -> int:
        """A snowflake below every later message id, for ``wait_for_message(since=...)``."""
        return self.world.ids.mark()

    async def wait_for_message(
        self,
        channel_id: Any = None,
        predicate: Callable[[dict[str, Any]], Any] | None = None,
        timeout: float = 5.0,
        *,
        author: User | None = None,
        any_author: bool = False,
        since: int | None = None,
    ) -> dict[str, Any]:
        """The oldest live message (existing or future) matching all filters: in ``channel_id``
        or a thread under it (any channel if None), by ``author`` (default: the bot, unless
        ``any_author``), newer than ``since``, and ``predicate(message_dict)``."""
        w = self.world
        cid = None if channel_id is None else snowflake_of(channel_id)
        author_id = None if any_author else (author or w.bot_user).id

        def probe() -> dict[str, Any] | None:
            for m in list(w.messages.values()):  # creation order == id order
                if m.deleted or m.ephemeral or (since is not None and m.id <= since):
                    continue
                if author_id is not None and m.author.id != author_id:
                    continue
                if cid is not None and m.channel_id != cid:
                    ch = w.channels.get(m.channel_id)
                    if ch is None or ch.parent_id != cid or not ch.is_thread:
                        continue
                rendered = self.message_service.render(m)
                if predicate is None or predicate(rendered):
                    return rendered
            return None

        return await w.notifier.wait_until(probe, timeout, describe=self._recent_requests)

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked whenever the fake's state changes)."""
        return await self.world.notifier.wait_until(
            predicate, timeout, describe=self._recent_requests
        )

    async def wait_until_connected(self, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.gateway.connected, timeout)

    def _recent_requests(self) -> str:
        tail = ", ".join(f"{r.method} {r.path} {r.status}" for r in self.request_log[-8:])
        extra = f"; unknown routes: {self.unknown_routes}" if self.unknown_routes else ""
        return f"last requests: [{tail}]{extra}"

    # -- gateway controls -----------------------------------------------------------------------------

    async def gateway_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client reconnects and RESUMEs."""
        await self.gateway.send_reconnect()

    async def gateway_invalidate_session(self, resumable: bool = False) -> None:
        await self.gateway.invalidate_sessions(resumable)

    async def gateway_drop(self, code: int = 4000) -> None:
        """Close the sockets from the server side with ``code``."""
        await self.gateway.drop_connections(code)

    @property
    def identify_payloads(self) -> list[dict[str, Any]]:
        """IDENTIFY payloads received, ``{"op": 2, "d": {...}}`` with the token removed."""
        return self.gateway.identify_payloads
