"""No frozen progress: a job's response message always ends showing done (with a link), no result, or
cancelled, without a live Cancel button, also once the interaction token is dead (a long queue, a
restart, a DM). End to end: the real bot, the fake Discord (dead tokens answer 401/50027), the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.sandbox import FaultRule
from bot.store import open_store
from tests.support.harness import World, embed_text, wait_until
from tests.support.results import button_ids, settled_to, told_privately


def jump_url(w: World, message: dict[str, Any], guild: bool = True) -> str:
    where = w.guild.id if guild else "@me"
    return f"/channels/{where}/{message['channel_id']}/{message['id']}"


def ended(message: dict[str, Any] | None, word: str) -> bool:
    return message is not None and word in embed_text(message) and not message["components"]


async def test_a_long_queue_outliving_the_token_still_ends_done_with_a_link(world: World) -> None:
    """Guards "no frozen progress" for long queues: the token died while the job waited (queued,
    with Cancel), yet its message ends as Done with a link to the result and no button."""
    w = world
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.0))
    await w.wanedit(w.bob, "takes the only slot")
    await w.emu.wait_for_task_count(1, timeout=5)
    ix = await w.wanedit(w.alice, "waits in the queue")
    queued = await ix.wait_original(lambda m: "Queued" in embed_text(m))
    assert button_ids(queued)  # the live Cancel button
    w.fd.set_interaction_token_expired(ix)
    result = await w.result_message(w.alice)
    final = await ix.wait_original(lambda m: ended(m, "Done"))
    assert jump_url(w, result) in embed_text(final)
    await settled_to(w, w.alice.id, 1)


async def test_a_job_resumed_after_its_token_expired_ends_done(world: World) -> None:
    """Guards "no frozen progress" after a restart: the bot comes back after the token's 15 minutes
    and still marks the response message Done, with the bot's own token."""
    w = world
    first = await w.start_bot()
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.5))
    ix = await w.wanedit(w.alice, "survives a long restart")
    await ix.wait_original(lambda m: "Job #1" in embed_text(m))
    await w.stop_bot(first)
    # The restart took longer than the token lives: Discord refuses it and the stored expiry says so.
    w.fd.set_interaction_token_expired(ix)
    store = await open_store(f"sqlite:///{w.db_path}")
    await store.update_job(1, token_expires_at=datetime.now(UTC) - timedelta(minutes=1))
    await store.close()
    await w.start_bot()
    result = await w.result_message(w.alice)
    final = await ix.wait_original(lambda m: ended(m, "Done"))
    assert jump_url(w, result) in embed_text(final)


async def test_a_dm_job_outliving_its_token_ends_done(bot_world: World) -> None:
    """Guards "no frozen progress" in DMs: the response message there is edited with the bot token."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.0))
    dm = w.fd.dm_channel(w.alice)
    ix = await w.fd.slash(None, dm, w.alice, "wanedit", {"prompt": "private", "image": w.upload()})
    await w.emu.wait_for_task_count(1, timeout=5)
    w.fd.set_interaction_token_expired(ix)
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == dm.id
    final = await ix.wait_original(lambda m: ended(m, "Done"))
    assert jump_url(w, result, guild=False) in embed_text(final)


async def test_a_failed_job_outliving_its_token_says_why_on_its_message(bot_world: World) -> None:
    """Guards the failed ending with a dead token: the message says why and that nothing was
    charged, its Cancel button gone, and no extra channel message is needed."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed", running_seconds=1.0))
    ix = await w.wanedit(w.alice, "refused by the filter")
    await w.emu.wait_for_task_count(1, timeout=5)
    w.fd.set_interaction_token_expired(ix)
    final = await ix.wait_original(lambda m: ended(m, "No result"))
    assert "Nothing was charged" in embed_text(final)
    await settled_to(w, w.alice.id, 0)


async def test_a_cancel_click_on_a_message_whose_ending_never_landed_shows_it(
    bot_world: World,
) -> None:
    """Guards "buttons of ended jobs are removed": when neither token could edit the message (the
    outcome was posted in the channel instead), a click on its stale Cancel puts the ending on it."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed", running_seconds=1.0))
    ix = await w.wanedit(w.alice, "refused, message out of reach")
    queued = await ix.wait_original(lambda m: "Job #1" in embed_text(m) and m["components"])
    await w.emu.wait_for_task_count(1, timeout=5)
    w.fd.set_interaction_token_expired(ix)
    w.fd.inject_failure("PATCH", rf"/channels/\d+/messages/{queued['id']}$", 503, times=10)
    posted = await w.fd.wait_for_message(
        w.channel, lambda m: "ended without a result" in (m.get("content") or "")
    )
    assert f"<@{w.alice.id}>" in posted["content"] and "Nothing was charged" in posted["content"]
    stale = w.fd.message(queued["id"])
    assert stale is not None and button_ids(stale)  # the edit never landed
    click = await w.fd.click(w.channel, w.alice, stale, button_ids(stale)[0])
    assert "already finished" in await told_privately(click)
    await wait_until(lambda: ended(w.fd.message(queued["id"]), "No result"))


async def test_the_last_word_after_the_end_still_uses_the_live_token(bot_world: World) -> None:
    """The store forgets a job's interaction token when the job ends; the last word, said right
    after, still edits the response with it while it lives, here where the bot's own token may not
    (403 Missing Access): the message says why, with no stand-in post in the channel."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed", running_seconds=1.0))
    ix = await w.wanedit(w.alice, "refused, the channel closed to the bot's own token")
    queued = await ix.wait_original(lambda m: "Job #1" in embed_text(m) and m["components"])
    missing_access = {"message": "Missing Access", "code": 50001}
    w.fd.inject_failure(
        "PATCH", rf"/channels/\d+/messages/{queued['id']}$", 403, missing_access, times=10
    )
    final = await ix.wait_original(lambda m: ended(m, "No result"))
    assert "Nothing was charged" in embed_text(final)
    job = await w.bots[-1].store.get_job(1)
    assert job is not None and job.finished and job.interaction_token is None
    assert not [
        m for m in w.fd.messages(w.channel) if "without a result" in (m.get("content") or "")
    ]
