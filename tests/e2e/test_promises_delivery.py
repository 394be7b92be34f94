"""Promises about getting a finished result to the member, or saying why not with nothing charged:
retries, postponement, giving up, expired results, the DM fallback, a 413 split, failure notices
after the interaction token died, and Wan errors while creating or polling.
"""

from __future__ import annotations

import pytest

from bot.sandbox import FaultRule
from bot.store import JobState
from tests.support.fake_discord import Channel
from tests.support.harness import REDELIVER_SOON, World, embed_text, png
from tests.support.promises import (
    CREATE_PATH,
    POSTS,
    gate,
    job_ends,
    job_messages,
    refuse_posts,
    settled_to,
    start_bot,
    usage,
)


async def test_a_delivery_refused_everywhere_once_is_retried_at_once(world: World) -> None:
    """Promise: a result is not lost to one bad moment. Every place refused the first try (thread,
    channel, the follow-up, DMs); the next try, moments later, posts it once in the job's thread, charged once."""
    w = world
    await start_bot(w)  # postponement only after 300 s: this must be a quick retry
    refuse_posts(w, 3)
    ix = await w.wanedit(w.alice, "retried")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == ix.original_id  # the thread made from the response
    await settled_to(w, w.alice.id, 1)
    assert len(w.results_for(w.alice)) == 1


async def test_a_delivery_failing_every_try_is_postponed_then_delivered(world: World) -> None:
    """Promise: results are kept while Wan keeps them. After every quick retry failed the delivery
    is postponed (the job stays DELIVERING) and tried again later: posted once, charged once."""
    w = world
    await start_bot(w, REDELIVER_SOON)
    refuse_posts(w, 9)  # 3 tries x (thread, channel, DMs); the follow-up refuses on its own count
    ix = await w.wanedit(w.alice, "postponed")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == ix.original_id
    job = await job_ends(w, 1, JobState.DONE)
    assert job.result_message_ids == [int(result["id"])]
    await settled_to(w, w.alice.id, 1)
    assert len(w.results_for(w.alice)) == 1 and w.emu.created_count == 1


async def test_a_result_nowhere_accepts_is_given_up_and_refunded(world: World) -> None:
    """Promise: never charge for a result the member didn't get. When every place keeps refusing
    through every postponement, the job ends failed, refunded, and the member is told."""
    w = world
    await start_bot(w, REDELIVER_SOON)
    refuse_posts(w, 10_000)
    ix = await w.wanedit(w.alice, "nowhere to go")
    told = await ix.wait_original(lambda m: "No result" in embed_text(m), timeout=20)
    text = embed_text(told)
    assert "could not be posted anywhere" in text and "Nothing was charged" in text
    job = await job_ends(w, 1, JobState.FAILED)
    assert job.error_code == "Undeliverable"
    await settled_to(w, w.alice.id, 0)
    assert w.results_for(w.alice) == [] and w.emu.created_count == 1


async def test_a_result_expired_before_delivery_is_refunded_with_a_message(world: World) -> None:
    """Promise: never charge for a result the member didn't get. Wan finished, but its result URLs
    had already expired when the bot came to download them: failed, refunded, said plainly."""
    w = world
    w.emu.config.result_ttl_seconds = 0.0  # every result URL is past its 24 hours when fetched
    await start_bot(w)
    ix = await w.wanedit(w.alice, "too late to fetch")
    told = await ix.wait_original(lambda m: "No result" in embed_text(m))
    text = embed_text(told)
    assert "could no longer be downloaded" in text and "Nothing was charged" in text
    job = await job_ends(w, 1, JobState.FAILED)
    assert job.error_code == "ResultExpired"
    await settled_to(w, w.alice.id, 0)
    assert w.results_for(w.alice) == []


async def channel_gone_while_it_runs(w: World, g, *, in_thread: bool) -> Channel:
    """Alice asks (in the channel, or in a thread of it); while the create is held, the channel
    and its threads are deleted. Returns her DM channel."""
    create = g.hold("POST", CREATE_PATH)
    await start_bot(w, REDELIVER_SOON, DASHSCOPE_BASE_URL=g.base_url)
    where = w.fd.add_thread(w.channel, "soon gone", owner=w.alice) if in_thread else w.channel
    ix = await w.wanedit(w.alice, "my channel is deleted", channel=where)
    await ix.wait_original(lambda m: "Queued" in embed_text(m))
    await create.wait_arrived()
    w.fd.delete_channel(w.channel)
    create.release()
    return w.fd.dm_channel(w.alice)


@pytest.mark.parametrize("in_thread", [False, True], ids=["channel", "thread"])
async def test_a_result_whose_channel_is_gone_goes_to_the_members_dms(
    world: World, in_thread: bool
) -> None:
    """Promise: a result always reaches the member. Its channel (and thread) deleted while Wan
    worked, the result is sent to the member's DMs, charged once."""
    w = world
    async with gate(w) as g:
        dm = await channel_gone_while_it_runs(w, g, in_thread=in_thread)
        result = await w.result_message(w.alice)
        assert int(result["channel_id"]) == dm.id and len(w.fd.files(result)) == 1
        await settled_to(w, w.alice.id, 1)
        job = await job_ends(w, 1, JobState.DONE)
        assert job.result_message_ids == [int(result["id"])]
        # Where it went is kept with the job, for /wanjobs' link to it.
        assert job.extra["result_channel_id"] == dm.id


