"""Cancel promises: a job cancelled before its create is sent is never sent, charges nothing and says
so, at every stage where that is still true (queued, fetching its inputs, waiting to retry a throttled
create); once Wan has started, "too late" and the job goes on; a moderator may cancel anyone's job.

Each stage is held on the test's cue (a create at the DashScope gate, a CDN download or a progress
edit at the fake Discord), except the runner's retry pause, which is a timer by design (see below).
"""

from __future__ import annotations

import asyncio

from bot.sandbox import FaultRule
from bot.store import JobState
from tests.support.fake_discord import FakeInteraction
from tests.support.fake_discord.constants import MANAGE_MESSAGES
from tests.support.harness import World, embed_text
from tests.support.promises import (
    CREATE_PATH,
    POLL_PATH,
    gate,
    job_ends,
    settled_to,
    start_bot,
    stored_job,
    told_privately,
    usage,
)


async def cancel_button(ix: FakeInteraction, stage: str) -> tuple[dict, str]:
    """The job's progress message once it shows `stage`, and its Cancel button's custom id."""
    message = await ix.wait_original(lambda m: stage in embed_text(m))
    (button,) = [c for row in message["components"] for c in row["components"]]
    assert button["custom_id"].startswith("wan:cancel:")
    return message, button["custom_id"]


async def test_cancel_while_its_inputs_are_fetched_stops_it_before_the_create(
    world: World,
) -> None:
    """Promise: a cancel before the create is sent means no task and no charge. Alice's job waited
    in the queue behind the jobs that keep their images (the one slot and the two fetched ahead), so
    at its turn it fetches its image again; she cancels during that download."""
    w = world
    async with gate(w) as g:
        slot = g.hold("POST", CREATE_PATH)
        await start_bot(w, WAN_MAX_CONCURRENT_TASKS="1", DASHSCOPE_BASE_URL=g.base_url)
        await w.wanedit(w.bob, "holds the only slot")
        await slot.wait_arrived()
        await w.wanedit(w.users[2], "fetched ahead, first")
        await w.wanedit(w.add_member("dave"), "fetched ahead, second")
        ix = await w.wanedit(w.alice, "waits, then fetches its image again")
        message, custom_id = await cancel_button(ix, "Queued")
        download = w.fd.hold("GET", r"^/cdn/")
        slot.release()
        await download.wait_arrived()  # bob's job left Wan; alice's has started, fetching
        click = await w.fd.click(w.channel, w.alice, message, custom_id)
        assert await told_privately(click) == "Cancelled. Nothing was charged."
        download.release()
        await ix.wait_original(lambda m: "Cancelled before it started" in embed_text(m))
        # Requests are taken in one at a time, so the two sent last may be numbered either way.
        owners = {n: (await stored_job(w, n)).user_id for n in (1, 2, 3, 4)}
        (hers,) = [n for n, user in owners.items() if user == w.alice.id]
        await job_ends(w, hers, JobState.CANCELLED)
        await settled_to(w, w.alice.id, 0)
        for number in sorted(set(owners) - {hers}):
            await job_ends(w, number, JobState.DONE, timeout=60)
        prompts = [str(t.request["input"]["prompt"]) for t in w.emu.tasks.values()]
        assert len(prompts) == 3 and "waits, then fetches its image again" not in prompts


async def test_cancel_while_a_throttled_create_waits_to_be_retried(world: World) -> None:
    """Promise: a cancel before the create is sent means no task and no charge. Wan throttled the
    create (429, no task made) and the client waits before its next attempt; a cancel in that wait
    ends the job without another create. The client's wait is held on an event, not raced."""
    w = world
    waiting, go_on = asyncio.Event(), asyncio.Event()
    armed = [True]

    async def sleep(delay: float) -> None:
        if armed[0]:  # the first wait of the client: the retry after the 429
            armed[0] = False
            waiting.set()
            await go_on.wait()
            return
        await asyncio.sleep(delay)

    await start_bot(w, wan={"sleep": sleep})
    w.emu.add_fault(FaultRule(op="create", status=429, code="Throttling.RateQuota"))
    ix = await w.wanedit(w.alice, "throttled")
    message, custom_id = await cancel_button(ix, "Queued")
    await waiting.wait()
    click = await w.fd.click(w.channel, w.alice, message, custom_id)
    assert await told_privately(click) == "Cancelled. Nothing was charged."
    go_on.set()
    await ix.wait_original(lambda m: "Cancelled before it started" in embed_text(m))
    await job_ends(w, 1, JobState.CANCELLED)
    await settled_to(w, w.alice.id, 0)
    assert w.emu.created_count == 0


