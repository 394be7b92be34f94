"""The fake Discord's channel side against a real discord.py client: sending (files, nonce
dedup, limits), history, threads and their permission fallback, reactions, the Message
Content blanking rule, the CDN, and error plumbing."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import discord
import pytest
from discord.http import Route

from tests.support.fake_discord import GATEWAY_MESSAGE_CONTENT, Channel, FakeDiscord, Guild, User
from tests.support.fake_discord.client import running
from tests.support.fake_discord.constants import CREATE_PUBLIC_THREADS, SEND_MESSAGES

pytest_plugins = ["tests.support.fake_discord.fixtures"]


@dataclass
class Scene:
    fd: FakeDiscord
    client: discord.Client
    guild: Guild
    channel: Channel
    alice: User
    bob: User

    @property
    def text_channel(self) -> discord.TextChannel:
        ch = self.client.get_channel(self.channel.id)
        assert isinstance(ch, discord.TextChannel)
        return ch


async def _scene(
    fd: FakeDiscord, *, content_intent: bool = False, upload_limit: int | None = None
) -> AsyncIterator[Scene]:
    if content_intent:
        fd.world.application_flags |= GATEWAY_MESSAGE_CONTENT
    alice, bob = fd.add_user("alice"), fd.add_user("bob")
    guild = fd.add_guild("Test", upload_limit=upload_limit)
    channel = fd.add_text_channel(guild, "general")
    fd.add_member(guild, alice)
    fd.add_member(guild, bob)
    intents = discord.Intents.default()
    intents.message_content = content_intent
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    async with running(client, fd):
        yield Scene(fd, client, guild, channel, alice, bob)


@pytest.fixture
async def scene(discord_endpoints: FakeDiscord) -> AsyncIterator[Scene]:
    async for s in _scene(discord_endpoints):
        yield s


@pytest.fixture
async def small_uploads(discord_endpoints: FakeDiscord) -> AsyncIterator[Scene]:
    async for s in _scene(discord_endpoints, upload_limit=1000):
        yield s


@pytest.fixture
async def content_scene(discord_endpoints: FakeDiscord) -> AsyncIterator[Scene]:
    async for s in _scene(discord_endpoints, content_intent=True):
        yield s


async def _fetch(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read()


async def test_send_files_serves_them_back_and_dispatches_the_message(scene: Scene) -> None:
    # Client.wait_for registers its listener on call, before the send below.
    seen = scene.client.wait_for("message", timeout=5)
    sent = await scene.text_channel.send(
        "two files",
        files=[
            discord.File(io.BytesIO(b"AAAA"), "a.png"),
            discord.File(io.BytesIO(b"hello"), "note.txt"),
        ],
    )
    assert [a.filename for a in sent.attachments] == ["a.png", "note.txt"]
    assert sent.attachments[1].content_type == "text/plain"
    assert await sent.attachments[0].read() == b"AAAA"
    assert scene.fd.files(sent.id) == [("a.png", b"AAAA"), ("note.txt", b"hello")]
    echoed = await seen  # Discord sends the bot its own messages too
    assert echoed.id == sent.id and echoed.content == "two files"


async def test_nonce_dedup_returns_the_first_message(scene: Scene) -> None:
    first = await scene.text_channel.send("once", nonce="job-7-result")
    again = await scene.text_channel.send("once", nonce="job-7-result")
    other = await scene.text_channel.send("twice", nonce="job-8-result")
    assert again.id == first.id and other.id != first.id
    assert [m["content"] for m in scene.fd.messages(scene.channel)] == ["once", "twice"]
    assert scene.fd.nonce_dedup_count == 1


async def test_upload_over_the_guild_limit_is_413(small_uploads: Scene) -> None:
    s = small_uploads
    assert s.client.get_guild(s.guild.id) is not None
    with pytest.raises(discord.HTTPException) as err:
        await s.text_channel.send(file=discord.File(io.BytesIO(b"x" * 2000), "big.png"))
    assert err.value.status == 413 and err.value.code == 40005
    await s.text_channel.send(file=discord.File(io.BytesIO(b"x" * 1000), "ok.png"))
    assert [m["attachments"][0]["filename"] for m in s.fd.messages(s.channel)] == ["ok.png"]


async def test_history_edit_delete_and_reply(scene: Scene) -> None:
    ch = scene.text_channel
    msgs = [await ch.send(f"m{i}") for i in range(4)]
    newest_first = [m.content async for m in ch.history(limit=3)]
    assert newest_first == ["m3", "m2", "m1"]
    after = [m.content async for m in ch.history(after=msgs[1], oldest_first=True)]
    assert after == ["m2", "m3"]
    edited = await msgs[0].edit(content="m0 edited")
    assert edited.edited_at is not None
    await msgs[1].delete()
    reply = await msgs[2].reply("a reply")
    assert reply.reference is not None and reply.reference.message_id == msgs[2].id
    assert [m["content"] for m in scene.fd.messages(scene.channel)] == [
        "m0 edited",
        "m2",
        "m3",
        "a reply",
    ]
    with pytest.raises(discord.NotFound):
        await ch.fetch_message(msgs[1].id)


async def test_create_thread_and_missing_permissions_fallback(scene: Scene) -> None:
    fd, ch = scene.fd, scene.text_channel
    first = await ch.send("result 1")
    thread = await first.create_thread(name="Wan result")
    assert thread.id == first.id and thread.parent_id == ch.id
    assert [t.id for t in fd.threads] == [first.id] and fd.threads[0].type == 11
    await thread.send("inside")
    assert [m["content"] for m in fd.messages(thread.id)] == ["inside"]
    found = await fd.wait_for_message(scene.channel, lambda m: m["content"] == "inside")
    assert found["channel_id"] == str(thread.id)

    fd.set_bot_permissions(scene.guild, scene.channel, deny=CREATE_PUBLIC_THREADS)
    me = ch.guild.me
    await fd.wait_until(lambda: not ch.permissions_for(me).create_public_threads)
    second = await ch.send("result 2")
    with pytest.raises(discord.Forbidden) as err:
        await second.create_thread(name="Wan result 2")
    assert err.value.code == 50013
    await ch.send("no thread, here instead")  # the fallback still works
    assert fd.messages(scene.channel)[-1]["content"] == "no thread, here instead"


async def test_send_without_permission_is_forbidden(scene: Scene) -> None:
    scene.fd.set_bot_permissions(scene.guild, deny=SEND_MESSAGES)
    with pytest.raises(discord.Forbidden) as err:
        await scene.text_channel.send("hi")
    assert err.value.code == 50013


async def test_reactions_both_ways(scene: Scene) -> None:
    fd = scene.fd
    msg = await scene.text_channel.send("react to me")
    await msg.add_reaction("🎨")
    await msg.add_reaction("👍")
    assert fd.reactions(msg.id) == ["🎨", "👍"]
    await msg.remove_reaction("👍", scene.client.user)  # type: ignore[arg-type]
    assert fd.reactions(msg.id, fd.bot_user) == ["🎨"]
    with pytest.raises(discord.HTTPException) as err:
        await msg.add_reaction("art")
    assert err.value.code == 10014
    waiter = scene.client.wait_for("raw_reaction_add", timeout=5)
    await fd.add_user_reaction(msg.id, scene.alice, "🗑️")
    event = await waiter
    assert event.user_id == scene.alice.id and str(event.emoji) == "🗑️"
    fetched = await scene.text_channel.fetch_message(msg.id)
    assert {str(r.emoji): (r.count, r.me) for r in fetched.reactions} == {
        "🎨": (1, True),
        "🗑️": (1, False),
    }


async def _received(scene: Scene, **kwargs: object) -> discord.Message:
    """Post as a user and return the message as the bot's on_message saw it."""
    waiter = scene.client.wait_for(
        "message", timeout=5, check=lambda m: m.author.id != scene.fd.bot_user.id
    )
    await scene.fd.post_user_message(**kwargs)  # type: ignore[arg-type]
    return await waiter