async def test_a_result_with_its_channel_gone_and_dms_closed_is_refunded(world: World) -> None:
    """Promise: never charge for a result the member didn't get. Channel deleted and DMs closed
    (50007): nowhere is left, so after the postponements the job ends failed and refunded."""
    w = world
    w.fd.close_dms(w.alice)
    async with gate(w) as g:
        dm = await channel_gone_while_it_runs(w, g, in_thread=False)
        job = await job_ends(w, 1, JobState.FAILED, timeout=20)
        assert job.error_code == "Undeliverable"
        await settled_to(w, w.alice.id, 0)
        assert w.fd.messages(dm) == []
        assert any(
            r.status == 403 and r.path == f"/channels/{dm.id}/messages" for r in w.fd.request_log
        )


async def test_a_result_too_big_together_is_split_one_message_per_image(world: World) -> None:
    """Promise: a result is never dropped for its size. When Discord refuses the images together
    (413, the request over the upload limit), each image goes in a message of its own, in order,
    all recorded on the job; charged once for both."""
    w = world
    await start_bot(w)
    w.fd.inject_failure("POST", POSTS, 413, {"message": "Request entity too large", "code": 40005})
    ix = await w.wanedit(w.alice, "two big ones", count=2)
    job = await job_ends(w, 1, JobState.DONE)
    parts = job_messages(w, ix.original_id, 1)
    assert [int(m["id"]) for m in parts] == job.result_message_ids and len(parts) == 2
    assert [len(m["attachments"]) for m in parts] == [1, 1]
    names = [w.fd.files(m)[0][0] for m in parts]
    assert names == ["wan-1-1.png", "wan-1-2.png"]
    await settled_to(w, w.alice.id, 2)


async def test_a_failure_notice_after_the_interaction_token_died_reaches_the_member(
    world: World,
) -> None:
    """Promise: a job that ends without a result says why. When the interaction token has died
    (Discord answers 401 / 50027 to edits of the response), the bot edits its response message
    with its own token: it says why, that nothing was charged, and has no Cancel button left."""
    w = world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed"))
        ix = await w.wanedit(w.alice, "refused by the filter, late")
        await create.wait_arrived()
        w.fd.set_interaction_token_expired(ix)
        create.release()
        final = await ix.wait_original(
            lambda m: m is not None and "No result" in embed_text(m) and not m["components"]
        )
        text = embed_text(final)
        assert "Job #1" in text and "content filter" in text and "Nothing was charged" in text
        await settled_to(w, w.alice.id, 0)


async def test_a_failure_notice_after_the_response_was_deleted_reaches_the_channel(
    world: World,
) -> None:
    """Promise: a job that ends without a result says why, even when the member deleted the
    response message it would have been written on (10008): it is posted in the channel."""
    w = world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed"))
        ix = await w.wanedit(w.alice, "refused by the filter, message gone")
        await create.wait_arrived()
        await w.fd.delete_user_message(ix.original_id)
        create.release()
        notice = await w.fd.wait_for_message(
            w.channel.id, lambda m: "ended without a result" in (m.get("content") or "")
        )
        assert f"<@{w.alice.id}>" in notice["content"] and "content filter" in notice["content"]
        await settled_to(w, w.alice.id, 0)


async def test_a_wan_error_while_polling_fails_the_job_and_refunds(world: World) -> None:
    """Promise: faults never charge the member. Polling the task fails for good (the key is
    refused): the job ends failed with Wan's reason in plain words, refunded."""
    w = world
    await start_bot(w)
    w.emu.add_fault(FaultRule(op="get", status=401, code="InvalidApiKey", times=50))
    ix = await w.wanedit(w.alice, "can't follow it")
    told = await ix.wait_original(lambda m: "No result" in embed_text(m))
    text = embed_text(told)
    assert "API key was refused" in text and "Nothing was charged" in text
    job = await job_ends(w, 1, JobState.FAILED)
    assert job.error_code == "InvalidApiKey" and job.task_id is not None
    await settled_to(w, w.alice.id, 0)
    assert w.results_for(w.alice) == [] and w.emu.created_count == 1


async def test_a_create_wan_refused_with_5xx_is_retried_within_four_posts(world: World) -> None:
    """Promise: faults are retried where safe, and a Wan task is never created twice. Wan answered
    500 (with its error body: no task was made) three times; the one retry policy (the client's)
    sends the fourth and last POST: one task, one result, charged once."""
    w = world
    await start_bot(w)
    w.emu.add_fault(FaultRule(op="create", status=500, code="InternalError", times=3))
    await w.wanedit(w.alice, "after a bad minute at Wan", [png()])
    await w.result_message(w.alice)
    creates = [r[3] for r in w.emu.request_log if r[1] == "POST" and r[2].endswith("synthesis")]
    assert creates == [500] * 3 + [200]
    assert w.emu.created_count == 1
    await settled_to(w, w.alice.id, 1)
    assert await usage(w, w.alice.id) == (1, 0)
