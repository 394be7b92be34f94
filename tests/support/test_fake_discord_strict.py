"""The fake Discord is as strict as Discord where the bot can trip: the two upload limits (per
file and per request), DMs a user has closed, and the per-channel rate limits on reactions and
message edits (429 with ``retry_after`` and the ``X-RateLimit-*`` headers)."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from tests.support.fake_discord import (
    DISCORD_RATE_LIMITS,
    Channel,
    FakeDiscord,
    Guild,
    Limit,
    RateLimits,
    User,
)
from tests.support.fake_discord.client import running

pytest_plugins = ["tests.support.fake_discord.fixtures"]


def files(*sizes: int) -> list[discord.File]:
    return [discord.File(io.BytesIO(b"x" * n), f"f{i}.png") for i, n in enumerate(sizes)]


def one_guild(fd: FakeDiscord, **guild: int) -> tuple[User, Guild, Channel]:
    alice = fd.add_user("alice")
    g = fd.add_guild("Test", **guild)
    channel = fd.add_text_channel(g, "general")
    fd.add_member(g, alice)
    return alice, g, channel


@pytest.fixture
async def client(discord_endpoints: FakeDiscord) -> AsyncIterator[discord.Client]:
    c = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    yield c
    if not c.is_closed():
        await c.close()


async def test_each_file_and_the_whole_request_have_a_limit(
    discord_endpoints: FakeDiscord, client: discord.Client
) -> None:
    """Per file: the server's upload limit; per request: 25 MiB on Discord, here set small."""
    fd = discord_endpoints
    _, _, channel = one_guild(fd, upload_limit=1000, request_limit=1500)
    async with running(client, fd):
        ch = client.get_channel(channel.id)
        assert isinstance(ch, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as one_too_big:
            await ch.send(files=files(1001))
        with pytest.raises(discord.HTTPException) as together_too_big:
            await ch.send(files=files(800, 800))  # each fits, both do not
        sent = await ch.send(files=files(1000))
        split = [await ch.send(files=files(800)) for _ in range(2)]
    for err in (one_too_big.value, together_too_big.value):
        assert (err.status, err.code) == (413, 40005)
        assert err.text == "Request entity too large"
    assert [len(fd.files(m.id)) for m in (sent, *split)] == [1, 1, 1]
    assert len(fd.messages(channel)) == 3


def test_documented_defaults() -> None:
    fd = FakeDiscord()
    plain = fd.add_guild("Plain")
    boosted = fd.add_guild("Boosted", premium_tier=3)
    assert (plain.upload_limit, plain.request_limit) == (10 * 1024 * 1024, 25 * 1024 * 1024)
    # A boosted server takes one file at its own limit, above the documented 25 MiB request.
    assert (boosted.upload_limit, boosted.request_limit) == (100 * 1024 * 1024,) * 2
    # Rate limits: Discord's observed numbers on request; the default is on but far looser.
    assert DISCORD_RATE_LIMITS.reactions == Limit(1, 0.25)
    assert DISCORD_RATE_LIMITS.message_edits == Limit(5, 5.0)
    assert fd.rate_limits.enabled
    for name in ("reactions", "message_edits"):
        default, discord_ = getattr(fd.rate_limits, name), getattr(DISCORD_RATE_LIMITS, name)
        assert default.requests / default.per >= 10 * discord_.requests / discord_.per


async def test_interaction_followups_have_both_limits_too(
    discord_endpoints: FakeDiscord, client: discord.Client
) -> None:
    fd = discord_endpoints
    alice, guild, channel = one_guild(fd, upload_limit=1000, request_limit=1500)
    tree = discord.app_commands.CommandTree(client)
    errors: list[discord.HTTPException] = []

    @tree.command(name="files", description="Sends files")
    async def send_files(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        for sizes in ((1001,), (800, 800)):
            try:
                await interaction.followup.send(files=files(*sizes))
            except discord.HTTPException as exc:
                errors.append(exc)
        await interaction.followup.send(files=files(700, 700))

    async with running(client, fd):
        await tree.sync()
        ix = await fd.slash(guild, channel, alice, "files")
        await ix.wait_original()
    assert [(e.status, e.code) for e in errors] == [(413, 40005), (413, 40005)]
    assert [a["size"] for a in ix.original["attachments"]] == [700, 700]  # type: ignore[index]


async def test_closed_dms_refuse_the_bot_with_50007(
    discord_endpoints: FakeDiscord, client: discord.Client
) -> None:
    fd = discord_endpoints
    alice, _, _ = one_guild(fd)
    fd.close_dms(alice)
    async with running(client, fd):
        user = await client.fetch_user(alice.id)
        dm = await user.create_dm()  # opening the channel still works, as on Discord
        with pytest.raises(discord.Forbidden) as err:
            await dm.send("hello")
        fd.open_dms(alice)
        await dm.send("hello again")
    assert (err.value.status, err.value.code) == (403, 50007)
    assert err.value.text == "Cannot send messages to this user"
    assert [m["content"] for m in fd.messages(fd.dm_channel(alice))] == ["hello again"]


async def test_a_reaction_burst_gets_429_with_discords_body_and_headers(
    fake_discord: FakeDiscord,
) -> None:
    """Raw HTTP, as a client that ignores the headers would send it: the second reaction in the
    window is refused, with what Discord sends, and not carried out. (The window is 30 s here,
    not Discord's 0.25 s, so the second request surely falls in it on a busy machine.)"""
    fd = fake_discord
    fd.rate_limits = RateLimits(reactions=Limit(1, 30.0))
    alice, _, channel = one_guild(fd)
    msg = await fd.post_user_message(channel, alice, "react to me")
    url = f"{fd.api_base}/channels/{channel.id}/messages/{msg['id']}/reactions"
    auth = {"Authorization": f"Bot {fd.token}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.put(f"{url}/%E2%9C%85/@me") as first:
            first_headers = first.headers
            assert first.status == 204
        async with http.put(f"{url}/%E2%8F%B3/@me") as second:
            assert second.status == 429
            body = json.loads(await second.read())
            headers = second.headers
    assert body.keys() == {"message", "retry_after", "global"}
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 29 < body["retry_after"] <= 30
    assert first_headers["X-RateLimit-Limit"] == "1"
    assert first_headers["X-RateLimit-Remaining"] == "0"
    assert 29 < float(first_headers["X-RateLimit-Reset-After"]) <= 30
    assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Scope"] == "user"
    assert headers["X-RateLimit-Bucket"] == first_headers["X-RateLimit-Bucket"]
    assert float(headers["X-RateLimit-Reset"]) > time.time() - 1
    assert headers["Via"] and headers["Retry-After"] == "30"
    assert fd.reactions(msg) == ["✅"]  # the refused one was not added
    assert fd.rate_limiter.limited == [("reactions", channel.id)]


async def test_discord_py_paces_reactions_and_edits_to_the_limits(
    discord_endpoints: FakeDiscord, client: discord.Client
) -> None:
    """discord.py obeys the headers and the 429s, so a burst from the bot lands in full but no
    faster than Discord allows: reactions 1 per 0.25 s and edits 5 per 5 s per channel (the
    edit window shortened here to keep the test quick)."""
    fd = discord_endpoints
    fd.rate_limits = RateLimits(reactions=Limit(1, 0.25), message_edits=Limit(2, 0.5))
    _, _, channel = one_guild(fd)
    async with running(client, fd):
        ch = client.get_channel(channel.id)
        assert isinstance(ch, discord.TextChannel)
        msg = await ch.send("start")
        await asyncio.gather(*(msg.add_reaction(e) for e in ("⏳", "🎨", "📦", "✅")))
        for i in range(5):
            await msg.edit(content=f"edit {i}")
    stamps = [r for r in fd.request_log if r.path.startswith(f"/channels/{channel.id}/messages/")]
    reactions = [r for r in stamps if "/reactions/" in r.path and r.status == 204]
    edits = [r for r in stamps if r.method == "PATCH" and r.status == 200]
    assert len(reactions) == 4 and len(edits) == 5
    assert sorted(fd.reactions(msg.id)) == sorted(["⏳", "🎨", "📦", "✅"])
    assert fd.message(msg.id)["content"] == "edit 4"  # type: ignore[index]
    # As the server counted them: one reaction per 0.25 s, and five edits need three windows.
    gaps = [b - a for a, b in itertools.pairwise(fd.rate_limiter.admitted["reactions"])]
    assert len(gaps) == 3 and min(gaps) >= 0.25 - 0.005
    edit_times = fd.rate_limiter.admitted["message_edits"]
    assert len(edit_times) == 5 and edit_times[-1] - edit_times[0] >= 1.0 - 0.005


async def test_rate_limits_can_be_switched_off(fake_discord: FakeDiscord) -> None:
    fd = fake_discord
    fd.rate_limits = RateLimits(enabled=False)
    alice, _, channel = one_guild(fd)
    msg = await fd.post_user_message(channel, alice, "react to me")
    url = f"{fd.api_base}/channels/{channel.id}/messages/{msg['id']}/reactions"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fd.token}"}) as http:
        statuses = []
        for emoji in ("%E2%9C%85", "%E2%8F%B3", "%F0%9F%8E%A8"):
            async with http.put(f"{url}/{emoji}/@me") as resp:
                statuses.append(resp.status)
                assert "X-RateLimit-Limit" not in resp.headers
    assert statuses == [204, 204, 204] and fd.rate_limiter.limited == []
