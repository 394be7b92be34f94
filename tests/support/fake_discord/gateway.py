"""The gateway websocket: HELLO, IDENTIFY/READY/GUILD_CREATE, heartbeats, RESUME, dispatches.

Speaks JSON with ``zlib-stream`` transport compression (or ``zstd-stream`` when the
``zstandard`` module is installed, as discord.py then asks for it), or no compression.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .constants import (
    ALL_INTENTS,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
)
from .models import Guild, iso
from .world import World

log = logging.getLogger(__name__)

Payload = dict[str, Any] | Callable[["Session"], dict[str, Any]]


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    buffer: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000))
    conn: Connection | None = None

    @property
    def content_intent(self) -> bool:
        return bool(self.intents & INTENT_MESSAGE_CONTENT)

    def wants(self, intents: int) -> bool:
        return intents == 0 or bool(self.intents & intents)


class _Compressor:
    """Transport compression for one connection: one stream for its whole life."""

    def __init__(self, mode: str | None) -> None:
        self.mode = mode
        if mode == "zlib-stream":
            self._zlib = zlib.compressobj()
        elif mode == "zstd-stream":
            import zstandard  # type: ignore[import-not-found]

            self._zstd = zstandard.ZstdCompressor().compressobj()
            self._flush_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def pack(self, text: str) -> bytes | str:
        if self.mode == "zlib-stream":
            return self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self.mode == "zstd-stream":
            return self._zstd.compress(text.encode()) + self._zstd.flush(self._flush_block)
        return text


class Connection:
    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compressor = _Compressor(compress)
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.session: Session | None = None
        self.writer = asyncio.create_task(self._write())

    def send(self, frame: dict[str, Any]) -> None:
        self.queue.put_nowait(frame)

    async def _write(self) -> None:
        # One writer per socket keeps frames in order through the shared compression stream.
        while True:
            frame = await self.queue.get()
            try:
                if frame is None:
                    return
                packed = self.compressor.pack(json.dumps(frame, separators=(",", ":")))
                if self.ws.closed:
                    continue
                if isinstance(packed, bytes):
                    await self.ws.send_bytes(packed)
                else:
                    await self.ws.send_str(packed)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("fake gateway: send failed: %s", exc)
            finally:
                self.queue.task_done()

    async def close(self, code: int, reason: str = "") -> None:
        await self.queue.join()
        await self.ws.close(code=code, message=reason.encode())


def zstd_available() -> bool:
    try:
        import zstandard  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


class Gateway:
    def __init__(self, world: World, *, heartbeat_interval_ms: int) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.url = ""  # set when the server starts
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.identify_payloads: list[dict[str, Any]] = []  # {"op": 2, "d": ...}, token removed
        self.resume_count = 0
        self.presence_updates: list[dict[str, Any]] = []

    # -- dispatch ------------------------------------------------------------------------------

    def dispatch(self, event: str, data: Payload, *, intents: int = 0) -> None:
        """Queue a DISPATCH for every session that asked for ``intents`` (0 = everyone) and, when
        sharded, is the shard of the event's guild (DMs go to shard 0), as Discord does."""
        for session in list(self.sessions.values()):
            if session.wants(intents):
                payload = data(session) if callable(data) else data
                if self._shard_gets(session, event, payload):
                    self._emit(session, event, payload)

    @staticmethod
    def _shard_gets(session: Session, event: str, data: dict[str, Any]) -> bool:
        if session.shard is None:
            return True
        shard_id, count = session.shard
        guild = data.get("guild_id")
        if guild is None and event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
            guild = data.get("id")
        if guild is None:
            return shard_id == 0
        return (int(guild) >> 22) % count == shard_id

    def _emit(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        if session.conn is not None:
            session.conn.send(frame)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued frame has been written to its socket."""
        waits = [c.queue.join() for c in list(self.connections)]
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)

    @property
    def connected(self) -> bool:
        return any(c.session is not None for c in self.connections)

    # -- server-side controls for tests ------------------------------------------------------------

    async def send_reconnect(self) -> None:
        """Op 7: ask every client to reconnect and RESUME."""
        for conn in list(self.connections):
            conn.send({"op": 7, "d": None, "s": None, "t": None})
        await self.flush()

    async def invalidate_sessions(self, resumable: bool = False) -> None:
        """Op 9 to every client; forget the sessions unless ``resumable``."""
        for conn in list(self.connections):
            if not resumable and conn.session is not None:
                self.sessions.pop(conn.session.id, None)
            conn.send({"op": 9, "d": resumable, "s": None, "t": None})
        await self.flush()

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every socket with ``code`` (4000 lets discord.py reconnect and resume)."""
        for conn in list(self.connections):
            await conn.close(code, "closed by the fake")

    async def close(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
            conn.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.writer

    # -- websocket handler ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        compress = q.get("compress")
        if q.get("encoding", "json") != "json":
            return web.Response(status=400, text="the fake gateway speaks encoding=json only")
        if compress not in (None, "zlib-stream", "zstd-stream"):
            return web.Response(status=400, text=f"unsupported compress={compress}")
        if compress == "zstd-stream" and not zstd_available():
            log.error("fake gateway: client asked for zstd-stream but zstandard is not installed")
            return web.Response(status=400, text="zstd-stream needs the zstandard module")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws, compress)
        self.connections.add(conn)
        conn.send(
            {
                "op": 10,
                "s": None,
                "t": None,
                "d": {
                    "heartbeat_interval": self.heartbeat_interval_ms,
                    "_trace": ['["gateway-prd-fake",{"micros":0}]'],
                },
            }
        )
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await conn.close(4002, "Decode error.")
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self.connections.discard(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            conn.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.writer
        return ws

    async def _on_frame(self, conn: Connection, text: str) -> None:
        try:
            frame = json.loads(text)
            op, d = frame["op"], frame.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.close(4002, "Decode error.")
            return
        if op == 1:
            conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(conn, d)
        elif op == 6:
            await self._resume(conn, d)
        elif conn.session is None:
            await conn.close(4003, "Not authenticated.")
        elif op == 3:
            self.presence_updates.append(d)
        elif op == 8:
            self._request_members(conn.session, d)
        elif op in (4, 14, 31):
            pass  # voice/lazy/soundboard requests: nothing to do here
        else:
            await conn.close(4001, "Unknown opcode.")

    def _token_ok(self, token: Any) -> bool:
        if not isinstance(token, str):
            return False
        return token.removeprefix("Bot ") == self.world.token

    async def _identify(self, conn: Connection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if not self._token_ok(d.get("token")):
            await conn.close(4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int) or intents & ~ALL_INTENTS:
            await conn.close(4013, "Invalid intent(s).")
            return
        for intent, flags in PRIVILEGED_INTENTS.items():
            if intents & intent and not self.world.application_flags & flags:
                await conn.close(4014, "Disallowed intent(s).")
                return
        shard = d.get("shard")
        shard_t: tuple[int, int] | None = None
        if shard is not None:
            shard_t = (int(shard[0]), int(shard[1]))
            if not 0 <= shard_t[0] < shard_t[1]:
                await conn.close(4010, "Invalid shard.")
                return
        self.identify_payloads.append({"op": 2, "d": {k: v for k, v in d.items() if k != "token"}})
        session = Session(id=secrets.token_hex(16), intents=intents, shard=shard_t, conn=conn)
        self.sessions[session.id] = session
        conn.session = session
        guilds = [
            g
            for g in self.world.guilds.values()
            if self._on_shard(session, g) and self.world.bot_user.id in g.members
        ]
        self._emit(session, "READY", self._ready_payload(session, guilds))
        for guild in guilds:
            if session.wants(INTENT_GUILDS):
                self._emit(session, "GUILD_CREATE", self.guild_create_payload(guild, session))
        self.world.notifier.changed()

    async def _resume(self, conn: Connection, d: dict[str, Any]) -> None:
        session = self.sessions.get(str(d.get("session_id")))
        if not self._token_ok(d.get("token")):
            await conn.close(4004, "Authentication failed.")
            return
        if session is None:
            conn.send({"op": 9, "d": False, "s": None, "t": None})
            return
        if session.conn is not None and session.conn is not conn:
            old = session.conn
            session.conn = None
            with contextlib.suppress(Exception):
                await old.ws.close(code=4000)
        session.conn = conn
        conn.session = session
        last = d.get("seq") or 0
        for frame in list(session.buffer):
            if frame["s"] > last:
                conn.send(frame)
        self.resume_count += 1
        self._emit(session, "RESUMED", {"_trace": ['["gateway-prd-fake",{"micros":0}]']})
        self.world.notifier.changed()

    def _request_members(self, session: Session, d: dict[str, Any]) -> None:
        guild = self.world.guilds.get(int(d.get("guild_id", 0)))
        if guild is None:
            return
        members = list(guild.members.values())
        user_ids = d.get("user_ids")
        if user_ids:
            wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.user.id in wanted]
        query = d.get("query")
        if query:
            members = [m for m in members if m.user.username.lower().startswith(query.lower())]
        limit = d.get("limit") or 0
        if limit:
            members = members[:limit]
        data: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if d.get("nonce") is not None:
            data["nonce"] = d["nonce"]
        self._emit(session, "GUILD_MEMBERS_CHUNK", data)

    # -- payloads ------------------------------------------------------------------------------

    @staticmethod
    def _on_shard(session: Session, guild: Guild) -> bool:
        if session.shard is None:
            return True
        shard_id, count = session.shard
        return (guild.id >> 22) % count == shard_id

    def _ready_payload(self, session: Session, guilds: list[Guild]) -> dict[str, Any]:
        w = self.world
        user = w.bot_user.payload()
        user.update({"verified": True, "mfa_enabled": False, "email": None, "bot": True})
        data: dict[str, Any] = {
            "v": 10,
            "user_settings": {},
            "user": user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "guild_join_requests": [],
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "sessions": [],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(w.application_id), "flags": w.application_flags},
            "auth": {},
            "geo_ordered_rtc_regions": ["fake-local"],
            "_trace": ['["gateway-prd-fake",{"micros":0}]'],
        }
        if session.shard is not None:
            data["shard"] = list(session.shard)
        return data

    def guild_create_payload(
        self, guild: Guild, session: Session | None, *, joined: bool = False
    ) -> dict[str, Any]:
        """GUILD_CREATE: the guild with channels, active threads, roles and members.

        Without the Guild Members intent, Discord sends only the bot's own member. The
        lazy-load after READY says ``unavailable: false``; a fresh join leaves it out."""
        w = self.world
        full_members = session is None or bool(session.intents & INTENT_GUILD_MEMBERS)
        members = [m for m in guild.members.values() if full_members or m.user.id == w.bot_user.id]
        channels = [w.channels[c] for c in guild.channel_ids if c in w.channels]
        bot_member = guild.members.get(w.bot_user.id)
        data = guild.payload()
        data.update(
            {
                "joined_at": iso(bot_member.joined_at if bot_member else guild.created_at),
                "large": False,
                "lazy": True,
                "member_count": len(guild.members),
                "members": [m.payload() for m in members],
                "channels": [c.payload(with_guild_id=False) for c in channels if not c.is_thread],
                "threads": [c.payload() for c in channels if c.is_thread and not c.archived],
                "voice_states": [],
                "presences": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "activity_instances": [],
                "application_command_counts": {},
                "version": 0,
            }
        )
        if not joined:
            data["unavailable"] = False
        return data
