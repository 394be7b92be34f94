"""Progress edits through the fake Discord, counted per job: a job's message is edited only when a
member would see a difference, and never faster than Discord's edit limit allows."""

from __future__ import annotations

import itertools
import re

from tests.support.fake_discord import DISCORD_RATE_LIMITS
from tests.support.harness import World, embed_text, wait_until


def headline(message: dict) -> str:
    """What the message says first: the stage, with the queue position (the embed's title)."""
    return embed_text(message).split("\n")[0]


async def test_queued_jobs_edit_their_messages_only_on_a_visible_change_within_the_limit(
    world: World,
) -> None:
    """Four members at once, Wan taking one job at a time (the others wait in the bot's queue),
    Discord limiting edits as it does (5 per 5 s per interaction). The first task waits at Wan
    for a while, and is asked about meanwhile (each answer says it still waits). Every job ends
    "Done"; no edit repeats what its message already showed (the headline changes with each:
    stage or place), none is refused with a 429, and no job's message is edited more than six
    times (two places in the queue, sent, running, delivering if it takes a while, done)."""
    w = world
    w.fd.rate_limits = DISCORD_RATE_LIMITS
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    members = [w.add_member(f"member{i}") for i in range(4)]
    w.emu.hold("pending")
    w.emu.hold("running")
    interactions = [await w.wanedit(m, f"edit number {i}") for i, m in enumerate(members)]
    for ix in interactions[1:]:
        await ix.wait_original(lambda m: "Queued" in embed_text(m), timeout=15)
    await interactions[0].wait_original(lambda m: "Sent to Wan" in embed_text(m), timeout=15)

    def polls() -> int:
        return sum(
            1 for _, method, path, _ in w.emu.request_log if method == "GET" and "/tasks/" in path
        )

    await wait_until(lambda: polls() >= 2, timeout=15)
    w.emu.release("pending")
    w.emu.release("running")
    for ix in interactions:
        await ix.wait_original(lambda m: "Done" in embed_text(m), timeout=30)
    assert w.fd.rate_limiter.limited == []
    for ix in interactions:
        edits = [
            r
            for r in w.fd.request_log
            if r.method == "PATCH" and re.search(rf"/webhooks/\d+/{re.escape(ix.token)}/", r.path)
        ]
        shown = [headline(m) for m in ix.original_history]
        assert all(a != b for a, b in itertools.pairwise(shown)), shown
        assert len(edits) == len(shown) - 1, (len(edits), shown)
        assert len(edits) <= 6, shown
        assert "Done" in shown[-1]


async def test_a_quick_delivery_goes_from_running_straight_to_done(world: World) -> None:
    """A result posted within the delivering notice's time is never announced as being delivered:
    the message goes from "Wan is editing" to "Done", one edit fewer."""
    w = world
    await w.start_bot(runner_options={"delivering_notice": 30.0})
    ix = await w.wanedit(w.alice, "quick one")
    await ix.wait_original(lambda m: "Done" in embed_text(m), timeout=30)
    shown = [headline(m) for m in ix.original_history]
    assert not any("Downloading and posting" in s for s in shown), shown
    assert "Wan is editing" in shown[-2], shown


async def test_a_slow_delivery_is_shown_under_way_and_then_done(world: World) -> None:
    """A post Discord holds back longer than the notice's time: the message says the result is
    being posted while it is, and "Done" after it, never the other way round."""
    w = world
    await w.start_bot(runner_options={"delivering_notice": 0.2})
    post = w.fd.hold("POST", r"^/channels/\d+/messages$")
    ix = await w.wanedit(w.alice, "slow to post")
    await post.wait_arrived(timeout=30)
    await ix.wait_original(lambda m: "Downloading and posting" in embed_text(m), timeout=15)
    assert w.results_for(w.alice) == []
    post.release()
    await ix.wait_original(lambda m: "Done" in embed_text(m), timeout=15)
    shown = [headline(m) for m in ix.original_history]
    assert "Downloading and posting" in shown[-2] and "Done" in shown[-1], shown
    assert len(w.results_for(w.alice)) == 1
