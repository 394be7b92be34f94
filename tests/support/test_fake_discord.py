"""The fake Discord against a real discord.py client: login, cache, slash commands, views,
modals, context menus, interaction tokens."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.support.fake_discord import GATEWAY_GUILD_MEMBERS, Channel, FakeDiscord, Guild, User
from tests.support.fake_discord.client import running

pytest_plugins = ["tests.support.fake_discord.fixtures"]

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cf000000030101009a5a0b8f0000000049454e44ae426082"
)


def make_client(**intents: bool) -> discord.Client:
    flags = discord.Intents.default()
    for name, value in intents.items():
        setattr(flags, name, value)
    # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE.
    return discord.Client(intents=flags, guild_ready_timeout=0.05)


def alice_in_a_guild(fd: FakeDiscord) -> tuple[User, Guild, Channel]:
    """A member, alice, in a guild with one text channel: the world most of these tests need."""
    alice = fd.add_user("alice")
    guild = fd.add_guild("Test")
    channel = fd.add_text_channel(guild)
    fd.add_member(guild, alice)
    return alice, guild, channel


async def test_login_ready_and_guild_create_fill_the_cache(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    fd.world.application_flags = GATEWAY_GUILD_MEMBERS  # Server Members intent switched on
    alice = fd.add_user("alice")
    guild = fd.add_guild("Test", premium_tier=2, features=["COMMUNITY"])
    general = fd.add_text_channel(guild, "general")
    fd.add_member(guild, alice)
    client = make_client(members=True)
    async with running(client, fd):
        assert client.user is not None and client.user.id == fd.bot_user.id
        assert client.application_id == fd.application_id
        g = client.get_guild(guild.id)
        assert g is not None and g.name == "Test" and "COMMUNITY" in g.features
        assert g.filesize_limit == 50 * 1024 * 1024
        assert [c.id for c in g.text_channels] == [general.id]
        assert g.me is not None and g.me.id == fd.bot_user.id
        assert {m.name for m in g.members} >= {"alice", fd.bot_user.name}
        perms = g.text_channels[0].permissions_for(g.me)
        assert perms.send_messages and perms.create_public_threads and perms.attach_files
    assert fd.identify_payloads[0]["d"]["intents"] == client.intents.value
    assert ("GET", "/users/@me", 200) in fd.request_log


async def test_wrong_token_fails_login(discord_endpoints: FakeDiscord) -> None:
    client = make_client()
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert ("GET", "/users/@me", 401) in discord_endpoints.request_log


async def test_gateway_closes_4004_on_a_wrong_identify_token(fake_discord: FakeDiscord) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake_discord.gateway_url + "?v=10&encoding=json") as ws,
    ):
        hello = await ws.receive_json(timeout=5)
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 513, "properties": {}}})
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4004


async def test_privileged_intent_not_enabled_is_refused(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    client = make_client(message_content=True)  # application_flags has no content intent
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running(client, fd):
            pass


async def test_slash_command_with_attachment_defers_and_edits_with_a_file(
    discord_endpoints: FakeDiscord,
) -> None:
    fd = discord_endpoints
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)
    received: dict[str, object] = {}

    @tree.command(name="wanedit", description="Edit an image with Wan")
    async def wanedit(
        interaction: discord.Interaction, prompt: str, image: discord.Attachment, count: int = 1
    ) -> None:
        await interaction.response.defer(thinking=True)
        received.update(
            prompt=prompt,
            count=count,
            filename=image.filename,
            size=image.size,
            width=image.width,
            limit=interaction.filesize_limit,
            data=await image.read(),
        )
        await interaction.edit_original_response(
            content=f"done: {prompt}", attachments=[discord.File(io.BytesIO(b"RESULT"), "out.png")]
        )

    async with running(client, fd):
        await tree.sync()
        assert [c["name"] for c in fd.commands()] == ["wanedit"]
        options = {o["name"]: o["type"] for o in fd.commands()[0]["options"]}
        assert options == {"prompt": 3, "image": 11, "count": 4}
        assert fd.command_sync_count == 1
        att = fd.add_cdn_file(PNG_1x1, "cat.png", "image/png")
        ix = await fd.slash(
            guild, channel, alice, "wanedit", {"prompt": "make it blue", "image": att, "count": 2}
        )
        await ix.wait_response()
        assert ix.response_type == 5 and not ix.ephemeral
        final = await ix.wait_original(lambda m: m["attachments"])
    assert received == {
        "prompt": "make it blue",
        "count": 2,
        "filename": "cat.png",
        "size": len(PNG_1x1),
        "width": 1,
        "limit": 10 * 1024 * 1024,
        "data": PNG_1x1,
    }
    assert final["content"] == "done: make it blue"
    assert final["type"] == 20 and final["interaction_metadata"]["name"] == "wanedit"
    assert fd.files(final) == [("out.png", b"RESULT")]
    # History: the "thinking" placeholder, then the edit.
    assert [m["flags"] & 128 for m in ix.original_history] == [128, 0]
    assert fd.messages(channel)[-1]["id"] == final["id"]


async def test_subcommand_options_and_choices(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)
    group = app_commands.Group(name="wanquota", description="Quota admin")
    seen: list[tuple[str, int]] = []

    @group.command(name="set", description="Set a user's quota")
    async def set_quota(
        interaction: discord.Interaction,
        user: discord.Member,
        amount: app_commands.Range[int, 0, 100],
    ) -> None:
        seen.append((user.name, amount))
        await interaction.response.send_message("ok", ephemeral=True)

    tree.add_command(group, guild=discord.Object(guild.id))
    async with running(client, fd):
        await tree.sync(guild=discord.Object(guild.id))
        assert fd.commands() == [] and fd.commands(guild.id)[0]["name"] == "wanquota"
        ix = await fd.slash(
            guild, channel, alice, "wanquota", {"user": alice, "amount": 5}, subcommand="set"
        )
        await ix.wait_response()
        with pytest.raises(ValueError, match="outside"):
            await fd.slash(
                guild, channel, alice, "wanquota", {"user": alice, "amount": 500}, subcommand="set"
            )
    assert seen == [("alice", 5)]
    assert ix.ephemeral and ix.original is not None and ix.original["content"] == "ok"
    assert fd.messages(channel) == []  # ephemeral messages are not in the channel


async def test_button_click_reaches_the_view_callback(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    alice, _guild, channel = alice_in_a_guild(fd)
    client = make_client()
    clicked: list[int] = []

    class Reroll(discord.ui.View):
        @discord.ui.button(label="Reroll", custom_id="wan:reroll:42")
        async def reroll(
            self, interaction: discord.Interaction, button: discord.ui.Button[Reroll]
        ) -> None:
            clicked.append(interaction.user.id)
            await interaction.response.edit_message(content="rerolling", view=None)

    async with running(client, fd):
        sent = await client.get_channel(channel.id).send("result", view=Reroll())  # type: ignore[union-attr]
        ix = await fd.click(channel, alice, sent.id, "wan:reroll:42")
        await ix.wait_response()
        with pytest.raises(ValueError, match="no component"):
            await fd.click(channel, alice, sent.id, "nope")
    assert clicked == [alice.id]
    assert ix.response_type == 7
    assert ix.payload["data"] == {"custom_id": "wan:reroll:42", "component_type": 2, "id": 2}
    msg = fd.message(sent.id)
    assert msg is not None and msg["content"] == "rerolling" and msg["components"] == []


async def test_modal_round_trip(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)

    class PromptModal(discord.ui.Modal, title="New prompt"):
        prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
            label="Prompt", custom_id="prompt"
        )

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"got {self.prompt.value}", ephemeral=True)

    @tree.command(name="prompt", description="Ask for a prompt")
    async def prompt(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(PromptModal(custom_id="wan:prompt"))

    async with running(client, fd):
        await tree.sync()
        opener = await fd.slash(guild, channel, alice, "prompt")
        await opener.wait_response()
        assert opener.response_type == 9 and opener.modal is not None
        assert opener.modal["title"] == "New prompt"
        ix = await fd.submit_modal(channel, alice, "wan:prompt", {"prompt": "a red fox"})
        reply = await ix.wait_original()
    assert reply["content"] == "got a red fox" and ix.ephemeral


async def test_message_context_menu_gets_the_target_without_content_intent(
    discord_endpoints: FakeDiscord,
) -> None:
    fd = discord_endpoints
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)
    targets: list[tuple[str, list[str]]] = []

    async def edit_with_wan(interaction: discord.Interaction, message: discord.Message) -> None:
        targets.append((message.content, [a.filename for a in message.attachments]))
        await interaction.response.send_message("queued")

    tree.add_command(app_commands.ContextMenu(name="Edit with Wan", callback=edit_with_wan))
    async with running(client, fd):
        await tree.sync()
        posted = await fd.post_user_message(
            channel, alice, "my cat", attachments=[fd.add_cdn_file(PNG_1x1, "cat.png")]
        )
        ix = await fd.context_menu(guild, channel, alice, "Edit with Wan", target_message=posted)
        reply = await ix.wait_original()
    assert targets == [("my cat", ["cat.png"])]
    assert reply["type"] == 23 and reply["content"] == "queued"


async def test_expired_interaction_token_raises_50027(discord_endpoints: FakeDiscord) -> None:
    """Tokens die on the fake's clock after `interaction_token_ttl`, and the client's
    `Interaction.expires_at` names the same instant (the id is dated to match)."""
    fd = discord_endpoints
    fd.interaction_token_ttl = 0.5
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)
    token_dead = asyncio.Event()
    seen: list[discord.Interaction] = []
    errors: list[discord.HTTPException] = []

    @tree.command(name="slow", description="A slow job")
    async def slow(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.defer()
        await interaction.edit_original_response(content="working")  # alive: accepted
        await token_dead.wait()
        try:
            await interaction.followup.send("too late")
        except discord.HTTPException as exc:
            errors.append(exc)

    async with running(client, fd):
        await tree.sync()
        ix = await fd.slash(guild, channel, alice, "slow")
        await ix.wait_original(lambda m: m["content"] == "working")
        await fd.wait_until(lambda: not ix.token_alive, timeout=5)
        token_dead.set()
        await fd.wait_until(lambda: errors)
    assert errors[0].status == 401 and errors[0].code == 50027
    assert ix.dead_token_calls == 1
    expires = seen[0].expires_at.timestamp()
    assert abs(expires - ix.token_expires_at) < 0.01
    assert seen[0].is_expired()
    assert ix.original is not None and ix.original["content"] == "working"  # never replaced


async def test_default_token_lives_fifteen_minutes(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)
    seen: list[discord.Interaction] = []

    @tree.command(name="quick", description="Answers at once")
    async def quick(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.send_message("hi")

    async with running(client, fd):
        await tree.sync()
        ix = await fd.slash(guild, channel, alice, "quick")
        await ix.wait_original()
    assert ix.token_expires_at - ix.created_at == 900.0
    assert abs(seen[0].expires_at.timestamp() - ix.token_expires_at) < 0.01
    assert ix.token_alive and not seen[0].is_expired()


async def test_late_or_repeated_acks_are_refused(discord_endpoints: FakeDiscord) -> None:
    fd = discord_endpoints
    fd.interaction_responder.ack_timeout = 0.0  # every callback arrives "after 3 s"
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)
    errors: list[discord.HTTPException] = []

    @tree.command(name="late", description="Acks too late")
    async def late(interaction: discord.Interaction) -> None:
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            errors.append(exc)

    async with running(client, fd):
        await tree.sync()
        ix = await fd.slash(guild, channel, alice, "late")
        await fd.wait_until(lambda: errors)
    assert isinstance(errors[0], discord.NotFound) and errors[0].code == 10062
    assert not ix.responded and ix.rejected_callbacks == [{"type": 5}]


async def test_first_followup_after_defer_replaces_the_placeholder(
    discord_endpoints: FakeDiscord,
) -> None:
    fd = discord_endpoints
    alice, guild, channel = alice_in_a_guild(fd)
    client = make_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="two", description="Two messages")
    async def two(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send("first")
        await interaction.followup.send("second")

    async with running(client, fd):
        await tree.sync()
        ix = await fd.slash(guild, channel, alice, "two")
        await ix.wait_for(lambda ix: len(ix.followups) == 1)
    assert ix.original is not None and ix.original["content"] == "first"
    assert [m["content"] for m in ix.followups] == ["second"]
    assert [m["content"] for m in ix.messages] == ["first", "second"]
    assert [m["content"] for m in fd.messages(channel)] == ["first", "second"]
