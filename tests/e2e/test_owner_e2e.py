"""The owner's bounds end to end: the real bot and its sqlite file, the fake Discord, the emulator.

Each test says which promise it guards. The bot-wide cap, the server ceiling, the allowlist, DMs, the
pause (also across a restart), owner-only commands, role limits, and usage numbers that equal what the
emulator billed, read three ways (/wanowner usage, /wanquota usage, `python -m bot usage`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.sandbox import Emulator, EmulatorConfig
from bot.sandbox.tasks import TaskStatus
from cogs.wanbot import WanBot
from tests.support.fake_discord import Channel, FakeInteraction, Guild, User
from tests.support.first_run import base_env, run_cli
from tests.support.harness import API_KEY, World, embed_text, png, wait_until

NOTHING = "Nothing was charged"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """Short task times and no create-rate limit: these tests are about the bounds, not Wan."""
    config = EmulatorConfig(
        api_keys={API_KEY}, pending_seconds=0.01, running_seconds=0.05, submit_rps=None
    )
    async with Emulator(config) as emu:
        yield emu


def bot(w: World) -> WanBot:
    return w.bots[-1]


def text_of(ix: FakeInteraction) -> str:
    """Everything the interaction's user was shown: response, original, follow-ups."""
    parts = [ix.response_data or {}, ix.original or {}, *ix.followups]
    return "\n".join(f"{p.get('content') or ''}\n{embed_text(p)}" for p in parts)


async def edit(
    w: World,
    user: User,
    prompt: str = "make it blue",
    *,
    where: tuple[Guild | None, Channel] | None = None,
    count: int = 1,
) -> tuple[FakeInteraction, str | None]:
    """/wanedit (in the test server unless `where`); (interaction, None) once its job is done,
    or (interaction, the refusal)."""
    guild, channel = where or (w.guild, w.channel)
    options = {"prompt": prompt, "image": w.upload(), "count": count}
    ix = await w.fd.slash(guild, channel, user, "wanedit", options)

    def ended(i: FakeInteraction) -> bool:
        return i.response_type == 4 or bool(i.followups) or "Done" in embed_text(i.original)

    await ix.wait_for(ended, timeout=30)
    refused = ix.response_type == 4 or bool(ix.followups)
    return ix, text_of(ix) if refused else None


async def command(
    w: World,
    user: User,
    name: str,
    sub: str,
    /,
    *,
    guild: Guild | None = None,
    channel: Channel | None = None,
    **options: Any,
) -> str:
    """Run `/name sub` (in the user's DM with the bot unless a channel is given); its answer."""
    if channel is None:
        channel = w.fd.dm_channel(user)
    ix = await w.fd.slash(guild, channel, user, name, options, subcommand=sub)
    await ix.wait_response()
    if ix.response_type == 5:
        await ix.wait_original(lambda m: bool(m.get("embeds") or m.get("content")))
    assert ix.ephemeral, f"/{name} {sub} answered publicly"
    return text_of(ix)


def billed_by_emulator(emu: Emulator, task_ids: set[str] | None = None) -> int:
    return sum(
        t.image_count
        for t in emu.tasks.values()
        if t.status == TaskStatus.SUCCEEDED and (task_ids is None or t.task_id in task_ids)
    )


def second_server(w: World, name: str = "Second server") -> tuple[Guild, Channel]:
    guild = w.fd.add_guild(name, owner=w.fd.add_user(f"{name}-owner"))
    return guild, w.fd.add_text_channel(guild, "general")


# ---- the bot-wide cap ---------------------------------------------------------------------------


async def test_bot_wide_cap_holds_under_50_concurrent_requests_in_two_servers(w_cap: World) -> None:
    """50 members in two servers ask at once; the bot-wide cap (30) grants exactly 30 images."""
    w, (other, other_channel), members = w_cap.world, w_cap.other, w_cap.members
    results = await asyncio.gather(
        *(
            edit(w, m, where=(other, other_channel) if i % 2 else None)
            for i, m in enumerate(members)
        )
    )
    refusals = [text for _, text in results if text is not None]
    assert len(refusals) == 20 and w.emu.created_count == 30
    for text in refusals:
        assert "bot's daily limit for everyone (30 images) is used up" in text
        assert re.search(r"<t:\d+:R>", text) and NOTHING in text
    report = await bot(w).store.usage_report(None, days=1)
    assert report.global_used == 30 and report.today.refused == {"global_cap": 20}


class CapWorld:
    def __init__(self, world: World, other: tuple[Guild, Channel], members: list[User]) -> None:
        self.world, self.other, self.members = world, other, members


