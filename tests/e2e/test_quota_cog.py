"""/wanquota end to end: the real bot and its sqlite store, driven through the fake Discord.

Every admin change is observed twice: in `/wanquota show`, and in `/wanedit` being allowed or refused.
The bot runs with a default of 2 images per member per day.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.sandbox import Emulator, EmulatorConfig
from cogs.wanbot import WanBot
from tests.support.fake_discord import Channel, FakeInteraction, Guild, User
from tests.support.harness import API_KEY, World, embed_text, wait_until

DEFAULT_LIMIT = 2
TIMESTAMP = re.compile(r"<t:\d+:R>")


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """The shared emulator, with the shortest task times: these tests are about quotas, not Wan."""
    config = EmulatorConfig(api_keys={API_KEY}, pending_seconds=0.01, running_seconds=0.02)
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def w(world: World) -> World:
    await world.start_bot(WAN_DEFAULT_DAILY_LIMIT=str(DEFAULT_LIMIT))
    return world


def bot(w: World) -> WanBot:
    return w.bots[-1]


# ---- acting ---------------------------------------------------------------------------------


async def quota(
    w: World,
    actor: User,
    sub: str,
    *,
    guild: Guild | None = None,
    channel: Channel | None = None,
    **options: Any,
) -> FakeInteraction:
    """Run `/wanquota <sub>` as `actor` and wait for its answer."""
    if guild is None and channel is None:
        guild, channel = w.guild, w.channel
    ix = await w.fd.slash(guild, channel, actor, "wanquota", options, subcommand=sub)
    await ix.wait_response()
    if ix.response_type == 5:  # deferred: wait for the real answer
        await ix.wait_original()
    return ix


def answer(ix: FakeInteraction) -> str:
    """The text (content and embeds) of the private answer; fails if it was not ephemeral."""
    assert ix.ephemeral, f"/{ix.command_name} answered publicly"
    message = ix.original if ix.response_type == 5 else ix.response_data
    assert message is not None
    return f"{message.get('content') or ''}\n{embed_text(message)}"


def private_text(ix: FakeInteraction) -> str:
    """The ephemeral follow-ups of a deferred interaction."""
    assert all(f["flags"] & 64 for f in ix.followups)
    return "\n".join(f.get("content") or "" for f in ix.followups)


def fields(ix: FakeInteraction) -> dict[str, str]:
    """The embed fields of a deferred answer, by name."""
    message = ix.original
    assert ix.ephemeral and message is not None
    return {f["name"]: f["value"] for e in message["embeds"] for f in e.get("fields", [])}


async def show(w: World, actor: User, user: User | None = None, **where: Any) -> dict[str, str]:
    options = {"user": user} if user is not None else {}
    return fields(await quota(w, actor, "show", **options, **where))


async def settled(w: World, user: User, scope: int) -> None:
    async def no_holds() -> bool:
        return (await bot(w).store.quota_status(scope, user.id)).held == 0

    await wait_until(no_holds)


async def edit(
    w: World,
    user: User,
    count: int = 1,
    *,
    guild: Guild | None = None,
    channel: Channel | None = None,
    prompt: str = "make it blue",
) -> str | None:
    """Run /wanedit; return None when it was allowed (and finished), else the refusal text."""
    ix = await w.wanedit(user, prompt, count=count, guild=guild, channel=channel)

    def outcome(i: FakeInteraction) -> bool:
        return i.response_type == 4 or bool(i.followups) or "Done" in embed_text(i.original)

    await ix.wait_for(outcome, timeout=10)
    if ix.response_type == 4 or ix.followups:
        return answer(ix) if ix.response_type == 4 else private_text(ix)
    await settled(w, user, (guild or w.guild).id)
    return None


async def refused(w: World, user: User, count: int = 1, **kwargs: Any) -> str:
    """Run /wanedit expecting a quota refusal: its text, after checking that it is one (it says
    nothing was charged) and that nothing reached Wan. A job that ran, or failed for another
    reason, does not pass."""
    before = w.emu.created_count
    text = await edit(w, user, count, **kwargs)
    assert text is not None, "the request was allowed"
    assert ("Nothing was charged" in text and TIMESTAMP.search(text)) or "blocked" in text, text
    assert w.emu.created_count == before
    return text


# ---- members ----------------------------------------------------------------------------------


async def test_show_counts_what_wanedit_spends_and_holds(w: World) -> None:
    before = await show(w, w.alice)
    assert before["Daily limit"] == f"{DEFAULT_LIMIT} (bot default)"
    assert before["Used today"] == "0" and before["Held by jobs in progress"] == "0"
    assert before["Remaining now"] == "**2**"
    assert TIMESTAMP.fullmatch(before["Daily allowance resets"])
    assert "Server today" not in before  # server totals are for admins only

    # A job in flight holds its image: shown as held, not yet used.
    w.emu.hold("running")  # the job stays in flight until `show` has looked
    ix = await w.wanedit(w.alice, "slowly")
    await ix.wait_original(lambda m: "Wan is editing" in embed_text(m))
    during = await show(w, w.alice)
    assert during["Held by jobs in progress"] == "1" and during["Remaining now"] == "**1**"
    w.emu.release("running")
    await ix.wait_original(lambda m: "Done" in embed_text(m))
    await settled(w, w.alice, w.guild.id)

    short = await refused(w, w.alice, count=2)
    assert "You have 1 image left today and this needs 2" in short
    assert TIMESTAMP.search(short) and "Nothing was charged" in short
    assert await edit(w, w.alice) is None
    after = await show(w, w.alice)
    assert after["Used today"] == "2" and after["Remaining now"] == "**0**"

    refusal = await refused(w, w.alice)
    # Which limit, what is left, when it resets, and that it cost nothing.
    assert f"your {DEFAULT_LIMIT} images for today" in refusal
    assert TIMESTAMP.search(refusal) and "Nothing was charged" in refusal
    assert (await show(w, w.alice))["Used today"] == "2"


async def test_set_user_limit_allows_blocks_and_clears(w: World) -> None:
    echo = answer(await quota(w, w.admin, "set", user=w.alice, limit=3))
    assert "not set → **3**" in echo and "3 left today" in echo
    assert (await show(w, w.alice))["Daily limit"] == "3 (set for this member)"
    assert await edit(w, w.alice, count=3) is None
    assert "You've used your 3 images for today." in await refused(w, w.alice)

    echo = answer(await quota(w, w.admin, "set", user=w.alice, limit=0))
    assert "3 → **0 (blocked)**" in echo and "blocked" in echo
    assert "Blocked" in answer(await quota(w, w.alice, "show"))
    await quota(w, w.admin, "reset", user=w.alice)  # even with nothing used, 0 stays a block
    refusal = await refused(w, w.alice)
    assert "blocked" in refusal

    echo = answer(await quota(w, w.admin, "set", user=w.alice))
    assert "0 (blocked) → **not set (server default applies)**" in echo
    shown = await show(w, w.alice)
    assert shown["Daily limit"] == f"{DEFAULT_LIMIT} (bot default)"
    assert shown["Remaining now"] == "**2**"  # the reset above cleared today's 3
    assert await edit(w, w.alice) is None

    # Bob was never touched.
    assert (await show(w, w.bob))["Daily limit"] == f"{DEFAULT_LIMIT} (bot default)"
    log = answer(await quota(w, w.admin, "log"))
    lines = [line for line in log.splitlines() if w.admin.mention in line]
    assert len(lines) == 4  # newest first
    assert "not set → 3" in lines[-1]
    assert "0 (blocked) → not set" in lines[0]
    assert all(w.alice.mention in line for line in lines)


async def test_default_limit_applies_to_members_without_their_own(w: World) -> None:
    await quota(w, w.admin, "set", user=w.alice, limit=3)
    echo = answer(await quota(w, w.admin, "default", limit=1))
    assert f"not set (bot default {DEFAULT_LIMIT}) → **1**" in echo

    assert (await show(w, w.bob))["Daily limit"] == "1 (server default)"
    assert (await show(w, w.alice))["Daily limit"] == "3 (set for this member)"
    assert await edit(w, w.bob) is None
    refusal = await refused(w, w.bob)
    assert "your 1 image for today" in refusal
    assert await edit(w, w.alice, count=2) is None  # her own 3 still apply

    echo = answer(await quota(w, w.admin, "default"))
    assert f"1 → **not set (bot default {DEFAULT_LIMIT})**" in echo
    assert (await show(w, w.bob))["Remaining now"] == "**1**"
    assert await edit(w, w.bob) is None


async def test_grant_adds_extra_images_and_reset_clears_today(w: World) -> None:
    assert await edit(w, w.alice, count=2) is None
    assert "You've used your 2 images for today." in await refused(w, w.alice)

    echo = answer(await quota(w, w.admin, "grant", user=w.alice, images=1))
    assert "extra images: 0 → **1**" in echo
    shown = await show(w, w.alice)
    assert shown["Extra images"].startswith("1") and shown["Remaining now"] == "**1**"
    assert await edit(w, w.alice) is None
    shown = await show(w, w.alice)
    assert shown["Used today"] == "3 (1 from extra images)"
    assert shown["Extra images"].startswith("0") and shown["Remaining now"] == "**0**"
    assert "You've used your 2 images for today." in await refused(w, w.alice)

    echo = answer(await quota(w, w.admin, "reset", user=w.alice))
    assert "used today: 3 → **0**" in echo
    shown = await show(w, w.alice)
    assert shown["Used today"] == "0" and shown["Remaining now"] == "**2**"
    assert await edit(w, w.alice) is None


async def test_server_cap_bounds_everyone_and_zero_turns_it_off(w: World) -> None:
    echo = answer(await quota(w, w.admin, "server", limit=2))
    assert "off → **2 images/day**" in echo
    assert await edit(w, w.alice, count=2) is None
    refusal = await refused(w, w.bob)
    assert "daily limit for this server (2 images) is used up" in refusal
    assert TIMESTAMP.search(refusal)

    # An admin's own `show` adds the server's totals and cap.
    own = await show(w, w.admin)
    assert own["Server today"].startswith("2 used, 0 held")
    assert own["Server daily cap"] == "2 images/day, 0 left today"
    # Bob's own allowance is untouched; what stops him is named.
    assert (await show(w, w.bob))["Remaining now"] == "**0** (limited by this server's daily cap)"

    echo = answer(await quota(w, w.admin, "server", limit=0))
    assert "2 images/day → **off**" in echo
    assert (await show(w, w.admin))["Server daily cap"] == "off"
    assert await edit(w, w.bob) is None


# ---- who may do what ----------------------------------------------------------------------------


ADMIN_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("set", {"limit": 0}),
    ("default", {"limit": 0}),
    ("grant", {"images": 5}),
    ("reset", {}),
    ("server", {"limit": 1}),
    ("log", {}),
    ("show", {}),  # someone else's
]


async def test_members_without_manage_server_change_nothing(w: World) -> None:
    assert await edit(w, w.bob) is None  # something for `reset` to clear
    for sub, options in ADMIN_CALLS:
        if sub in ("set", "grant", "reset", "show"):
            options = {"user": w.bob, **options}
        ix = await quota(w, w.alice, sub, **options)
        assert ix.response_type == 4, sub  # refused at once, before any deferral
        text = answer(ix)
        assert "**Manage Server** permission" in text, sub
        assert "Nothing was changed" in text, sub

    assert await bot(w).store.audit_log(w.guild.id) == []
    assert "No admin changes yet" in answer(await quota(w, w.admin, "log"))
    shown = await show(w, w.admin, w.bob)
    assert shown["Daily limit"] == f"{DEFAULT_LIMIT} (bot default)"
    assert shown["Used today"] == "1" and shown["Extra images"].startswith("0")
    assert shown["Server daily cap"] == "off"
    assert await edit(w, w.bob) is None

    # Manage Server from a role (not the owner) is enough.
    mod = w.add_member("mod", admin=True)
    assert "not set → **0 (blocked)**" in answer(await quota(w, mod, "set", user=w.bob, limit=0))
    assert (await show(w, mod, w.bob))["Remaining now"] == "**0**"


async def test_limits_in_one_server_do_not_touch_another(world: World) -> None:
    w = world
    other = w.fd.add_guild("Other server", owner=w.fd.add_user("other-owner"))
    other_channel = w.fd.add_text_channel(other, "general")
    other_admin = w.fd.world.users[other.owner_id]
    w.fd.add_member(other, w.alice, permissions=0)
    w.fd.add_member(other, w.admin, permissions=0)  # an admin at home, a plain member there
    await w.start_bot(WAN_DEFAULT_DAILY_LIMIT=str(DEFAULT_LIMIT))
    there = {"guild": other, "channel": other_channel}

    await quota(w, w.admin, "set", user=w.alice, limit=0)
    await quota(w, w.admin, "server", limit=1)
    await quota(w, w.admin, "default", limit=1)
    await quota(w, w.admin, "grant", user=w.alice, images=3)

    shown = await show(w, w.alice, **there)
    assert shown["Daily limit"] == f"{DEFAULT_LIMIT} (bot default)"
    assert shown["Extra images"].startswith("0") and shown["Remaining now"] == "**2**"
    assert await edit(w, w.alice, count=2, **there) is None
    assert "You're blocked from using Wan in this server." in await refused(w, w.alice)
    admin_view = await show(w, other_admin, **there)
    assert admin_view["Server daily cap"] == "off"
    assert admin_view["Server today"].startswith("2 used")
    assert "No admin changes yet" in answer(await quota(w, other_admin, "log", **there))
    # The first server's admin has no say in the other one.
    ix = await quota(w, w.admin, "show", user=w.alice, **there)
    assert ix.response_type == 4 and "Manage Server" in answer(ix)
    assert (await show(w, w.admin, w.alice))["Used today"] == "0"


async def test_two_admins_changing_one_member_at_once(w: World) -> None:
    mod = w.add_member("mod", admin=True)

    async def both(sub: str, first: dict[str, Any], second: dict[str, Any]) -> list[str]:
        sent = await asyncio.gather(
            w.fd.slash(w.guild, w.channel, w.admin, "wanquota", first, subcommand=sub),
            w.fd.slash(w.guild, w.channel, mod, "wanquota", second, subcommand=sub),
        )
        return [answer(await ix.wait_for(lambda i: i.original and not i.loading)) for ix in sent]

    echoes = await both("set", {"user": w.alice, "limit": 5}, {"user": w.alice, "limit": 7})
    entries = sorted(await bot(w).store.audit_log(w.guild.id), key=lambda e: e.id)
    assert [e.action for e in entries] == ["set_user_limit"] * 2
    first, second = entries
    # Serialised, not lost: the second change saw the first one's value.
    assert first.old is None and second.old == first.new and {first.new, second.new} == {5, 7}
    assert {first.actor, second.actor} == {w.admin.id, mod.id}
    assert any(f"not set → **{first.new}**" in e for e in echoes)
    assert any(f"{first.new} → **{second.new}**" in e for e in echoes)
    assert (await show(w, w.alice))["Daily limit"] == f"{second.new} (set for this member)"

    echoes = await both("grant", {"user": w.alice, "images": 3}, {"user": w.alice, "images": 4})
    assert any("extra images: 0 → **" in e for e in echoes)
    assert any("→ **7**" in e for e in echoes)  # no grant lost
    assert (await show(w, w.alice))["Extra images"].startswith("7")
    assert await edit(w, w.alice, count=4) is None
    assert len(await bot(w).store.audit_log(w.guild.id)) == 4


# ---- DMs and the command's shape ----------------------------------------------------------------


async def test_show_works_in_dms_and_admin_commands_do_not(w: World) -> None:
    dm = w.fd.dm_channel(w.alice)
    ix = await quota(w, w.alice, "show", guild=None, channel=dm)
    assert "in DMs" in answer(ix)
    assert fields(ix)["Daily limit"] == "3 (the bot owner's limit for DMs)"  # WAN_DM_DAILY_LIMIT
    for sub, options in (("server", {"limit": 5}), ("log", {}), ("show", {"user": w.bob})):
        refused = await quota(w, w.alice, sub, guild=None, channel=dm, **options)
        assert refused.response_type == 4
        assert "only in a server" in answer(refused)
    assert await bot(w).store.audit_log(0) == []


async def test_registered_options_carry_their_ranges(w: World) -> None:
    (group,) = [c for c in w.fd.commands() if c["name"] == "wanquota"]
    subs = {s["name"]: {o["name"]: o for o in s.get("options", [])} for s in group["options"]}
    assert set(subs) == {
        "show",
        "set",
        "default",
        "grant",
        "reset",
        "server",
        "log",
        "role",
        "usage",
    }
    assert (subs["set"]["limit"]["min_value"], subs["set"]["limit"]["max_value"]) == (0, 1000)
    assert (subs["default"]["limit"]["min_value"], subs["default"]["limit"]["max_value"]) == (
        0,
        1000,
    )
    assert (subs["server"]["limit"]["min_value"], subs["server"]["limit"]["max_value"]) == (0, 1000)
    assert (subs["grant"]["images"]["min_value"], subs["grant"]["images"]["max_value"]) == (1, 1000)
    assert subs["grant"]["images"]["required"] and subs["server"]["limit"]["required"]
    assert group["contexts"] == [0, 1]  # servers and the bot's DMs
    for sub in subs.values():
        for option in sub.values():
            assert 1 <= len(option["description"]) <= 100
    with pytest.raises(ValueError, match="outside"):  # Discord's client refuses it
        await w.fd.slash(
            w.guild,
            w.channel,
            w.admin,
            "wanquota",
            {"images": 0, "user": w.bob},
            subcommand="grant",
        )
