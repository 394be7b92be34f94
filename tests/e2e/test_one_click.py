"""One click, one job: double clicks on Reroll, the Edit form, the menu form, a reply's Edit offer,
Cancel and Delete, end to end (real bot, fake Discord, Wan emulator)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.sandbox import FaultRule
from tests.support.fake_discord import FakeInteraction
from tests.support.harness import World, embed_text, png, wait_until
from tests.support.results import (
    button_ids,
    first_result,
    private_text,
    reply_answer,
    settled_to,
    told_privately,
    usage,
)

CB_MODAL = 9


def job_id(result: dict[str, Any]) -> int:
    return int(result["embeds"][0]["footer"]["text"].rsplit("#", 1)[1])


async def both(*clicks: Any) -> list[FakeInteraction]:
    """Send interactions at the same moment (a double click) and wait for both answers."""
    sent = await asyncio.gather(*clicks)
    await asyncio.gather(*(ix.wait_response() for ix in sent))
    return list(sent)


def started(ix: FakeInteraction) -> bool:
    """The click started a job: its answer is the public progress message."""
    return ix.response_type == 5 and not ix.ephemeral


async def test_a_double_click_on_reroll_starts_one_job(bot_world: World) -> None:
    """Guards "one click, one job" for Reroll: the second of two simultaneous clicks is told
    privately which job is already on it, and only one task is created and charged."""
    w = bot_world
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    channel, custom_id = int(result["channel_id"]), f"wan:reroll:{job_id(result)}"
    clicks = await both(
        w.fd.click(channel, w.bob, result, custom_id), w.fd.click(channel, w.bob, result, custom_id)
    )
    first, repeat = sorted(clicks, key=lambda ix: not started(ix))
    assert started(first) and not started(repeat)
    assert "Already on it: job #2" in await told_privately(repeat)
    await w.result_message(w.bob)
    await settled_to(w, w.bob.id, 1)
    assert w.emu.created_count == 2  # alice's job and one reroll


async def test_a_reroll_click_while_its_job_runs_names_it_even_after_a_restart(
    world: World,
) -> None:
    """Guards the store-side dedupe: a later click on the same Reroll, while the job it started
    is unfinished, names that job instead of starting another, also from a restarted bot."""
    w = world
    bot = await w.start_bot()
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    # Held, not a fixed running time: the job must still be unfinished after the restart.
    w.emu.hold("running")
    channel, custom_id = int(result["channel_id"]), f"wan:reroll:{job_id(result)}"
    first = await w.fd.click(channel, w.bob, result, custom_id)
    await first.wait_original(lambda m: "Job #2" in embed_text(m))
    again = await w.fd.click(channel, w.bob, result, custom_id)
    assert "Already on it: job #2" in await told_privately(again)
    await w.stop_bot(bot)
    await w.start_bot()
    after = await w.fd.click(channel, w.bob, result, custom_id)
    assert "Already on it: job #2" in await told_privately(after)
    w.emu.release("running")
    await w.result_message(w.bob)
    await settled_to(w, w.bob.id, 1)
    assert w.emu.created_count == 2


async def test_a_double_submit_of_the_edit_form_starts_one_job(bot_world: World) -> None:
    """Guards "one click, one job" for Edit's form: sent twice at once, it makes one job."""
    w = bot_world
    result = await first_result(w, w.alice)
    channel = int(result["channel_id"])
    opened = await w.fd.click(channel, w.bob, result, f"wan:edit:{job_id(result)}")
    await opened.wait_response()
    assert opened.response_type == CB_MODAL
    form = opened.modal["custom_id"]
    values = {"prompt": "add a hat"}
    clicks = await both(
        w.fd.submit_modal(channel, w.bob, form, values, message=result),
        w.fd.submit_modal(channel, w.bob, form, values, message=result),
    )
    repeat = next(ix for ix in clicks if not started(ix))
    assert "Already on it" in await told_privately(repeat)
    await w.result_message(w.bob)
    await settled_to(w, w.bob.id, 1)
    assert w.emu.created_count == 2


async def test_a_double_submit_of_the_menu_form_starts_one_job(bot_world: World) -> None:
    """Guards "one click, one job" for the Edit with Wan menu's form."""
    w = bot_world
    source = await w.fd.post_user_message(w.channel, w.bob, "", attachments=[("a.png", png())])
    menu = await w.fd.context_menu(
        w.guild, w.channel, w.alice, "Edit with Wan", target_message=source
    )
    await menu.wait_response()
    form = menu.modal["custom_id"]
    clicks = await both(
        w.fd.submit_modal(w.channel, w.alice, form, {"prompt": "gold"}),
        w.fd.submit_modal(w.channel, w.alice, form, {"prompt": "gold"}),
    )
    assert sum(started(ix) for ix in clicks) == 1
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    assert w.emu.created_count == 1


async def test_a_double_click_on_a_reply_offer_starts_one_job(bot_world: World) -> None:
    """Guards "one click, one job" for the reply confirmation (the offer's Edit)."""
    w = bot_world
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    thread = int(result["channel_id"])
    request = await w.fd.post_user_message(thread, w.alice, "darker", reference=result)
    offer = await reply_answer(w, request)
    (custom_id,) = button_ids(offer)
    clicks = await both(
        w.fd.click(thread, w.alice, offer, custom_id), w.fd.click(thread, w.alice, offer, custom_id)
    )
    await w.fd.wait_until(lambda: any("Already on it" in private_text(ix) for ix in clicks))
    await w.fd.wait_for_message(
        thread,
        lambda m: (
            (m.get("message_reference") or {}).get("message_id") == request["id"]
            and bool(m.get("attachments"))
        ),
        10.0,
    )
    await settled_to(w, w.alice.id, 2)
    assert w.emu.created_count == 2


async def test_cancel_and_delete_are_idempotent(world: World) -> None:
    """Guards idempotent Cancel and Delete: a double click cancels once (one cancel call to Wan, the
    repeat told privately), a later click says it is already cancelled; a double Delete deletes once."""
    w = world
    w.emu.config.max_running = 1
    await w.start_bot()
    w.emu.add_fault(FaultRule(op="task", running_seconds=3))
    await w.wanedit(w.bob, "occupies the only slot")
    ix = await w.wanedit(w.alice, "waits pending")
    pending = await ix.wait_original(lambda m: "waiting for a free slot" in embed_text(m))
    (cancel,) = button_ids(pending)
    clicks = await both(
        w.fd.click(w.channel, w.alice, pending, cancel),
        w.fd.click(w.channel, w.alice, pending, cancel),
    )
    texts = [await told_privately(c) for c in clicks]
    assert any("Already cancelling" in t for t in texts), texts
    await ix.wait_original(lambda m: "Cancelled" in embed_text(m))
    cancels = [r for r in w.emu.request_log if r[1] == "POST" and r[2].endswith("/cancel")]
    assert len(cancels) == 1
    await settled_to(w, w.alice.id, 0)
    result = await w.result_message(w.bob)
    channel, delete = int(result["channel_id"]), f"wan:delete:{job_id(result)}"
    deletes = await both(
        w.fd.click(channel, w.bob, result, delete), w.fd.click(channel, w.bob, result, delete)
    )
    for d in deletes:
        assert await told_privately(d)
    await wait_until(lambda: w.fd.message(result["id"]) is None)
    assert await usage(w, w.bob.id) == (1, 0)