async def test_message_content_blanking_without_the_intent(scene: Scene) -> None:
    fd, alice, bob = scene.fd, scene.alice, scene.bob
    cat = fd.add_cdn_file(b"cat", "cat.png")
    plain = await _received(
        scene, channel=scene.channel, user=alice, content="just chatting", attachments=[cat]
    )
    assert (plain.content, plain.attachments) == ("", [])

    mention = await _received(
        scene,
        channel=scene.channel,
        user=alice,
        content=f"{fd.bot_user.mention} make it blue",
        attachments=[cat],
    )
    assert mention.content.endswith("make it blue") and len(mention.attachments) == 1

    result = await scene.text_channel.send(
        "your result", file=discord.File(io.BytesIO(b"R"), "r.png")
    )
    reply = await _received(
        scene, channel=scene.channel, user=alice, content="now red", reference=result.id
    )
    assert reply.content == "now red"  # a reply-ping to the bot's message counts as a mention
    resolved = reply.reference.resolved if reply.reference else None
    assert isinstance(resolved, discord.Message) and resolved.content == "your result"

    bobs = await fd.post_user_message(scene.channel, bob, "bob's pic", attachments=[cat])
    other = await _received(
        scene,
        channel=scene.channel,
        user=alice,
        content=f"{fd.bot_user.mention} edit that",
        reference=bobs["id"],
    )
    assert other.content.endswith("edit that")
    ref = other.reference.resolved if other.reference else None
    assert isinstance(ref, discord.Message) and (ref.content, ref.attachments) == ("", [])

    dm = await _received(scene, channel=fd.dm_channel(alice), user=alice, content="in a DM")
    assert dm.content == "in a DM" and dm.guild is None

    # REST reads follow the application's switch (off here) the same way.
    fetched = await scene.text_channel.fetch_message(plain.id)
    assert fetched.content == ""


