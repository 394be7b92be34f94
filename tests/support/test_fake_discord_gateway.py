"""The fake gateway at the protocol level (zlib-stream, READY/GUILD_CREATE shapes, heartbeats)
and with a real client (RESUME after drops, invalid sessions, live guild changes)."""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp
import discord
import pytest

from tests.support.fake_discord import FakeDiscord
from tests.support.fake_discord.client import running
from tests.support.fake_discord.gateway import zstd_available

pytest_plugins = ["tests.support.fake_discord.fixtures"]


class ZlibReader:
    """Client side of zlib-stream: one inflater for the socket's life, frames end in 00 00 ff ff."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inflater = zlib.decompressobj()

    async def next(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.BINARY, msg
        assert msg.data.endswith(b"\x00\x00\xff\xff")
        return json.loads(self.inflater.decompress(msg.data))


async def test_zlib_stream_identify_ready_guild_create_and_heartbeat(
    fake_discord: FakeDiscord,
) -> None:
    fd = fake_discord
    alice = fd.add_user("alice")
    guild = fd.add_guild("Proto", premium_tier=1)
    channel = fd.add_text_channel(guild, "general")
    fd.add_member(guild, alice)
    url = fd.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        reader = ZlibReader(ws)
        hello = await reader.next()
        assert hello["op"] == 10 and hello["s"] is None
        await ws.send_json({"op": 1, "d": None})
        assert (await reader.next())["op"] == 11
        await ws.send_json(
            {"op": 2, "d": {"token": fd.token, "intents": 1 | 512, "properties": {"os": "linux"}}}
        )
        ready = await reader.next()
        assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
        d = ready["d"]
        assert d["v"] == 10 and d["user"]["id"] == str(fd.bot_user.id) and d["user"]["bot"]
        assert d["guilds"] == [{"id": str(guild.id), "unavailable": True}]
        assert d["resume_gateway_url"] == fd.gateway_url and d["session_id"]
        assert d["application"] == {"id": str(fd.application_id), "flags": 0}
        created = await reader.next()
        assert (created["t"], created["s"]) == ("GUILD_CREATE", 2)
        g = created["d"]
        assert g["id"] == str(guild.id) and g["premium_tier"] == 1 and g["member_count"] == 3
        assert [c["id"] for c in g["channels"]] == [str(channel.id)]
        # No Guild Members intent: only the bot's own member is sent.
        assert [m["user"]["id"] for m in g["members"]] == [str(fd.bot_user.id)]
        roles = {r["name"]: r for r in g["roles"]}
        assert roles[fd.bot_user.name]["managed"] and roles["@everyone"]["id"] == str(guild.id)
        assert all(isinstance(r["permissions"], str) for r in g["roles"])
        await fd.post_user_message(channel, alice, "hi")
        event = await reader.next()
        assert (event["t"], event["s"]) == ("MESSAGE_CREATE", 3)
        assert event["d"]["guild_id"] == str(guild.id) and event["d"]["content"] == ""
        assert event["d"]["member"]["roles"] == [] and "user" not in event["d"]["member"]


async def test_client_resumes_and_gets_events_missed_while_dropped(
    discord_endpoints: FakeDiscord,
) -> None:
    fd = discord_endpoints
    alice = fd.add_user("alice")
    guild = fd.add_guild("Test")
    channel = fd.add_text_channel(guild)
    fd.add_member(guild, alice)
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running(client, fd):
        waiter = client.wait_for("message", timeout=5)
        await fd.gateway_drop(4000)
        await fd.post_user_message(channel, alice, f"{fd.bot_user.mention} while you were away")
        missed = await waiter
        assert missed.content.endswith("while you were away")
        assert fd.gateway.resume_count == 1 and len(fd.identify_payloads) == 1

        waiter = client.wait_for("message", timeout=5)
        await fd.gateway_reconnect()  # op 7
        await fd.wait_until(lambda: fd.gateway.resume_count == 2 and fd.gateway.connected)
        await fd.post_user_message(channel, alice, f"{fd.bot_user.mention} after op 7")
        assert (await waiter).content.endswith("after op 7")


class QuickReidentifyClient(discord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every non-initial IDENTIFY; not needed on loopback."""


async def test_invalid_session_makes_the_client_identify_again(
    discord_endpoints: FakeDiscord,
) -> None:
    fd = discord_endpoints
    fd.add_text_channel(fd.add_guild("Test"))
    client = QuickReidentifyClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running(client, fd):
        await fd.gateway_invalidate_session(resumable=False)
        await fd.wait_until(lambda: len(fd.identify_payloads) == 2 and fd.gateway.connected)
        assert fd.gateway.resume_count == 0


async def test_guild_changes_while_connected_reach_the_cache(
    discord_endpoints: FakeDiscord,
) -> None:
    fd = discord_endpoints
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running(client, fd):
        assert list(client.guilds) == []
        joined = client.wait_for("guild_join", timeout=5)
        guild = fd.add_guild("Later")
        assert (await joined).id == guild.id
        channel = fd.add_text_channel(guild, "art")
        await fd.wait_until(lambda: client.get_channel(channel.id) is not None)
        author = fd.add_user("carol")
        thread = fd.add_thread(channel, "carol's thread", owner=fd.add_member(guild, author).user)
        await fd.wait_until(lambda: client.get_channel(thread.id) is not None)
        got = client.get_channel(thread.id)
        assert isinstance(got, discord.Thread) and got.parent_id == channel.id


@pytest.mark.skipif(zstd_available(), reason="zstandard is installed")
async def test_zstd_stream_without_zstandard_is_refused_clearly(fake_discord: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        url = fake_discord.gateway_url + "?v=10&encoding=json&compress=zstd-stream"
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(url)
    assert err.value.status == 400


@pytest.mark.skipif(not zstd_available(), reason="zstandard is not installed")
async def test_zstd_stream_frames_decompress(fake_discord: FakeDiscord) -> None:
    import zstandard  # type: ignore[import-not-found]

    inflater = zstandard.ZstdDecompressor().decompressobj()
    url = fake_discord.gateway_url + "?v=10&encoding=json&compress=zstd-stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive(timeout=5)
        assert json.loads(inflater.decompress(hello.data))["op"] == 10
        await ws.send_json({"op": 1, "d": None})
        ack = await ws.receive(timeout=5)
        assert json.loads(inflater.decompress(ack.data))["op"] == 11
