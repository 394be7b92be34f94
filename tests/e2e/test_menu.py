"""The "Edit with Wan" message command and its modal, end to end (no Message Content intent)."""

from __future__ import annotations

from tests.support.harness import World, embed_text, png
from tests.support.results import (
    settled_to,
    task_inputs,
    task_parameters,
    task_prompt,
    told_privately,
    usage,
)

MENU = "Edit with Wan"
CB_CHANNEL_MESSAGE, CB_MODAL = 4, 9


async def test_menu_is_registered_as_a_message_command(bot_world: World) -> None:
    w = bot_world
    commands = {(c["name"], c.get("type", 1)) for c in w.fd.commands()}
    assert (MENU, 3) in commands and ("wanedit", 1) in commands


async def test_menu_on_a_message_without_images_explains_without_a_modal(
    bot_world: World,
) -> None:
    w = bot_world
    target = await w.fd.post_user_message(w.channel, w.bob, "no pictures here")
    ix = await w.fd.context_menu(w.guild, w.channel, w.alice, MENU, target_message=target)
    await ix.wait_response()
    assert ix.response_type == CB_CHANNEL_MESSAGE and ix.ephemeral and ix.modal is None
    assert "no images" in ix.response_data["content"]


async def test_menu_modal_submit_edits_that_messages_images(bot_world: World) -> None:
    w = bot_world
    first, second = png(500, 500, (10, 10, 200)), png(520, 480, (200, 10, 10))
    target = await w.fd.post_user_message(
        w.channel, w.bob, "", attachments=[("a.png", first), ("b.png", second)]
    )
    ix = await w.fd.context_menu(w.guild, w.channel, w.alice, MENU, target_message=target)
    await ix.wait_response()
    assert ix.response_type == CB_MODAL and ix.modal is not None
    since = w.fd.mark()
    submit = await w.fd.submit_modal(
        w.channel,
        w.alice,
        ix.modal["custom_id"],
        {"prompt": "paint both gold", "negative_prompt": "blurry", "count": "2"},
    )
    await submit.wait_response()
    result = await w.result_message(w.alice, since=since)
    assert len(w.fd.files(result)) == 2
    assert "paint both gold" in embed_text(result)
    assert task_inputs(w.emu, 1) == [first, second]
    assert task_prompt(w.emu, 1) == "paint both gold"
    assert task_parameters(w.emu, 1)["n"] == 2
    await settled_to(w, w.alice.id, 2)
    job = await w.bots[-1].store.get_job(1)
    assert job is not None and job.source == "menu" and job.negative_prompt == "blurry"
    # Kept so that a Reroll can fetch fresh URLs from the message later.
    assert {i["source_message_id"] for i in job.inputs} == {int(target["id"])}


async def test_menu_modal_with_a_bad_count_is_refused_for_free(bot_world: World) -> None:
    w = bot_world
    target = await w.fd.post_user_message(w.channel, w.bob, "", attachments=[("a.png", png())])
    ix = await w.fd.context_menu(w.guild, w.channel, w.alice, MENU, target_message=target)
    await ix.wait_response()
    submit = await w.fd.submit_modal(
        w.channel, w.alice, ix.modal["custom_id"], {"prompt": "gold", "count": "7"}
    )
    text = await told_privately(submit)
    assert "1 to 4" in text and "Nothing was charged" in text
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)