async def test_cancel_while_the_create_is_on_its_way_cancels_the_new_task(world: World) -> None:
    """Promise: a cancel never pretends, and a task made by a create already on its way is cancelled
    as soon as it exists (still PENDING at Wan: free), so nothing is charged."""
    w = world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        ix = await w.wanedit(w.alice, "sent, then cancelled")
        message, custom_id = await cancel_button(ix, "Queued")
        await create.wait_arrived()
        click = await w.fd.click(w.channel, w.alice, message, custom_id)
        assert await told_privately(click) == "Cancelling… Nothing was charged."
        create.release()
        await job_ends(w, 1, JobState.CANCELLED)
        await settled_to(w, w.alice.id, 0)
        assert w.emu.created_count == 1
        [task] = w.emu.tasks.values()
        assert task.status == "CANCELED"


async def test_cancel_after_wan_started_is_too_late_and_the_job_goes_on(world: World) -> None:
    """Promise: a cancel never pretends. Wan has started the task (the bot has seen it RUNNING; its
    message still shows Cancel while the edit is on its way): "too late", decided without asking
    Wan to cancel, and the job finishes and is charged as usual."""
    w = world
    await start_bot(w)
    running = w.fd.hold(
        "PATCH", r"^/webhooks/\d+/[^/]+/messages/\d+$", body_contains="Wan is editing"
    )
    ix = await w.wanedit(w.alice, "started already")
    message, custom_id = await cancel_button(ix, "waiting for a free slot")
    await running.wait_arrived()
    click = await w.fd.click(w.channel, w.alice, message, custom_id)
    assert await told_privately(click) == "Too late to cancel: Wan is already working on it."
    running.release()
    await w.result_message(w.alice)
    await job_ends(w, 1, JobState.DONE)
    await settled_to(w, w.alice.id, 1)
    assert not [r for r in w.emu.request_log if r[2].endswith("/cancel")]


async def test_a_moderator_may_cancel_someone_elses_queued_job(world: World) -> None:
    """Promise: moderators (Manage Messages) can stop anyone's job, checked in code; the member's
    quota comes back and their message says it was cancelled."""
    w = world
    moderator = w.add_member("mod")
    w.fd.add_member(w.guild, moderator, permissions=MANAGE_MESSAGES)
    async with gate(w) as g:
        slot = g.hold("POST", CREATE_PATH)
        await start_bot(w, WAN_MAX_CONCURRENT_TASKS="1", DASHSCOPE_BASE_URL=g.base_url)
        await w.wanedit(w.bob, "holds the only slot")
        await slot.wait_arrived()
        ix = await w.wanedit(w.alice, "cancelled by a moderator")
        message, custom_id = await cancel_button(ix, "Queued")
        click = await w.fd.click(w.channel, moderator, message, custom_id)
        assert await told_privately(click) == "Cancelled. Nothing was charged."
        await ix.wait_original(lambda m: "Cancelled before it started" in embed_text(m))
        await job_ends(w, 2, JobState.CANCELLED)
        assert await usage(w, w.alice.id) == (0, 0)
        slot.release()
        await w.result_message(w.bob)
        assert w.emu.created_count == 1


async def test_cancel_that_wan_refuses_because_it_started_is_too_late(world: World) -> None:
    """Promise: a cancel never pretends. The bot still believes the task PENDING (its poll is slow)
    but Wan has started it and refuses the cancel: the member is told it is too late, and the job
    is not marked cancelled nor refunded early (Wan will bill it)."""
    w = world
    async with gate(w) as g:
        poll = g.hold("GET", POLL_PATH)
        await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        w.emu.add_fault(FaultRule(op="task", running_seconds=30))
        ix = await w.wanedit(w.alice, "Wan starts before the bot knows")
        message, custom_id = await cancel_button(ix, "waiting for a free slot")
        await poll.wait_arrived()
        (task,) = w.emu.tasks.values()
        await w.emu.wait_for_status(task.task_id, "RUNNING")
        click = await w.fd.click(w.channel, w.alice, message, custom_id)
        assert await told_privately(click) == "Too late to cancel: Wan has already started on it."
        assert task.status.value == "RUNNING"
        job = await w.bots[-1].store.get_job(1)
        assert job is not None and job.state == JobState.SUBMITTED
        assert await usage(w, w.alice.id) == (0, 1)  # still held for the task Wan is making
