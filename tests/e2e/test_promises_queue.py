"""Admission and queue promises: the per-user cap holds for requests that arrive together, and waiting
members see their place move as the queue drains."""

from __future__ import annotations

import asyncio

from bot.store import JobState
from tests.support.fake_discord import FakeInteraction
from tests.support.harness import World, embed_text
from tests.support.promises import (
    CREATE_PATH,
    gate,
    job_ends,
    private_text,
    settled_to,
    start_bot,
)


async def test_two_requests_at_the_same_moment_from_one_member_make_one_job(
    world: World,
) -> None:
    """Promise: the per-user cap (WAN_MAX_JOBS_PER_USER=1) holds when one member sends two requests
    at the same moment: both pass the early check, both download their image, and are held
    together just before `submit`; one becomes a job, the other is refused with nothing spent."""
    w = world
    await start_bot(w, WAN_MAX_JOBS_PER_USER="1")
    # Each request reads back its response message right before it is submitted.
    before_submit = w.fd.hold("GET", r"^/webhooks/\d+/[^/]+/messages/@original$", times=2)
    first, second = await asyncio.gather(
        w.wanedit(w.alice, "the first of two"), w.wanedit(w.alice, "the second of two")
    )
    await before_submit.wait_arrived()
    before_submit.release()

    def refused() -> list[FakeInteraction]:
        return [ix for ix in (first, second) if "limit is 1" in private_text(ix)]

    await w.fd.wait_until(refused)
    (no,) = refused()
    assert "Nothing was charged" in private_text(no)
    await w.result_message(w.alice)
    job = await job_ends(w, 1, JobState.DONE)
    assert await w.bots[-1].store.get_job(2) is None  # the refusal stored nothing
    await settled_to(w, w.alice.id, 1)
    assert w.emu.created_count == 1 and job.prompt != no.payload["data"]["options"][0]["value"]


def place(n: int):
    return lambda m: f"Queued (position #{n})" in embed_text(m)


async def test_queue_positions_move_up_as_the_queue_drains(world: World) -> None:
    """Promise: a waiting member sees their real place. With one Wan slot (and no job fetching its
    inputs ahead), three members wait at #1, #2, #3; each time a job starts, everyone behind it
    moves up one place."""
    w = world
    async with gate(w) as g:
        slot = g.hold("POST", CREATE_PATH)
        await start_bot(
            w, {"prefetch": 0}, WAN_MAX_CONCURRENT_TASKS="1", DASHSCOPE_BASE_URL=g.base_url
        )
        await w.wanedit(w.admin, "holds the only slot")
        await slot.wait_arrived()
        waiting = []
        for n, user in enumerate((w.alice, w.bob, w.users[2]), start=1):
            # One after the other: requests sent together are queued in the order they finish
            # their checks, not the order they were sent.
            ix = await w.wanedit(user, f"waits: {user.username}")
            await ix.wait_original(place(n))
            waiting.append(ix)
        # The first job ends; alice's starts (its create held): bob moves to #1, carol to #2.
        alices = g.hold("POST", CREATE_PATH)
        slot.release()
        await alices.wait_arrived()
        await waiting[1].wait_original(place(1))
        await waiting[2].wait_original(place(2))
        bobs = g.hold("POST", CREATE_PATH)
        alices.release()
        await bobs.wait_arrived()
        await waiting[2].wait_original(place(1))
        bobs.release()
        for user in (w.admin, w.alice, w.bob, w.users[2]):
            await w.result_message(user)
        # Each message showed every place it passed through, in order.
        for ix, shown in zip(waiting, ([1], [2, 1], [3, 2, 1]), strict=True):
            titles = [embed_text(m).split("\n")[0] for m in ix.original_history]
            places = [int(t.split("#")[1].rstrip(")")) for t in titles if "Queued (position #" in t]
            assert list(dict.fromkeys(places)) == shown, titles
        assert w.emu.created_count == 4


async def test_a_move_while_places_are_shown_is_shown_after_them(world: World) -> None:
    """Promise: a waiting member's place is never left stale. The queue moves again while its
    places are being shown (Discord holds an edit back): once that round is done, another shows
    the places as they are now, so carol, two behind, sees #1 before her turn comes."""
    w = world
    async with gate(w) as g:
        slot = g.hold("POST", CREATE_PATH)
        await start_bot(
            w,
            {"prefetch": 0, "announce_delay": 0.05},
            WAN_MAX_CONCURRENT_TASKS="1",
            DASHSCOPE_BASE_URL=g.base_url,
        )
        await w.wanedit(w.admin, "holds the only slot")
        await slot.wait_arrived()
        waiting = []
        for n, user in enumerate((w.alice, w.bob, w.users[2]), start=1):
            ix = await w.wanedit(user, f"waits: {user.username}")
            await ix.wait_original(place(n))
            waiting.append(ix)
        # Alice's job starts; the round showing the new places is held at bob's edit.
        shown = w.fd.hold(
            "PATCH", r"^/webhooks/\d+/[^/]+/messages/\d+$", body_contains="position #1"
        )
        alices = g.hold("POST", CREATE_PATH)
        slot.release()
        await alices.wait_arrived()
        await shown.wait_arrived()
        # Meanwhile bob's job starts too (its create held): carol is first now.
        bobs = g.hold("POST", CREATE_PATH)
        alices.release()
        await bobs.wait_arrived()
        shown.release()
        await waiting[2].wait_original(place(1))
        bobs.release()
        for user in (w.admin, w.alice, w.bob, w.users[2]):
            await w.result_message(user)
        assert w.emu.created_count == 4
