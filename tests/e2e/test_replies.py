"""Reply edits end to end: the real bot, the fake Discord (gateway messages), the Wan emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import Emulator, FaultRule
from tests.support.fake_discord import FakeInteraction
from tests.support.harness import World, embed_text, png, wait_until
from tests.support.results import (
    BOT_DONE,
    button_ids,
    first_result,
    reply_answer,
    settled_to,
    task_inputs,
    task_prompt,
    told_privately,
    usage,
    world_with_intent,
)


@pytest.fixture
async def intent_world(tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    async with world_with_intent(tmp_path, emulator) as w:
        yield w


def mention(w: World) -> str:
    return f"<@{w.fd.bot_user.id}>"


async def offer_of(w: World, request: dict[str, Any]) -> dict[str, Any]:
    """The bot's Edit offer answering a bare reply-ping `request`."""
    offer = await reply_answer(w, request)
    assert button_ids(offer) == [f"wan:offer:{request['id']}:{request['author']['id']}"], offer
    return offer


async def accept(w: World, request: dict[str, Any], user: Any = None) -> FakeInteraction:
    """Click **Edit** on the offer answering `request` (as its author unless `user`)."""
    offer = await offer_of(w, request)
    clicker = user or w.fd.world.users[int(request["author"]["id"])]
    click = await w.fd.click(int(offer["channel_id"]), clicker, offer, button_ids(offer)[0])
    await click.wait_response()
    return click


def result_replying_to(w: World, request: dict[str, Any]):
    """The bot's result message (with files) replying to `request`."""

    def is_result(m: dict[str, Any]) -> bool:
        ref = m.get("message_reference") or {}
        return ref.get("message_id") == request["id"] and bool(m.get("attachments"))

    return w.fd.wait_for_message(request["channel_id"], is_result, 10.0)


async def test_reply_with_mention_edits_the_replied_images_then_its_own(
    intent_world: World,
) -> None:
    w = intent_world
    theirs, mine = png(500, 500, (255, 0, 0)), png(600, 500, (0, 255, 0))
    original = await w.fd.post_user_message(
        w.channel, w.bob, "my cat", attachments=[("cat.png", theirs)]
    )
    request = await w.fd.post_user_message(
        w.channel,
        w.alice,
        f"{mention(w)} put the hat from image 2 on the cat",
        attachments=[("hat.png", mine)],
        reference=original,
        ping_reply=False,
    )
    answer = await reply_answer(w, request)
    assert answer["channel_id"] == str(w.channel.id)  # a reply in the same place, not a thread
    assert len(w.fd.files(answer)) == 1 and f"<@{w.alice.id}>" in answer["content"]
    assert task_inputs(w.emu, 1) == [theirs, mine]
    assert task_prompt(w.emu, 1) == "put the hat from image 2 on the cat"
    await wait_until(lambda: BOT_DONE in w.fd.reactions(request, user=w.fd.bot_user))
    await settled_to(w, w.alice.id, 1)
    assert await usage(w, w.bob.id) == (0, 0)
    job = await w.bots[-1].store.get_job(1)
    assert job is not None and job.source == "reply"
    assert [i["source_message_id"] for i in job.inputs] == [
        int(original["id"]),
        int(request["id"]),
    ]


async def test_reply_ping_to_a_bot_result_edits_that_result_in_its_thread(
    bot_world: World,
) -> None:
    w = bot_world  # no Message Content intent: the bot's own results still work
    result = await first_result(w, w.alice, "make it blue")
    thread = int(result["channel_id"])
    assert thread != w.channel.id
    request = await w.fd.post_user_message(thread, w.bob, "now make it red", reference=result)
    await accept(w, request)
    answer = await result_replying_to(w, request)
    assert answer["channel_id"] == str(thread)
    assert "Edited from: job #1 image 1" in embed_text(answer)
    assert task_inputs(w.emu, 2) == [w.fd.files(result)[0][1]]
    assert task_prompt(w.emu, 2) == "now make it red"
    await settled_to(w, w.bob.id, 1)