@pytest.fixture
async def w_cap(world: World) -> CapWorld:
    other = second_server(world)
    members = []
    for i in range(50):
        user = world.fd.add_user(f"member{i}")
        world.fd.add_member(world.guild if i % 2 == 0 else other[0], user, permissions=0)
        members.append(user)
    await world.start_bot(WAN_GLOBAL_DAILY_LIMIT="30", WAN_MAX_CONCURRENT_TASKS="5")
    return CapWorld(world, other, members)


# ---- the server ceiling and role limits ---------------------------------------------------------


async def test_server_ceiling_stops_admins_and_bounds_the_server(world: World) -> None:
    """WAN_SERVER_DAILY_LIMIT=3: no admin command can give more, and the server stops at 3."""
    w = world
    await w.start_bot(WAN_SERVER_DAILY_LIMIT="3")
    artists = w.fd.add_role(w.guild, "Artists")
    here = {"guild": w.guild, "channel": w.channel}
    for sub, options in (
        ("default", {"limit": 4}),
        ("set", {"user": w.alice, "limit": 4}),
        ("grant", {"user": w.alice, "images": 4}),
        ("server", {"limit": 4}),
        ("role", {"role": artists, "limit": 4}),
    ):
        text = await command(w, w.admin, "wanquota", sub, **here, **options)
        assert "at most 3 images per server per day" in text, sub
        assert "Nothing was changed" in text, sub
    assert await bot(w).store.audit_log(w.guild.id) == []
    shown = await command(w, w.admin, "wanquota", "show", **here)
    assert "Bot owner's ceiling: 3 images/day (WAN_SERVER_DAILY_LIMIT), 3 left today" in shown
    assert "server 2" not in shown
    ok = await command(w, w.admin, "wanquota", "server", **here, limit=0)
    assert "still allows at most 3 images a day here" in ok

    assert (await edit(w, w.alice, count=2))[1] is None
    _, refusal = await edit(w, w.bob, count=2)
    assert refusal is not None
    assert (
        "daily limit for this server (3 images, set by the bot's owner) has 1 image left" in refusal
    )
    assert (await edit(w, w.bob))[1] is None
    assert w.emu.created_count == 2


async def test_role_limits_apply_to_members_with_the_role(world: World) -> None:
    """/wanquota role: members with the role get its limit (the highest of theirs); show says why."""
    w = world
    artists = w.fd.add_role(w.guild, "Artists")
    helpers = w.fd.add_role(w.guild, "Helpers")
    w.fd.add_member(w.guild, w.alice, roles=[artists, helpers])
    await w.start_bot(WAN_DEFAULT_DAILY_LIMIT="1")
    here = {"guild": w.guild, "channel": w.channel}
    echo = await command(w, w.admin, "wanquota", "role", **here, role=artists, limit=3)
    assert f"Daily limit for <@&{artists.id}>: not set → **3**" in echo
    await command(w, w.admin, "wanquota", "role", **here, role=helpers, limit=2)
    shown = await command(w, w.alice, "wanquota", "show", **here)
    assert f"Daily limit: 3 (the highest of their roles' limits: <@&{artists.id}>)" in shown
    assert (await edit(w, w.alice, count=3))[1] is None  # more than the default of 1
    _, refusal = await edit(w, w.alice)
    assert refusal is not None and "your 3 images (your role's limit) for today" in refusal
    assert "Daily limit: 1 (bot default)" in await command(w, w.bob, "wanquota", "show", **here)
    # A member's own limit wins over any role.
    await command(w, w.admin, "wanquota", "set", **here, user=w.alice, limit=4)
    assert (await edit(w, w.alice))[1] is None
    log_text = await command(w, w.admin, "wanquota", "log", **here)
    assert f"set <@&{artists.id}>'s daily limit: not set → 3" in log_text


# ---- where the bot works ------------------------------------------------------------------------


