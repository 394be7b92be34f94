"""Faults on Discord's side, injected in the fake Discord where they happen in life: an attachment
download that never finishes, channels that refuse the bot (403 50013), closed DMs (50007), tokens
that expired; and who may use the bot in DMs when it is kept to some servers."""

from __future__ import annotations

from tests.fake_discord import FakeInteraction, User
from tests.harness import World, png, wait_until
from tests.promises_support import private_text, told_privately, usage


async def test_a_stalled_download_delays_only_its_own_request(world: World) -> None:
    """One member's attachment never finishes downloading: another member's request made after it
    is served meanwhile (intake used to take one request at a time, with a 300 s timeout), and the
    first member is told, within WANBOT_DOWNLOAD_TIMEOUT, that the image did not download, with
    nothing charged and no task created."""
    w = world
    await w.start_bot(WANBOT_DOWNLOAD_TIMEOUT="10")
    cdn = w.fd.world.cdn
    stuck = w.fd.add_cdn_file(png(), "stuck.png", "image/png", stalls=True)
    first = await w.wanedit(w.alice, "never arrives", [stuck])
    await wait_until(lambda: cdn.stalled >= 1)
    await w.wanedit(w.bob, "flows past it")
    await w.result_message(w.bob, timeout=8)
    assert not private_text(first)  # still downloading: bob did not wait for it
    await first.wait_for(private_text, timeout=20)
    text = private_text(first)
    assert "`stuck.png`" in text and "did not finish downloading" in text, text
    assert "Nothing was charged" in text
    assert await usage(w, w.alice.id) == (0, 0)
    assert w.emu.created_count == 1


async def test_with_an_allowlist_dms_serve_only_members_of_an_allowed_server(world: World) -> None:
    """With WAN_ALLOWED_GUILDS set, a DM from someone in none of those servers is refused with
    nothing spent (anyone able to DM the bot used to spend WAN_DM_DAILY_LIMIT a day, and enough
    accounts the bot-wide cap); a member of one is served. Membership is asked of Discord's REST
    API, once: the answer is remembered."""
    w = world
    stranger = w.fd.add_user("stranger")
    await w.start_bot(WAN_ALLOWED_GUILDS=str(w.guild.id))
    refused = await dm_wanedit(w, stranger, "from a DM")
    text = await told_privately(refused)
    assert "you are not in one of them" in text and "Nothing was charged" in text, text
    member = await dm_wanedit(w, w.alice, "from a DM")
    await member.wait_for(lambda ix: w.emu.created_count == 1, timeout=10)
    again = await dm_wanedit(w, stranger, "again")
    assert "you are not in one of them" in await told_privately(again)
    assert w.emu.created_count == 1
    assert await usage(w, stranger.id, scope=0) == (0, 0)
    assert member_lookups(w) == 2  # one per user: the stranger's second DM was answered from memory


async def test_the_owner_can_open_dms_to_anyone(world: World) -> None:
    """WAN_DM_ANYONE=true: a DM from anyone is served (within WAN_DM_DAILY_LIMIT), as before."""
    w = world
    stranger = w.fd.add_user("stranger")
    await w.start_bot(WAN_ALLOWED_GUILDS=str(w.guild.id), WAN_DM_ANYONE="true")
    await dm_wanedit(w, stranger, "from a DM")
    await w.emu.wait_for_task_count(1)
    assert member_lookups(w) == 0


async def dm_wanedit(w: World, user: User, prompt: str) -> FakeInteraction:
    """/wanedit in the user's DM with the bot."""
    options = {"prompt": prompt, "image": w.upload()}
    return await w.fd.slash(None, w.fd.dm_channel(user), user, "wanedit", options)


def member_lookups(w: World) -> int:
    return sum(1 for r in w.fd.request_log if r.method == "GET" and "/members/" in r.path)