async def test_reply_in_a_thread_can_name_which_result_image(bot_world: World) -> None:
    w = bot_world
    result = await first_result(w, w.alice, "two versions", count=2)
    thread = int(result["channel_id"])
    request = await w.fd.post_user_message(
        thread, w.alice, f"{mention(w)} #2 darker please", reference=result, ping_reply=False
    )
    answer = await reply_answer(w, request)
    assert "Edited from: job #1 image 2" in embed_text(answer)
    assert task_inputs(w.emu, 2) == [w.fd.files(result)[1][1]]
    assert task_prompt(w.emu, 2) == "darker please"
    # A chain: a reply to the new result says where it came from in turn.
    again = await w.fd.post_user_message(thread, w.alice, "and sharper", reference=answer)
    await accept(w, again)
    third = await result_replying_to(w, again)
    assert "Edited from: job #2 image 1" in embed_text(third)


async def test_reply_without_images_says_so_and_spends_nothing(intent_world: World) -> None:
    w = intent_world
    original = await w.fd.post_user_message(w.channel, w.bob, "just words")
    request = await w.fd.post_user_message(
        w.channel, w.alice, f"{mention(w)} make it blue", reference=original
    )
    answer = await reply_answer(w, request)
    assert "no images" in answer["content"] and "Nothing was charged" in answer["content"]
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)


async def test_reply_to_someone_elses_image_without_the_intent_points_to_the_menu(
    bot_world: World,
) -> None:
    w = bot_world
    original = await w.fd.post_user_message(
        w.channel, w.bob, "my cat", attachments=[("cat.png", png())]
    )
    request = await w.fd.post_user_message(
        w.channel, w.alice, f"{mention(w)} add a hat", reference=original, ping_reply=False
    )
    answer = await reply_answer(w, request)
    assert "Edit with Wan" in answer["content"] and "Apps" in answer["content"]
    assert w.emu.created_count == 0


async def test_reply_with_its_own_image_to_someone_elses_without_the_intent_edits_its_own(
    bot_world: World,
) -> None:
    w = bot_world  # bob's message is blanked for the bot; alice's reply (a mention) is not
    mine = png(600, 500, (0, 255, 0))
    original = await w.fd.post_user_message(
        w.channel, w.bob, "my cat", attachments=[("cat.png", png())]
    )
    request = await w.fd.post_user_message(
        w.channel,
        w.alice,
        f"{mention(w)} add a hat",
        attachments=[("hat.png", mine)],
        reference=original,
        ping_reply=False,
    )
    answer = await reply_answer(w, request)
    assert len(w.fd.files(answer)) == 1 and "Edit with Wan" not in answer["content"]
    assert task_inputs(w.emu, 1) == [mine]
    await settled_to(w, w.alice.id, 1)


async def test_empty_prompt_and_no_quota_are_answered_with_nothing_spent(
    bot_world: World,
) -> None:
    w = bot_world
    result = await first_result(w, w.alice)
    thread = int(result["channel_id"])
    empty = await w.fd.post_user_message(thread, w.bob, mention(w), reference=result)
    answer = await reply_answer(w, empty)
    assert "prompt" in answer["content"] and "Nothing was charged" in answer["content"]
    store = w.bots[-1].store
    await store.set_user_limit(w.guild.id, w.admin.id, w.bob.id, 2)
    spent = await store.reserve(w.guild.id, w.bob.id, 2)
    await store.settle(spent.id, 2)
    resets_at = (await store.quota_status(w.guild.id, w.bob.id)).resets_at
    broke = await w.fd.post_user_message(
        thread, w.bob, f"{mention(w)} make it red", reference=result, ping_reply=False
    )
    text = (await reply_answer(w, broke))["content"]
    assert "You've used your 2 images for today." in text  # the limit hit, none left
    assert f"Your allowance resets <t:{int(resets_at.timestamp())}:R>." in text
    assert "Nothing was charged" in text
    assert w.emu.created_count == 1  # only alice's first job
    assert await usage(w, w.bob.id) == (2, 0)  # only what was spent before