async def test_a_server_off_the_allowlist_gets_nothing_and_is_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """WAN_ALLOWED_GUILDS: every command and reply edit elsewhere is refused, no task created."""
    w = world
    allowed, allowed_channel = second_server(w, "Allowed")
    w.fd.add_member(allowed, w.alice, permissions=0)
    caplog.set_level(logging.WARNING, logger="bot.owner")
    await w.start_bot(WAN_ALLOWED_GUILDS=str(allowed.id))
    await wait_until(lambda: f"({w.guild.id}) is not in WAN_ALLOWED_GUILDS" in caplog.text)
    assert f"({allowed.id})" not in caplog.text

    _, refusal = await edit(w, w.alice)
    assert refusal is not None and "hasn't enabled it in this server" in refusal
    assert NOTHING in refusal
    quota = await command(
        w, w.admin, "wanquota", "default", guild=w.guild, channel=w.channel, limit=1
    )
    assert "hasn't enabled it in this server" in quota and "Nothing was changed" in quota
    original = await w.fd.post_user_message(
        w.channel, w.bob, "my cat", attachments=[("cat.png", png())]
    )
    request = await w.fd.post_user_message(
        w.channel, w.alice, f"<@{w.fd.bot_user.id}> make it red", reference=original
    )
    answer = await w.fd.wait_for_message(
        w.channel, lambda m: (m.get("message_reference") or {}).get("message_id") == request["id"]
    )
    assert "hasn't enabled it in this server" in answer["content"] and NOTHING in answer["content"]
    assert w.emu.created_count == 0
    assert await bot(w).store.audit_log(w.guild.id) == []
    assert (await edit(w, w.alice, where=(allowed, allowed_channel)))[1] is None

    # Invited somewhere else while running: logged at the join.
    joined, _ = second_server(w, "Stranger")
    await wait_until(lambda: f"joined: server Stranger ({joined.id})" in caplog.text)


async def test_dms_off_and_the_dm_limit(world: World) -> None:
    """WAN_DM_DAILY_LIMIT: its images per member in DMs; 0 turns /wanedit in DMs off."""
    w = world
    dm = w.fd.dm_channel(w.alice)
    bot_ = await w.start_bot(WAN_DM_DAILY_LIMIT="1")
    assert (await edit(w, w.alice, where=(None, dm)))[1] is None
    _, refusal = await edit(w, w.alice, where=(None, dm))
    assert refusal is not None and "the limit for DMs with the bot" in refusal
    await w.stop_bot(bot_)

    await w.start_bot(WAN_DM_DAILY_LIMIT="0")
    _, refusal = await edit(w, w.bob, where=(None, w.fd.dm_channel(w.bob)))
    assert refusal is not None and "turned off image edits in DMs" in refusal and NOTHING in refusal
    assert w.emu.created_count == 1
    assert (await edit(w, w.bob))[1] is None  # servers still work


# ---- the owner's commands -----------------------------------------------------------------------


async def test_pause_refuses_new_jobs_lets_running_ones_finish_and_survives_a_restart(
    world: World,
) -> None:
    """/wanowner pause: a job in flight finishes (across a restart too); new requests refused."""
    w = world
    owner = w.fd.world.owner
    first = await w.start_bot()
    running = await w.wanedit(w.alice, "slowly [slow:1.5]")
    await running.wait_original(lambda m: "Wan is editing" in embed_text(m))
    paused = await command(w, owner, "wanowner", "pause")
    assert "Paused" in paused and "survives a restart" in paused
    _, refusal = await edit(w, w.bob)
    assert refusal is not None and "paused new Wan edits" in refusal and NOTHING in refusal

    await w.stop_bot(first)  # the slow job is still running at Wan
    await w.start_bot()
    # The resumed job finishes and is delivered; the pause still holds for new requests.
    result = await w.result_message(w.alice, timeout=20)
    assert result["attachments"]
    _, refusal = await edit(w, w.bob)
    assert refusal is not None and "paused" in refusal
    assert "Resumed" in await command(w, owner, "wanowner", "resume")
    assert (await edit(w, w.bob))[1] is None
    assert w.emu.created_count == 2


async def test_owner_commands_refuse_everyone_but_the_owners(world: World) -> None:
    """Server owners and admins are not the bot's owner: refused, nothing changed. The team's
    admins and developers and WANBOT_OWNER_IDS are owners; a read-only team member is not."""
    w = world
    captain, dev, viewer, friend = (
        w.fd.add_user(n) for n in ("captain", "dev", "viewer", "friend")
    )
    w.fd.set_team("Crew", captain, [(dev, "developer"), (viewer, "read_only")])
    await w.start_bot(WANBOT_OWNER_IDS=str(friend.id))
    (group,) = [c for c in w.fd.commands() if c["name"] == "wanowner"]
    assert group["contexts"] == [1]  # DMs with the bot only
    assert {o["name"] for o in group["options"]} == {"usage", "pause", "resume", "cap"}
    for stranger in (w.admin, viewer, w.fd.world.owner):  # w.admin owns the test server
        for sub, options in (("pause", {}), ("cap", {"limit": 1}), ("usage", {})):
            text = await command(w, stranger, "wanowner", sub, **options)
            assert "Only the bot's owner" in text and "Nothing was changed" in text, sub
    state = await bot(w).store.bot_state()
    assert (state.paused, state.global_cap) == (False, 100)
    assert await bot(w).store.audit_log(-1) == []
    for owner in (captain, dev, friend):
        assert "Wan usage across the bot" in await command(w, owner, "wanowner", "usage")
    text = await command(w, dev, "wanowner", "cap", limit=1)
    assert "100 images/day → **1 image/day**" in text
    assert (await edit(w, w.alice))[1] is None
    _, refusal = await edit(w, w.bob)
    assert refusal is not None and "bot's daily limit for everyone (1 image) is used up" in refusal
    usage = await command(w, captain, "wanowner", "usage")
    assert "Refused today (images): 1 by the bot-wide cap" in usage
    assert "Test server: 1 billed" in usage and "refused 1 by the bot-wide cap" in usage


