"""REST routes for channel messages (with nonce dedup), reactions and threads."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .constants import (
    ADD_REACTIONS,
    ATTACH_FILES,
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    DM,
    GUILD_TEXT,
    MANAGE_MESSAGES,
    MSG_REPLY,
    MSG_THREAD_CREATED,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
    field_error,
)
from .errors import ApiError, invalid_form, missing_access, missing_permissions
from .message_input import UploadLimits, apply_edit, new_message_fields
from .messages import StoredMessage
from .models import Channel
from .rest_common import json_response, no_content, read_body
from .routes_core import _int

if TYPE_CHECKING:
    from .server import FakeDiscord

NONCE_WINDOW_S = 300.0  # "a few minutes", per Discord's docs on enforce_nonce


def parse_emoji(raw: str) -> dict[str, Any]:
    """A reaction emoji from the URL: a unicode emoji, or ``name:id`` for a custom one."""
    m = re.fullmatch(r"(?:a:)?([\w~]{2,32}):(\d+)", raw)
    if m:
        return {"id": m.group(2), "name": m.group(1), "animated": raw.startswith("a:")}
    if raw and any(ord(ch) > 127 for ch in raw) and len(raw) <= 16:
        return {"id": None, "name": raw}
    raise ApiError(400, 10014, "Unknown Emoji")


class MessageRoutes:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd
        self.w = fd.world
        self.nonces: dict[tuple[int, str], tuple[int, float]] = {}

    def register(self, router: web.UrlDispatcher, prefix: str) -> None:
        add = router.add_route
        base = prefix + "/channels/{channel_id}/messages"
        add("GET", base, self.list_messages)
        add("POST", base, self.create_message)
        add("GET", base + "/{message_id}", self.get_message)
        add("PATCH", base + "/{message_id}", self.edit_message)
        add("DELETE", base + "/{message_id}", self.delete_message)
        react = base + "/{message_id}/reactions"
        add("PUT", react + "/{emoji}/@me", self.add_reaction)
        add("DELETE", react + "/{emoji}/@me", self.remove_own_reaction)
        add("DELETE", react + "/{emoji}/{user_id}", self.remove_user_reaction)
        add("GET", react + "/{emoji}", self.reaction_users)
        add("DELETE", react, self.clear_reactions)
        add("POST", base + "/{message_id}/threads", self.thread_from_message)
        add("POST", prefix + "/channels/{channel_id}/threads", self.thread_without_message)

    # -- helpers -----------------------------------------------------------------------------------

    def _channel(self, request: web.Request, *, need: int = VIEW_CHANNEL) -> Channel:
        channel = self.w.channel(_int(request, "channel_id"))
        if channel.type == DM:
            return channel
        perms = self.w.bot_permissions(channel)
        if not perms & VIEW_CHANNEL:
            raise missing_access()
        if perms & need != need:
            raise missing_permissions()
        return channel

    def _message(self, request: web.Request, channel: Channel) -> StoredMessage:
        return self.w.message(channel.id, _int(request, "message_id"))

    def _render(self, msg: StoredMessage, *, include_nonce: bool = False) -> dict[str, Any]:
        # REST has no intents: the application's Message Content switch decides.
        return self.fd.message_service.render(
            msg,
            content_access=self.fd.message_service.app_has_content_intent(),
            include_nonce=include_nonce,
        )

    def _upload_limits(self, channel: Channel) -> UploadLimits:
        return UploadLimits.of(self.w.guilds[channel.guild_id] if channel.guild_id else None)

    # -- messages ------------------------------------------------------------------------------------

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        w, svc = self.w, self.fd.message_service
        if channel.type == DM and not all(u.accepts_dms for u in channel.recipients or []):
            # The member turned off DMs from server members, or blocked the bot.
            raise ApiError(403, 50007, "Cannot send messages to this user")
        if channel.type != DM:
            need = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
            if not w.bot_permissions(channel) & need:
                raise missing_permissions()
            if channel.is_thread and (channel.archived and channel.locked):
                raise ApiError(400, 50083, "Thread is archived")
        payload, uploads = await read_body(request)
        if uploads and channel.type != DM and not w.bot_permissions(channel) & ATTACH_FILES:
            raise missing_permissions()
        nonce = payload.get("nonce")
        if nonce is not None:
            nonce = str(nonce)
            if len(nonce) > 25:
                raise invalid_form(
                    field_error(["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
                )
            if payload.get("enforce_nonce"):
                seen = self.nonces.get((w.bot_user.id, nonce))
                if seen is not None and w.now() - seen[1] < NONCE_WINDOW_S:
                    original = w.messages.get(seen[0])
                    if original is not None and not original.deleted:
                        self.fd.nonce_dedup_count += 1
                        return json_response(self._render(original, include_nonce=True))
        fields = new_message_fields(
            w, payload, uploads, channel_id=channel.id, limits=self._upload_limits(channel)
        )
        reference, referenced = self._reference(payload.get("message_reference"), channel)
        mentions, roles, everyone = svc.resolve_mentions(
            fields["content"],
            payload.get("allowed_mentions"),
            referenced.author if referenced is not None else None,
        )
        fields["embeds"] = svc.normalize_embeds(fields["embeds"], fields["attachments"])
        msg = svc.create(
            channel,
            w.bot_user,
            nonce=nonce,
            reference=reference,
            referenced_id=referenced.id if referenced else None,
            type=MSG_REPLY if referenced else 0,
            mention_ids=mentions,
            mention_roles=roles,
            mention_everyone=everyone,
            **fields,
        )
        if nonce is not None:
            self.nonces[(w.bot_user.id, nonce)] = (msg.id, w.now())
        return json_response(self._render(msg, include_nonce=True))

    def _reference(
        self, ref: dict[str, Any] | None, channel: Channel
    ) -> tuple[dict[str, Any] | None, StoredMessage | None]:
        if not ref:
            return None, None
        target = self.w.messages.get(int(ref.get("message_id") or 0))
        ok = (
            target is not None
            and not target.deleted
            and not target.ephemeral
            and target.channel_id == int(ref.get("channel_id") or channel.id) == channel.id
        )
        if not ok:
            if ref.get("fail_if_not_exists", True):
                raise invalid_form(
                    field_error(
                        ["message_reference"],
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    )
                )
            return None, None
        assert target is not None
        data = {"type": 0, "channel_id": str(channel.id), "message_id": str(target.id)}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        return data, target

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        q = request.query
        limit = max(1, min(100, int(q.get("limit", "50"))))
        msgs = sorted(
            (
                m
                for m in self.w.messages.values()
                if m.channel_id == channel.id and not m.deleted and not m.ephemeral
            ),
            key=lambda m: m.id,
        )
        if "before" in q:
            msgs = [m for m in msgs if m.id < int(q["before"])][-limit:]
        elif "after" in q:
            msgs = [m for m in msgs if m.id > int(q["after"])][:limit]
        elif "around" in q:
            around = int(q["around"])
            older = [m for m in msgs if m.id <= around][-(limit - limit // 2) :]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        else:
            msgs = msgs[-limit:]
        return json_response([self._render(m) for m in reversed(msgs)])

    async def get_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        return json_response(self._render(self._message(request, channel)))

    async def edit_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._message(request, channel)
        payload, uploads = await read_body(request)
        if msg.author.id != self.w.bot_user.id:
            if set(payload) - {"flags"}:
                raise ApiError(403, 50005, "Cannot edit a message authored by another user")
            if not self.w.bot_permissions(channel) & MANAGE_MESSAGES:
                raise missing_permissions()
        apply_edit(self.w, msg, payload, uploads, limits=self._upload_limits(channel))
        svc = self.fd.message_service
        if "embeds" in payload:
            msg.embeds = svc.normalize_embeds(msg.embeds, msg.attachments)
        if "content" in payload:
            msg.mention_ids, msg.mention_roles, msg.mention_everyone = svc.resolve_mentions(
                msg.content, payload.get("allowed_mentions"), None
            )
        svc.updated(msg)
        return json_response(self._render(msg))

    async def delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._message(request, channel)
        if (
            msg.author.id != self.w.bot_user.id
            and channel.type != DM
            and not self.w.bot_permissions(channel) & MANAGE_MESSAGES
        ):
            raise missing_permissions()
        if msg.author.id != self.w.bot_user.id and channel.type == DM:
            raise ApiError(403, 50003, "Cannot execute action on a DM channel")
        self.fd.message_service.delete(msg)
        return no_content()

    # -- reactions -------------------------------------------------------------------------------------

    async def add_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        msg = self._message(request, channel)
        emoji = parse_emoji(request.match_info["emoji"])
        key = f"{emoji['name']}:{emoji['id']}" if emoji["id"] else emoji["name"]
        if (
            channel.type != DM
            and key not in msg.reactions
            and not self.w.bot_permissions(channel) & ADD_REACTIONS
        ):
            raise missing_permissions()
        if len(msg.reactions) >= 20 and key not in msg.reactions:
            raise ApiError(400, 30010, "Maximum number of reactions reached (20)")
        self.fd.message_service.add_reaction(msg, self.w.bot_user, emoji)
        return no_content()

    async def remove_own_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._message(request, channel)
        emoji = parse_emoji(request.match_info["emoji"])
        self.fd.message_service.remove_reaction(msg, self.w.bot_user, emoji)
        return no_content()

    async def remove_user_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | MANAGE_MESSAGES)
        msg = self._message(request, channel)
        emoji = parse_emoji(request.match_info["emoji"])
        user = self.w.user(_int(request, "user_id"))
        self.fd.message_service.remove_reaction(msg, user, emoji)
        return no_content()

    async def reaction_users(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        msg = self._message(request, channel)
        emoji = parse_emoji(request.match_info["emoji"])
        key = f"{emoji['name']}:{emoji['id']}" if emoji["id"] else emoji["name"]
        reaction = msg.reactions.get(key)
        ids = reaction.user_ids if reaction else []
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "25"))
        users = [self.w.users[i].payload() for i in sorted(ids) if i > after][:limit]
        return json_response(users)

    async def clear_reactions(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | MANAGE_MESSAGES)
        msg = self._message(request, channel)
        msg.reactions.clear()
        self.w.notifier.changed()
        return no_content()

    # -- threads ----------------------------------------------------------------------------------------

    def _check_thread_cap(self, channel: Channel) -> None:
        # Discord's JSON error codes: 160006 "Maximum number of active threads reached" (400); its
        # Threads topic puts the cap on a guild's active (unarchived) threads, 1000 by default here
        # (``FakeDiscord.max_active_threads``).
        w = self.w
        guild = w.guilds[channel.guild_id] if channel.guild_id is not None else None
        if guild is None:
            return
        active = sum(
            1 for c in guild.channel_ids if w.channels[c].is_thread and not w.channels[c].archived
        )
        if active >= self.fd.max_active_threads:
            raise ApiError(400, 160006, "Maximum number of active threads reached")

    def _check_thread_parent(self, channel: Channel) -> None:
        if channel.type not in (GUILD_TEXT, 5):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")

    def _thread_name(self, body: dict[str, Any]) -> str:
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise invalid_form(
                field_error(
                    ["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            )
        return name

    async def thread_from_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request, need=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        self._check_thread_parent(channel)
        msg = self._message(request, channel)
        body, _ = await read_body(request)
        if not self.w.bot_permissions(channel) & CREATE_PUBLIC_THREADS:
            raise missing_permissions()
        if msg.thread_id is not None:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        self._check_thread_cap(channel)
        name = self._thread_name(body)
        thread = self.fd.create_thread_channel(
            channel,
            name,
            owner=self.w.bot_user,
            thread_id=msg.id,
            type=PUBLIC_THREAD,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
        )
        msg.thread_id = thread.id
        self.fd.message_service.updated(msg, edited=False)
        return json_response(thread.payload(), 201)

    async def thread_without_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._check_thread_parent(channel)
        body, _ = await read_body(request)
        ttype = int(body.get("type") or PRIVATE_THREAD)
        if ttype not in (PUBLIC_THREAD, PRIVATE_THREAD):
            raise invalid_form(field_error(["type"], "BASE_TYPE_CHOICES", "Invalid thread type"))
        need = CREATE_PUBLIC_THREADS if ttype == PUBLIC_THREAD else CREATE_PRIVATE_THREADS
        if not self.w.bot_permissions(channel) & need:
            raise missing_permissions()
        self._check_thread_cap(channel)
        name = self._thread_name(body)
        thread = self.fd.create_thread_channel(
            channel,
            name,
            owner=self.w.bot_user,
            type=ttype,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
            invitable=bool(body.get("invitable", True)),
        )
        if ttype == PUBLIC_THREAD:
            # Discord announces a public thread started without a message in its parent.
            ref = {"type": 0, "channel_id": str(thread.id), "guild_id": str(channel.guild_id)}
            self.fd.message_service.create(
                channel, self.w.bot_user, type=MSG_THREAD_CREATED, content=name, reference=ref
            )
        return json_response(thread.payload(), 201)