async def test_a_bare_reply_ping_offers_an_edit_and_charges_nothing_until_clicked(
    bot_world: World,
) -> None:
    """Guards "no charge by accident": a reply that pings the bot only through the reply toggle
    ("thanks!") starts nothing; its author's click on the offer's Edit does, others are refused."""
    w = bot_world
    result = await first_result(w, w.alice, "make it blue")
    await settled_to(w, w.alice.id, 1)
    thread = int(result["channel_id"])
    thanks = await w.fd.post_user_message(thread, w.bob, "thanks!", reference=result)
    offer = await offer_of(w, thanks)
    assert "thanks!" in offer["content"] and "1 image(s) in" in offer["content"]
    assert offer["mentions"] == []  # the offer pings nobody
    assert w.emu.created_count == 1 and await usage(w, w.bob.id) == (0, 0)
    stranger = await w.fd.click(thread, w.alice, offer, button_ids(offer)[0])
    assert "Only" in await told_privately(stranger)
    assert w.emu.created_count == 1 and w.fd.message(offer["id"]) is not None
    await accept(w, thanks)
    answer = await result_replying_to(w, thanks)
    assert "Edited from: job #1 image 1" in embed_text(answer)
    assert task_prompt(w.emu, 2) == "thanks!"
    await settled_to(w, w.bob.id, 1)
    await w.fd.wait_until(lambda: w.fd.message(offer["id"]) is None)  # the offer is gone


async def test_an_explicit_mention_in_a_reply_to_a_result_edits_at_once(bot_world: World) -> None:
    """Guards the convenience kept: an @mention in the reply's text is a request, no offer."""
    w = bot_world
    result = await first_result(w, w.alice, "make it blue")
    thread = int(result["channel_id"])
    request = await w.fd.post_user_message(
        thread, w.bob, f"{mention(w)} make it red", reference=result
    )
    answer = await result_replying_to(w, request)
    assert not button_ids(answer) or "wan:offer" not in button_ids(answer)[0]
    await settled_to(w, w.bob.id, 1)


async def test_an_unclicked_offer_disappears_and_spends_nothing(bot_world: World) -> None:
    """Guards the offer's end: after its time it is deleted, and nothing was reserved or created."""
    w = bot_world
    w.bots[-1].get_cog("Replies").offer_seconds = 0.3  # the minute, shortened for the test
    result = await first_result(w, w.alice, "make it blue")
    await settled_to(w, w.alice.id, 1)
    lol = await w.fd.post_user_message(int(result["channel_id"]), w.alice, "lol", reference=result)
    offer = await offer_of(w, lol)
    await w.fd.wait_until(lambda: w.fd.message(offer["id"]) is None)
    assert w.emu.created_count == 1
    assert await usage(w, w.alice.id) == (1, 0)


async def test_a_reply_request_deleted_while_it_runs_leaves_no_reaction_state(
    intent_world: World,
) -> None:
    """The member deletes their reply request while Wan works on it: the result still comes, its
    last reaction can't be added (Unknown Message), and the bot keeps nothing of the request's
    reactions afterwards (it used to keep them for good, one entry per such request)."""
    w = intent_world
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.0))
    original = await w.fd.post_user_message(
        w.channel, w.bob, "my cat", attachments=[("cat.png", png(500, 500))]
    )
    request = await w.fd.post_user_message(
        w.channel, w.alice, f"{mention(w)} make it blue", reference=original, ping_reply=False
    )
    progress = w.bots[-1].runner.surface.progress_messages  # type: ignore[attr-defined]
    await wait_until(lambda: progress._reacted.get(1) == "🎨", timeout=10)
    await w.fd.delete_user_message(request)
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    await wait_until(lambda: not w.bots[-1].runner.inflight.running)
    assert not progress._reacted
