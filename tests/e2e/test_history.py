"""/wanjobs: a member's own last jobs here, privately, from the store; other members' only for admins."""

from __future__ import annotations

import re
from typing import Any

from bot.store import JobState
from tests.e2e.test_results import job_id
from tests.support.fake_discord import Channel, FakeInteraction, Guild, User
from tests.support.harness import World, embed_text
from tests.support.results import first_result, settled_to


async def wanjobs(
    w: World,
    actor: User,
    *,
    guild: Guild | None = None,
    channel: Channel | None = None,
    **options: Any,
) -> FakeInteraction:
    if guild is None and channel is None:
        guild, channel = w.guild, w.channel
    ix = await w.fd.slash(guild, channel, actor, "wanjobs", options)
    await ix.wait_response()
    if ix.response_type == 5:
        await ix.wait_original()
    return ix


def answer(ix: FakeInteraction) -> str:
    """The private answer's text; fails if it was public."""
    assert ix.ephemeral, "/wanjobs answered publicly"
    message = ix.original if ix.response_type == 5 else ix.response_data
    assert message is not None
    return f"{message.get('content') or ''}\n{embed_text(message)}"


def listed(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\*\*#(\d+)\*\*", text)]


async def test_wanjobs_lists_own_jobs_newest_first_with_links_and_reasons(
    bot_world: World,
) -> None:
    """Guards item 3: newest first, state, images, Discord timestamp, the result's link (its thread),
    the failure reason; another member's jobs are not shown."""
    w = bot_world
    done = await first_result(w, w.alice, "make the sky stormy and dark", count=2)
    await settled_to(w, w.alice.id, 2)
    await first_result(w, w.bob, "bob's own")
    since = w.fd.mark()
    await w.wanedit(w.alice, "forbidden [fail:moderation]")
    await w.fd.wait_for_message(None, lambda m: "No result" in embed_text(m), since=since)
    store = w.bots[-1].store
    failed = (await store.jobs_for_user(w.alice.id))[0]
    await settled_to(w, w.alice.id, 2)
    assert failed.state == JobState.FAILED

    text = answer(await wanjobs(w, w.alice))
    assert listed(text) == [failed.id, job_id(done)]
    link = f"https://discord.com/channels/{w.guild.id}/{done['channel_id']}/{done['id']}"
    assert f"[result]({link})" in text
    assert done["channel_id"] != str(w.channel.id)  # the link goes into the job's thread
    assert "✅ done · 2 of 2 images" in text and "❌ failed" in text
    assert "make the sky stormy" in text
    assert (failed.error_message or "")[:40] in text and failed.error_message
    created = int(failed.created_at.timestamp())
    assert f"<t:{created}:R>" in text
    assert "bob's own" not in text


async def test_wanjobs_shows_the_ten_newest_of_this_server_only(bot_world: World) -> None:
    """Guards the limit and the scope: what the store has, 10 at most, this server's only."""
    w = bot_world
    store = w.bots[-1].store
    ids = []
    for n in range(12):
        job = await store.create_job(
            scope=w.guild.id,
            guild_id=w.guild.id,
            channel_id=w.channel.id,
            user_id=w.alice.id,
            source="slash",
            prompt=f"prompt number {n}",
            options={"count": 1},
            state=JobState.QUEUED,
        )
        await store.finish_job(job.id, JobState.CANCELLED, error_message="Cancelled by you.")
        ids.append(job.id)
    elsewhere = await store.create_job(
        scope=0, channel_id=1, user_id=w.alice.id, source="slash", prompt="in a DM"
    )
    text = answer(await wanjobs(w, w.alice))
    assert listed(text) == ids[::-1][:10]
    assert "Cancelled by you." in text and "prompt number 11" in text
    dm_text = answer(await wanjobs(w, w.alice, guild=None, channel=w.fd.dm_channel(w.alice)))
    assert listed(dm_text) == [elsewhere.id]


async def test_another_members_jobs_only_for_admins(bot_world: World) -> None:
    """Guards the code-side check: a member naming someone else is refused; an admin sees them."""
    w = bot_world
    await first_result(w, w.alice, "alice's secret edit")
    refused = answer(await wanjobs(w, w.bob, member=w.alice))
    assert "Manage Server" in refused and "alice's secret edit" not in refused
    assert listed(refused) == []
    own = answer(await wanjobs(w, w.bob, member=w.bob))  # naming yourself is fine
    assert "No jobs yet" in own
    seen = answer(await wanjobs(w, w.admin, member=w.alice))
    assert "alice's secret edit" in seen and listed(seen) == [1]
    in_dm = answer(
        await wanjobs(w, w.admin, member=w.alice, guild=None, channel=w.fd.dm_channel(w.admin))
    )
    assert "Manage Server" in in_dm and listed(in_dm) == []
