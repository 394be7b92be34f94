"""Promises kept across a crash: a create call cut short is never sent again, and a delivery cut short
is never posted twice (the thread made at the first try is found again, and the result in it).

The crash is a real stop of the real bot with no grace for calls under way (what a killed process
leaves), at a moment held by the test: a create at the DashScope gate, or a result post at the fake
Discord. The job rows are the runner's own.
"""

from __future__ import annotations

import pytest

from bot.store import JobState
from tests.support.harness import World, embed_text, wait_until
from tests.support.promises import (
    CREATE_PATH,
    gate,
    job_ends,
    job_messages,
    settled_to,
    start_bot,
    stored_job,
    usage,
)

CRASH = {"shutdown_grace": 0.0}
FAST_RECONCILE = {"reconcile_margin": 0.5}


@pytest.mark.parametrize("reached_wan", [True, False], ids=["wan-made-it", "never-arrived"])
async def test_a_create_cut_short_by_a_crash_is_never_sent_again(
    world: World, reached_wan: bool
) -> None:
    """Promise: a Wan task is never created twice for one request, and a result Wan made is not
    lost. A job whose create call was under way when the bot died (stored SUBMITTED, no task id) is
    looked for in Wan's task list at the next start: the task the call made is adopted and
    delivered once (charged the image delivered); if the call never reached Wan, the job fails with
    its quota back and a plain word. The create is not sent again either way."""
    w = world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        first = await start_bot(w, CRASH, DASHSCOPE_BASE_URL=g.base_url)
        ix = await w.wanedit(w.alice, "sent as the bot dies")
        await create.wait_arrived()
        await w.stop_bot(first)
        row = await stored_job(w, 1)
        assert (row.state, row.task_id, row.reservation_id is not None) == (
            JobState.SUBMITTED,
            None,
            True,
        )
        assert row.submitted_at is not None  # the send is stamped: the window to look in
        # The request goes on to Wan after the bot is gone (its answer reaches no one), or is lost.
        create.release(fail=None if reached_wan else (0, {}))
        if reached_wan:
            await w.emu.wait_for_task_count(1)
        # A short create timeout: the window the new start looks in closes soon after the send.
        second = await start_bot(
            w, FAST_RECONCILE, {"request_timeout": 1.0}, DASHSCOPE_BASE_URL=g.base_url
        )
        if reached_wan:
            await w.result_message(w.alice)
            job = await job_ends(w, 1, JobState.DONE)
            assert job.task_id in w.emu.tasks
            await settled_to(w, w.alice.id, 1)
            assert len(w.results_for(w.alice)) == 1
        else:
            told = await ix.wait_original(lambda m: "restarted while sending" in embed_text(m))
            assert "not sent again" in embed_text(told)
            assert "Nothing was charged" in embed_text(told)
            job = await job_ends(w, 1, JobState.FAILED)
            assert job.error_code == "CreateOutcomeUnknown"
            await settled_to(w, w.alice.id, 0)
            assert w.results_for(w.alice) == []
        assert g.creates_passed() == (1 if reached_wan else 0)
        assert w.emu.created_count == (1 if reached_wan else 0)
        await wait_until(lambda: second.runner.inflight.running == {})


async def crash_while_posting(w: World, *, reaches_discord: bool) -> tuple[int, int]:
    """Alice's /wanedit whose result post is under way when the bot dies; the post then reaches
    Discord (the bot never hears back) or is lost. Returns (job id, the response message's id)."""
    first = await start_bot(w, CRASH)
    # Posted, but Discord's answer is slow: the bot dies before it hears back. Or never posted.
    post = w.fd.hold("POST", r"^/channels/\d+/messages$", after_handling=reaches_discord)
    ix = await w.wanedit(w.alice, "posted as the bot dies")
    await post.wait_arrived()
    await w.stop_bot(first)
    post.release(fail=None if reaches_discord else (503, {"message": "upstream", "code": 0}))
    if reaches_discord:
        await w.fd.wait_for_message(None, lambda m: bool(m.get("attachments")))
    row = await stored_job(w, 1)
    # Exactly what the runner wrote: a slash job has no thread of its own in its row; its thread is
    # made at delivery from the response message (and so has that message's id).
    assert row.state == JobState.DELIVERING and row.task_id is not None
    assert row.thread_id is None and row.message_id == ix.original_id
    assert row.result_message_ids == []
    assert ix.original_id in [t.id for t in w.fd.threads]
    return row.id, ix.original_id


async def test_restart_mid_delivery_finds_the_posted_result_after_the_nonce_window(
    world: World,
) -> None:
    """Promise: a result is never posted twice. After a crash mid-delivery, later than Discord's
    nonce memory, the restarted bot finds the thread it made (160004: a thread already exists for
    the response message) and the result already in it (history), and posts nothing more."""
    w = world
    job_id, thread_id = await crash_while_posting(w, reaches_discord=True)
    w.fd.forget_nonces()
    await start_bot(w)
    job = await job_ends(w, job_id, JobState.DONE)
    posted = job_messages(w, thread_id, job_id)
    assert len(posted) == 1 and job.result_message_ids == [int(posted[0]["id"])]
    assert len(w.results_for(w.alice)) == 1 and w.fd.nonce_dedup_count == 0
    await settled_to(w, w.alice.id, 1)
    assert w.emu.created_count == 1


async def test_restart_mid_delivery_within_the_nonce_window_is_deduplicated_by_discord(
    world: World,
) -> None:
    """Promise: a result is never posted twice. When the restarted bot can't read the thread's
    history, the re-sent result carries the same nonce, and Discord returns the first message."""
    w = world
    job_id, thread_id = await crash_while_posting(w, reaches_discord=True)
    w.fd.inject_failure(
        "GET", r"^/channels/\d+/messages$", 403, {"message": "Missing Access", "code": 50001}
    )
    await start_bot(w)
    job = await job_ends(w, job_id, JobState.DONE)
    posted = job_messages(w, thread_id, job_id)
    assert len(posted) == 1 and job.result_message_ids == [int(posted[0]["id"])]
    assert w.fd.nonce_dedup_count == 1
    await settled_to(w, w.alice.id, 1)


async def test_restart_mid_delivery_before_the_post_landed_posts_once_in_the_first_thread(
    world: World,
) -> None:
    """Promise: a result cut short by a crash is still delivered, once, where it was going: the
    thread made from the response message before the crash (found again through 160004)."""
    w = world
    job_id, thread_id = await crash_while_posting(w, reaches_discord=False)
    assert job_messages(w, thread_id, job_id) == []
    await start_bot(w)
    job = await job_ends(w, job_id, JobState.DONE)
    posted = job_messages(w, thread_id, job_id)
    assert len(posted) == 1 and job.result_message_ids == [int(posted[0]["id"])]
    assert len(w.results_for(w.alice)) == 1
    assert len([t for t in w.fd.threads if t.parent_id == w.channel.id]) == 1
    await settled_to(w, w.alice.id, 1)
    assert await usage(w, w.alice.id) == (1, 0)
