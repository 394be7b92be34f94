"""Reply edits end to end: the real bot, the fake Discord (gateway messages), the Wan emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import Emulator
from tests.harness import World, embed_text, png, wait_until
from tests.test_results_support import (
    BOT_DONE,
    first_result,
    reply_answer,
    settled_to,
    task_inputs,
    task_prompt,
    usage,
    world_with_intent,
)


@pytest.fixture
async def intent_world(tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    async with world_with_intent(tmp_path, emulator) as w:
        yield w


def mention(w: World) -> str:
    return f"<@{w.fd.bot_user.id}>"


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
    answer = await reply_answer(w, request)
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
    third = await reply_answer(w, again)
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
    broke = await w.fd.post_user_message(thread, w.bob, "make it red", reference=result)
    text = (await reply_answer(w, broke))["content"]
    assert "You've used your 2 images for today." in text  # the limit hit, none left
    assert f"Your allowance resets <t:{int(resets_at.timestamp())}:R>." in text
    assert "Nothing was charged" in text
    assert w.emu.created_count == 1  # only alice's first job
    assert await usage(w, w.bob.id) == (2, 0)  # only what was spent before
