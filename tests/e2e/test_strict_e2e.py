"""The bot end to end under the fakes' strict settings: Discord's per-channel reaction limit and
its message-edit limit (429 + ``retry_after``), and both readings of Wan's five-tasks-at-once
limit (extra tasks queue PENDING, or their creates are refused with 429 ``Throttling``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import Emulator, EmulatorConfig
from cogs.surface.progress import EDIT_WINDOW, PROGRESS_EDITS
from tests.support.fake_discord import DISCORD_RATE_LIMITS
from tests.support.harness import API_KEY, World, embed_text, make_world, wait_until
from tests.support.results import BOT_DONE, first_result, reply_answer, settled_to


@pytest.fixture
async def strict_world(world: World) -> World:
    """A connected bot on a fake Discord that limits reactions and edits as Discord does."""
    world.fd.rate_limits = DISCORD_RATE_LIMITS
    await world.start_bot()
    return world


async def test_reply_job_reactions_get_through_discords_reaction_limit(
    strict_world: World,
) -> None:
    """A reply request's stage reactions (⏳ 🎨 📦 ✅, each replacing the last) are sent faster
    than 1 per 0.25 s; all of them must still land, so the request ends with exactly ✅."""
    w = strict_world
    result = await first_result(w, w.alice, "make it blue")
    thread = int(result["channel_id"])
    request = await w.fd.post_user_message(
        thread, w.bob, f"<@{w.fd.bot_user.id}> now make it red", reference=result
    )
    answer = await reply_answer(w, request)
    assert len(w.fd.files(answer)) == 1
    await wait_until(lambda: w.fd.reactions(request, user=w.fd.bot_user) == [BOT_DONE])
    await settled_to(w, w.bob.id, 1)
    admitted = w.fd.rate_limiter.admitted["reactions"]
    assert len(admitted) >= 4  # at least one add per stage went through the limited route
    assert min(b - a for a, b in itertools.pairwise(admitted)) >= 0.25 - 0.005


async def test_slash_job_progress_edits_stay_within_the_edit_limit(world: World) -> None:
    """Progress edits of the interaction's message are paced by the bot itself (at most
    `PROGRESS_EDITS` in `EDIT_WINDOW` seconds, and the last word), so Discord's edit limit (5 per
    5 s per interaction) never answers 429; the job still ends with its "Done" message, which
    links to the result, and one charge."""
    w = world
    w.fd.rate_limits = DISCORD_RATE_LIMITS
    await w.start_bot()
    ix = await w.wanedit(w.alice, "make the sky stormy")
    result = await w.result_message(w.alice)
    assert len(w.fd.files(result)) == 1
    done = await ix.wait_original(lambda m: "Done" in embed_text(m), timeout=15)
    assert result["id"] in embed_text(done)  # it links to the result
    await settled_to(w, w.alice.id, 1)
    assert w.fd.rate_limiter.limited == []
    edits = w.fd.rate_limiter.admitted["message_edits"]
    assert len(edits) >= 2
    # No window of EDIT_WINDOW seconds held more than PROGRESS_EDITS edits and the last word.
    assert all(
        b - a >= EDIT_WINDOW - 0.01
        for a, b in zip(edits, edits[PROGRESS_EDITS + 1 :], strict=False)
    )


async def test_a_posted_result_frees_the_members_slot_at_once(world: World) -> None:
    """With one job per member, a member who replies to the result they were just given is
    accepted: their first job is over once its result is posted, whatever Discord's rate
    limits do to the cosmetic edits that follow (a slash job edits its message about six
    times, and Discord allows five per five seconds)."""
    w = world
    w.fd.rate_limits = DISCORD_RATE_LIMITS
    await w.start_bot(WAN_MAX_JOBS_PER_USER="1")
    result = await first_result(w, w.alice, "make it blue")
    request = await w.fd.post_user_message(
        int(result["channel_id"]),
        w.alice,
        f"<@{w.fd.bot_user.id}> now make it red",
        reference=result,
    )
    answer = await reply_answer(w, request)
    assert "Edited from: job #1 image 1" in embed_text(answer), answer["content"]


@pytest.fixture(params=["queue", "refuse"])
async def capacity_world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """A world whose emulator either queues tasks beyond 5 in progress or refuses them (429)."""
    config = EmulatorConfig(
        api_keys={API_KEY},
        pending_seconds=0.05,
        running_seconds=0.3,
        over_capacity=request.param,
    )
    async with Emulator(config) as emu:
        w = await make_world(tmp_path, emulator=emu)
        try:
            await w.start_bot()
            yield w
        finally:
            await w.close()
            await w.fd.close()


async def test_more_jobs_than_wan_runs_at_once_all_finish(capacity_world: World) -> None:
    """Seven members at once, two more than Wan's five tasks in progress: under either reading
    of the limit every job is delivered once and charged once, and no create is refused (the
    bot keeps at most five tasks at Wan)."""
    w = capacity_world
    users = [w.add_member(f"member{i}") for i in range(7)]
    w.emu.hold("running")  # five tasks fill Wan; the other two must wait for a slot
    await asyncio.gather(*(w.wanedit(u, f"edit number {i}") for i, u in enumerate(users)))
    await w.emu.wait_for(lambda: w.emu.scheduler.running_count == 5, timeout=10)
    assert w.emu.scheduler.in_progress == 5  # the bot did not send a sixth create
    w.emu.release("running")
    await wait_until(lambda: all(w.results_for(u) for u in users), timeout=30)
    for user in users:
        await settled_to(w, user.id, 1)
        assert len(w.results_for(user)) == 1
    assert w.emu.created_count == 7
    creates = [r for r in w.emu.request_log if r[1] == "POST" and "image-synthesis" in r[2]]
    assert [r[3] for r in creates] == [200] * 7