async def test_message_content_visible_with_the_intent(content_scene: Scene) -> None:
    cat = content_scene.fd.add_cdn_file(b"cat", "cat.png")
    msg = await _received(
        content_scene,
        channel=content_scene.channel,
        user=content_scene.alice,
        content="just chatting",
        attachments=[cat],
    )
    assert msg.content == "just chatting" and await msg.attachments[0].read() == b"cat"


async def test_cdn_urls_are_signed_and_expire(fake_discord: FakeDiscord) -> None:
    fd = fake_discord
    f = fd.add_cdn_file(b"\x00bytes", "in.png", "image/png")
    old = f.url
    assert old.startswith(fd.cdn_base) and all(k in old for k in ("?ex=", "&is=", "&hm="))
    assert await _fetch(old) == (200, b"\x00bytes")
    assert (await _fetch(old.replace("hm=", "hm=0")))[0] == 404
    fd.advance_cdn_clock(2 * 86400)
    assert (await _fetch(old))[0] == 404
    assert await _fetch(f.url) == (200, b"\x00bytes")


async def test_dm_unknown_routes_and_injected_rate_limit(scene: Scene) -> None:
    fd = scene.fd
    user = await scene.client.fetch_user(scene.alice.id)
    dm = await user.send("hello alice")
    assert fd.messages(fd.dm_channel(scene.alice))[0]["id"] == str(dm.id)
    with pytest.raises(discord.NotFound):
        await scene.client.http.request(Route("GET", "/not/a/route"))
    assert fd.unknown_routes == ["GET /not/a/route"]
    fd.inject_failure("POST", r"^/channels/\d+/messages$", 429)
    await scene.text_channel.send("after a 429")  # discord.py waits retry_after and retries
    statuses = [
        r.status
        for r in fd.request_log
        if r.method == "POST" and r.path == f"/channels/{scene.channel.id}/messages"
    ]
    assert statuses == [429, 200]
