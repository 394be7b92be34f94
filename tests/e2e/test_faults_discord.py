"""Faults on Discord's side, injected in the fake Discord where they happen in life: an attachment
download that never finishes, channels that refuse the bot (403 50013), closed DMs (50007), tokens
that expired; and who may use the bot in DMs when it is kept to some servers."""

from __future__ import annotations

from bot.sandbox import FaultRule
from bot.store import JobState
from tests.e2e.test_history import answer, wanjobs
from tests.support.fake_discord import FakeInteraction, User
from tests.support.fake_discord.constants import (
    CREATE_PUBLIC_THREADS,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
)
from tests.support.harness import REDELIVER_SOON, World, embed_text, png, wait_until
from tests.support.promises import job_ends, private_text, settled_to, told_privately, usage


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


CLOSED_TO_THE_BOT = SEND_MESSAGES | SEND_MESSAGES_IN_THREADS | CREATE_PUBLIC_THREADS


async def test_a_channel_that_refuses_the_bot_gets_the_result_as_the_interactions_answer(
    world: World,
) -> None:
    """The channel refuses the bot's messages and threads (403, 50013) and the member's DMs are
    closed (50007): while the interaction's token lives the result is posted as its follow-up,
    which Discord lets an app send where it lacks the channel's permissions (the result used to be
    postponed, then given up, though Wan had billed it). Charged once."""
    w = world
    await w.start_bot(runner_options=REDELIVER_SOON)
    w.fd.set_bot_permissions(w.guild, w.channel, deny=CLOSED_TO_THE_BOT)
    w.fd.close_dms(w.alice)
    ix = await w.wanedit(w.alice, "in a channel closed to the bot")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == w.channel.id and int(result["id"]) in ix.followup_ids
    await settled_to(w, w.alice.id, 1)
    job = await job_ends(w, 1, JobState.DONE)
    assert job.result_message_ids == [int(result["id"])]
    refused = {(r.path, r.status) for r in w.fd.request_log if r.method == "POST"}
    assert (f"/channels/{w.channel.id}/messages", 403) in refused  # the bot's own post
    assert any(path.endswith("/threads") and status == 403 for path, status in refused)


async def test_a_billed_result_that_reached_no_one_is_posted_later_from_wanjobs(
    world: World,
) -> None:
    """Everything refuses together: the channel and threads (50013), the member's DMs (50007),
    and the interaction's token has expired. The job ends as before (nothing charged, what Wan
    billed recorded), but its result is not thrown away: /wanjobs shows it with a button, and a
    click posts it where the member is now, as the click's own answer; still nothing charged."""
    w = world
    await w.start_bot(runner_options=REDELIVER_SOON)
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.0))
    w.fd.set_bot_permissions(w.guild, w.channel, deny=CLOSED_TO_THE_BOT)
    w.fd.close_dms(w.alice)
    ix = await w.wanedit(w.alice, "nowhere takes it")
    await ix.wait_original(lambda m: "Job #1" in embed_text(m))
    w.fd.set_interaction_token_expired(ix)
    job = await job_ends(w, 1, JobState.FAILED, timeout=30)
    assert (job.error_code, job.billed) == ("Undeliverable", 1)
    await settled_to(w, w.alice.id, 0)
    assert w.results_for(w.alice) == []

    listing = await wanjobs(w, w.alice)
    assert "it waits for you" in answer(listing)
    message = listing.original
    assert message is not None
    (button,) = [c for row in message["components"] for c in row["components"]]
    assert button["custom_id"] == "wan:claim:1"
    click = await w.fd.click(w.channel, w.alice, message, "wan:claim:1")
    result = await w.result_message(w.alice, timeout=15)
    assert int(result["channel_id"]) == w.channel.id and len(w.fd.files(result)) == 1
    assert int(result["id"]) in (click.original_id, *click.followup_ids)
    assert await usage(w, w.alice.id) == (0, 0)
    assert w.emu.created_count == 1
    # Posted once: the listing now links to it, with no button.
    store = w.bots[-1].store

    async def claimed() -> bool:
        job = await store.get_job(1)
        return job is not None and bool(job.extra.get("claimed_message_ids"))

    await wait_until(claimed)
    again = await wanjobs(w, w.alice)
    assert "[result](" in answer(again) and not (again.original or {}).get("components")
