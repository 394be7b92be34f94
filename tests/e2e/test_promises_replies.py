"""Reply-edit promises (a failed edit is shown on the request and explained; a bad `#k` or a vanished
message is answered with nothing spent) and what members can do with a result split into one message
per image (Edit, Reroll, Delete, replies)."""

from __future__ import annotations

from typing import Any

from bot.sandbox import FaultRule
from bot.store import JobState
from tests.support.harness import World, embed_text, wait_until
from tests.support.promises import job_ends, settled_to, start_bot, told_privately, usage
from tests.support.results import first_result, reply_answer, task_inputs, task_parameters

FAILED, DONE = "❌", "✅"
CB_MODAL = 9


async def test_a_failed_reply_edit_gets_a_cross_and_a_reply_saying_why(world: World) -> None:
    """Promise: a job that ends without a result says why, where it was asked. A reply edit Wan
    refuses ends with ❌ on the request (the bot's other reactions gone) and a reply with the reason;
    nothing charged."""
    w = world
    await start_bot(w)
    result = await first_result(w, w.alice)
    w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed"))
    request = await w.fd.post_user_message(
        int(result["channel_id"]),
        w.bob,
        f"<@{w.fd.bot_user.id}> make it forbidden",
        reference=result,
    )
    answer = await reply_answer(w, request)
    assert "content filter" in answer["content"] and "Nothing was charged" in answer["content"]
    await wait_until(lambda: w.fd.reactions(request, user=w.fd.bot_user) == [FAILED])
    await job_ends(w, 2, JobState.FAILED)
    await settled_to(w, w.bob.id, 0)


async def test_a_reply_picking_an_image_the_result_lacks_is_answered_with_nothing_spent(
    world: World,
) -> None:
    """Promise: bad input gets a short, clear message before anything is spent: `#3` on a result
    of two images names the choices; no task, no quota."""
    w = world
    await start_bot(w)
    result = await first_result(w, w.alice, "two of them", count=2)
    request = await w.fd.post_user_message(
        int(result["channel_id"]),
        w.bob,
        f"<@{w.fd.bot_user.id}> #3 the third one please",
        reference=result,
    )
    answer = await reply_answer(w, request)
    assert answer["content"] == (
        "That result has 2 images; start your prompt with #1 to #2 to pick one. "
        "Nothing was charged."
    )
    assert w.emu.created_count == 1
    assert await usage(w, w.bob.id) == (0, 0)


async def test_a_reply_to_a_message_deleted_meanwhile_is_answered_with_nothing_spent(
    world: World,
) -> None:
    """Promise: bad input gets a short, clear message before anything is spent: the replied-to
    result was deleted before the bot read the reply."""
    w = world
    await start_bot(w)
    result = await first_result(w, w.alice)
    await w.fd.delete_user_message(result)
    request = await w.fd.post_user_message(
        int(result["channel_id"]), w.bob, f"<@{w.fd.bot_user.id}> edit it anyway", reference=result
    )
    answer = await reply_answer(w, request)
    assert "can't find the message you replied to" in answer["content"]
    assert "Nothing was charged" in answer["content"]
    assert w.emu.created_count == 1
    assert await usage(w, w.bob.id) == (0, 0)


async def split_result(w: World) -> list[dict[str, Any]]:
    """Alice's two-image result, split into one message per image by a 413 (in order)."""
    await start_bot(w)
    w.fd.inject_failure(
        "POST",
        r"^/channels/\d+/messages$",
        413,
        {"message": "Request entity too large", "code": 40005},
    )
    await first_result(w, w.alice, "two big ones", count=2)
    job = await job_ends(w, 1, JobState.DONE)
    parts = [w.fd.message(i) for i in job.result_message_ids]
    assert len(parts) == 2 and all(p is not None and len(p["attachments"]) == 1 for p in parts)
    await settled_to(w, w.alice.id, 2)
    return parts  # type: ignore[return-value]


async def test_a_reply_to_the_second_part_of_a_split_result_edits_image_two(world: World) -> None:
    """Promise: a reply edits the image it replied to. On a split result, `#1` of the second message
    is image 2 of the job, and the new result says so."""
    w = world
    first, second = await split_result(w)
    request = await w.fd.post_user_message(
        int(second["channel_id"]), w.bob, f"<@{w.fd.bot_user.id}> #1 now in red", reference=second
    )
    answer = await reply_answer(w, request)
    assert "Edited from: job #1 image 2" in embed_text(answer)
    assert task_inputs(w.emu, 2) == [w.fd.files(second)[0][1]]
    await wait_until(lambda: DONE in w.fd.reactions(request, user=w.fd.bot_user))
    await settled_to(w, w.bob.id, 1)
    assert first["id"] != second["id"]


async def test_edit_reroll_and_delete_work_on_a_split_result(world: World) -> None:
    """Promise: every result's buttons work, also when its images are in separate messages (the
    buttons ride once, on the last part): Edit 2 edits image 2, Reroll remakes both images, Delete
    removes every part."""
    w = world
    first, second = await split_result(w)
    channel = int(first["channel_id"])
    assert first["components"] == []
    opened = await w.fd.click(channel, w.bob, second, "wan:edit:1:2")
    await opened.wait_response()
    assert opened.response_type == CB_MODAL
    since = w.fd.mark()
    await w.fd.submit_modal(channel, w.bob, opened.modal["custom_id"], {"prompt": "hat"}, second)
    edited = await w.result_message(w.bob, since=since)
    assert "Edited from: job #1 image 2" in embed_text(edited)
    assert task_inputs(w.emu, 2) == [w.fd.files(second)[0][1]]

    since = w.fd.mark()
    reroll = await w.fd.click(channel, w.users[2], second, "wan:reroll:1")
    await reroll.wait_response()
    await w.result_message(w.users[2], since=since)
    assert task_inputs(w.emu, 3) == task_inputs(w.emu, 1)
    assert task_parameters(w.emu, 3)["n"] == 2

    delete = await w.fd.click(channel, w.alice, second, "wan:delete:1")
    assert "Deleted" in await told_privately(delete)
    assert w.fd.message(first["id"]) is None and w.fd.message(second["id"]) is None