async def test_owner_commands_in_the_dev_server_and_the_cap_persists(world: World) -> None:
    """With WANBOT_DEV_GUILD, /wanowner lives in that server only; the run-time cap outlives a
    restart and an empty `cap` goes back to WAN_GLOBAL_DAILY_LIMIT."""
    w = world
    owner = w.fd.world.owner
    w.fd.add_member(w.guild, owner, permissions=0)
    env = {"WANBOT_DEV_GUILD": str(w.guild.id), "WAN_GLOBAL_DAILY_LIMIT": "7"}
    first = await w.start_bot(**env)
    assert any(c["name"] == "wanowner" for c in w.fd.commands(w.guild.id))
    assert not any(c["name"] == "wanowner" for c in w.fd.commands())
    here = {"guild": w.guild, "channel": w.channel}
    assert "Only the bot's owner" in await command(w, w.admin, "wanowner", "cap", **here, limit=0)
    assert "7 images/day → **no cap**" in await command(
        w, owner, "wanowner", "cap", **here, limit=0
    )
    await w.stop_bot(first)
    await w.start_bot(**env)
    assert (await bot(w).store.bot_state()).global_cap is None
    text = await command(w, owner, "wanowner", "cap", **here)
    assert "no cap → **7 images/day** (from WAN_GLOBAL_DAILY_LIMIT)" in text


# ---- usage and cost -----------------------------------------------------------------------------


async def test_usage_numbers_equal_what_the_emulator_billed(world: World) -> None:
    """Cost is images Wan billed × the price: read by the owner, by a server's admins, and by
    `python -m bot usage` from a second process while the bot runs."""
    w = world
    other, other_channel = second_server(w)
    w.fd.add_member(other, w.alice, permissions=0)
    env = {"WAN_PRICE_PER_IMAGE": "0.5 USD"}
    await w.start_bot(**env)
    assert (await edit(w, w.alice, count=2))[1] is None
    assert (await edit(w, w.bob, "half of it [fail:partial]", count=2))[1] is None
    assert (await edit(w, w.alice, where=(other, other_channel)))[1] is None
    assert (await edit(w, w.users[2], where=(None, w.fd.dm_channel(w.users[2]))))[1] is None
    total = billed_by_emulator(w.emu)
    assert total == 5  # 2 + 1 of 2 + 1 + 1: the partial result is billed for what came back

    owner_view = await command(w, w.fd.world.owner, "wanowner", "usage")
    assert f"**{total} images** billed by Wan: **2.50 USD**" in owner_view
    assert "Test server: 3 billed (1.50 USD)" in owner_view
    assert "Second server: 1 billed (0.50 USD)" in owner_view and "DMs: 1 billed" in owner_view

    jobs = [await bot(w).store.get_job(i) for i in range(1, 5)]
    here_tasks = {j.task_id for j in jobs if j is not None and j.scope == w.guild.id and j.task_id}
    here = billed_by_emulator(w.emu, here_tasks)
    admin_view = await command(w, w.admin, "wanquota", "usage", guild=w.guild, channel=w.channel)
    assert f"Today: **{here} images** billed by Wan, cost **1.50 USD**" in admin_view
    assert f"<@{w.alice.id}>: 2" in admin_view and f"<@{w.bob.id}>: 1" in admin_view
    assert "Last 7 days: 3 images, 1.50 USD" in admin_view
    refused = await command(w, w.alice, "wanquota", "usage", guild=w.guild, channel=w.channel)
    assert "Manage Server" in refused

    cli = await run_cli(
        "usage",
        env=base_env(
            DATABASE_URL=w.settings().database_url,
            WAN_PRICE_PER_IMAGE="0.5 USD",
            DASHSCOPE_BASE_URL=w.emu.base_url,
        ),
        cwd=w.db_path.parent,
    )
    assert cli.returncode == 0, cli.output
    assert f"{total} image(s) billed by Wan, cost 2.50 USD" in cli.stdout
    assert f"server {w.guild.id}: 3 billed (1.50 USD)" in cli.stdout
