"""Buttons on result messages (Reroll, Edit, Delete) end to end, including after a restart."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.jobs.running_times import KEY as RUNNING_TIMES
from bot.sandbox import Emulator
from tests.support.fake_discord.constants import MANAGE_MESSAGES
from tests.support.harness import World, embed_text, png, wait_until
from tests.support.results import (
    button_ids,
    first_result,
    private_text,
    settled_to,
    task_inputs,
    task_parameters,
    task_prompt,
    told_privately,
    usage,
    world_with_intent,
)

CB_MODAL = 9


def job_id(result: dict[str, Any]) -> int:
    footer = result["embeds"][0]["footer"]["text"]
    return int(footer.rsplit("#", 1)[1])


async def click_modal(
    w: World, result: dict[str, Any], user: Any, custom_id: str, values: dict[str, str]
) -> Any:
    """Click a button that opens a modal on `result`, then submit the modal with `values`."""
    channel = int(result["channel_id"])
    ix = await w.fd.click(channel, user, result, custom_id)
    await ix.wait_response()
    assert ix.response_type == CB_MODAL, ix
    return await w.fd.submit_modal(channel, user, ix.modal["custom_id"], values, message=result)


async def test_every_result_has_buttons_and_one_edit_per_image(bot_world: World) -> None:
    w = bot_world
    one = await first_result(w, w.alice, "single")
    j = job_id(one)
    assert button_ids(one) == [f"wan:reroll:{j}", f"wan:edit:{j}", f"wan:delete:{j}"]
    two = await first_result(w, w.alice, "double", count=2)
    k = job_id(two)
    assert button_ids(two) == [
        f"wan:reroll:{k}",
        f"wan:delete:{k}",
        f"wan:edit:{k}:1",
        f"wan:edit:{k}:2",
    ]


async def test_reroll_is_the_clickers_own_request_with_a_new_seed(bot_world: World) -> None:
    w = bot_world
    result = await first_result(w, w.alice, "make it blue", count=2)
    await settled_to(w, w.alice.id, 2)
    since = w.fd.mark()
    click = await w.fd.click(
        int(result["channel_id"]), w.bob, result, f"wan:reroll:{job_id(result)}"
    )
    await click.wait_response()
    assert click.response_type == 5 and not click.ephemeral  # public progress, like /wanedit
    again = await w.result_message(w.bob, since=since)
    assert again["channel_id"] == result["channel_id"]  # in the same thread
    assert task_inputs(w.emu, 2) == task_inputs(w.emu, 1)
    assert task_prompt(w.emu, 2) == "make it blue"
    first, second = task_parameters(w.emu, 1), task_parameters(w.emu, 2)
    assert second["n"] == 2 and second["seed"] != first["seed"]
    await settled_to(w, w.bob.id, 2)
    assert await usage(w, w.alice.id) == (2, 0)
    job = await w.bots[-1].store.get_job(job_id(again))
    assert job is not None and job.source == "reroll" and job.user_id == w.bob.id


async def menu_result(w: World, source: dict[str, Any]) -> dict[str, Any]:
    """Alice's result of Edit with Wan on `source`."""
    menu = await w.fd.context_menu(
        w.guild, w.channel, w.alice, "Edit with Wan", target_message=source
    )
    await menu.wait_response()
    since = w.fd.mark()
    await w.fd.submit_modal(w.channel, w.alice, menu.modal["custom_id"], {"prompt": "gold"})
    result = await w.result_message(w.alice, since=since)
    await settled_to(w, w.alice.id, 1)
    return result


async def test_reroll_fetches_fresh_urls_or_says_the_source_is_gone(
    tmp_path: Path, emulator: Emulator
) -> None:
    async with world_with_intent(tmp_path, emulator) as w:
        source = await w.fd.post_user_message(w.channel, w.bob, "", attachments=[("a.png", png())])
        result = await menu_result(w, source)
        j = job_id(result)
        # Days later the stored URL has expired; the source message gives a fresh one.
        w.fd.advance_cdn_clock(3 * 86400)
        since = w.fd.mark()
        ok = await w.fd.click(int(result["channel_id"]), w.bob, result, f"wan:reroll:{j}")
        await ok.wait_response()
        await w.result_message(w.bob, since=since)
        assert task_inputs(w.emu, 2) == task_inputs(w.emu, 1)
        await settled_to(w, w.bob.id, 1)
        await w.fd.delete_user_message(source)
        gone = await w.fd.click(int(result["channel_id"]), w.bob, result, f"wan:reroll:{j}")
        text = await told_privately(gone)
        assert "gone" in text and "Nothing was charged" in text
        assert w.emu.created_count == 2


async def test_edit_button_edits_the_chosen_image_of_the_result(bot_world: World) -> None:
    w = bot_world
    result = await first_result(w, w.alice, "two cats", count=2)
    j = job_id(result)
    since = w.fd.mark()
    submit = await click_modal(w, result, w.bob, f"wan:edit:{j}:2", {"prompt": "add a hat"})
    await submit.wait_response()
    edited = await w.result_message(w.bob, since=since)
    assert edited["channel_id"] == result["channel_id"]
    assert f"Edited from: job #{j} image 2" in embed_text(edited)
    assert task_inputs(w.emu, 2) == [w.fd.files(result)[1][1]]
    assert task_prompt(w.emu, 2) == "add a hat"
    await settled_to(w, w.bob.id, 1)


async def test_delete_is_for_the_requester_and_moderators_only(bot_world: World) -> None:
    w = bot_world
    moderator = w.fd.add_user("mod")
    w.fd.add_member(w.guild, moderator, permissions=MANAGE_MESSAGES)
    mine = await first_result(w, w.alice, "first")
    channel = int(mine["channel_id"])
    stranger = await w.fd.click(channel, w.bob, mine, f"wan:delete:{job_id(mine)}")
    assert "Only the member" in await told_privately(stranger)
    assert w.fd.message(mine["id"]) is not None
    owner = await w.fd.click(channel, w.alice, mine, f"wan:delete:{job_id(mine)}")
    assert "Deleted" in await told_privately(owner)
    assert w.fd.message(mine["id"]) is None
    other = await first_result(w, w.alice, "second")
    by_mod = await w.fd.click(
        int(other["channel_id"]), moderator, other, f"wan:delete:{job_id(other)}"
    )
    assert "Deleted" in await told_privately(by_mod)
    assert w.fd.message(other["id"]) is None


async def spend(w: World, user_id: int, limit: int, used: int) -> str:
    """Give `user_id` a daily `limit` with `used` of it spent; return the reset as Discord markup."""
    store = w.bots[-1].store
    await store.set_user_limit(w.guild.id, w.admin.id, user_id, limit)
    held = await store.reserve(w.guild.id, user_id, used)
    await store.settle(held.id, used)
    status = await store.quota_status(w.guild.id, user_id)
    return f"<t:{int(status.resets_at.timestamp())}:R>"


async def test_clicks_by_a_user_without_quota_spend_nothing(bot_world: World) -> None:
    w = bot_world
    result = await first_result(w, w.alice, count=2)
    await settled_to(w, w.alice.id, 2)
    j = job_id(result)
    reset = await spend(w, w.bob.id, 3, 2)
    reroll = await w.fd.click(int(result["channel_id"]), w.bob, result, f"wan:reroll:{j}")
    text = await told_privately(reroll)
    assert "You have 1 image left today and this needs 2." in text  # a reroll asks for 2 again
    assert f"Your allowance resets {reset}." in text and "Nothing was charged" in text
    await w.bots[-1].store.set_user_limit(w.guild.id, w.admin.id, w.bob.id, 2)
    edit = await click_modal(w, result, w.bob, f"wan:edit:{j}:1", {"prompt": "red"})
    text = await told_privately(edit)
    assert "You've used your 2 images for today." in text
    assert f"Your allowance resets {reset}." in text and "Nothing was charged" in text
    assert w.emu.created_count == 1
    assert await usage(w, w.bob.id) == (2, 0)  # only what `spend` charged


async def test_buttons_work_after_a_restart(world: World) -> None:
    w = world
    first = await w.start_bot()
    result = await first_result(w, w.alice, "before the restart")
    await settled_to(w, w.alice.id, 1)
    await w.stop_bot(first)
    await w.start_bot()
    j = job_id(result)
    since = w.fd.mark()
    click = await w.fd.click(int(result["channel_id"]), w.bob, result, f"wan:reroll:{j}")
    await click.wait_response()
    rerolled = await w.result_message(w.bob, since=since)
    assert task_prompt(w.emu, 2) == "before the restart"
    since = w.fd.mark()
    await click_modal(w, result, w.users[2], f"wan:edit:{j}", {"prompt": "after the restart"})
    edited = await w.result_message(w.users[2], since=since)
    assert f"Edited from: job #{j} image 1" in embed_text(edited)
    assert rerolled["id"] != edited["id"]


async def test_unloading_the_edit_extension_removes_the_menu_and_buttons_stay_registered(
    bot_world: World,
) -> None:
    """Persistent buttons are registered once by the bot (cogs.launcher), not by an extension: an
    extension reload never leaves results without working buttons; the menu comes and goes with it."""
    w = bot_world
    bot = w.bots[-1]
    job = await first_result(w, w.alice)
    await bot.unload_extension("cogs.edit")
    assert "Edit with Wan" not in [
        c.name for c in bot.tree.get_commands(type=discord.AppCommandType.message)
    ]
    j = job_id(job)
    since = w.fd.mark()
    click = await w.fd.click(int(job["channel_id"]), w.bob, job, f"wan:reroll:{j}")
    await click.wait_response()
    rerolled = await w.result_message(w.bob, since=since)
    assert rerolled["id"] != job["id"]
    await bot.load_extension("cogs.edit")
    assert "Edit with Wan" in [
        c.name for c in bot.tree.get_commands(type=discord.AppCommandType.message)
    ]


def click_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "cogs.utils.job_buttons" and r.levelno == logging.ERROR
    ]


async def told_error(ix: Any) -> str:
    """The private "went wrong" answer (after an ephemeral deferral, other private text may come
    first: the placeholder is resolved before the follow-up)."""
    await ix.wait_for(lambda i: "went wrong" in private_text(i))
    return private_text(ix)


async def test_a_failing_click_is_logged_with_a_reference_and_told_privately(
    bot_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = bot_world
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    j, channel = job_id(result), int(result["channel_id"])
    # Reroll: reading its public "thinking…" message back fails, after the deferral.
    w.fd.inject_failure(
        "GET", r"/webhooks/\d+/[^/]+/messages/@original$", 404, {"code": 10008, "message": "x"}
    )
    reroll = await w.fd.click(channel, w.bob, result, f"wan:reroll:{j}")
    text = await told_error(reroll)
    assert f"Something went wrong on our side (job #{j}, ref {reroll.id})" in text
    assert "Nothing was charged" in text
    await wait_until(lambda: reroll.original is None and not reroll.loading)  # placeholder gone
    # Edit: Discord refuses the modal.
    w.fd.inject_failure("POST", r"/interactions/\d+/[^/]+/callback$", 400, {"code": 50035})
    edit = await w.fd.click(channel, w.bob, result, f"wan:edit:{j}")
    assert f"(job #{j}, ref {edit.id})" in await told_error(edit)
    # Delete: Discord refuses (say the bot lost access to the thread).
    w.fd.inject_failure(
        "DELETE", r"/channels/\d+/messages/\d+$", 403, {"code": 50013, "message": "Missing"}
    )
    delete = await w.fd.click(channel, w.alice, result, f"wan:delete:{j}")
    assert f"(job #{j}, ref {delete.id})" in await told_error(delete)
    await wait_until(lambda: not delete.loading)
    assert w.fd.message(result["id"]) is not None
    errors = await wait_until(lambda: len(click_errors(caplog)) == 3 and click_errors(caplog))
    for record, ix, kind in zip(
        errors,
        (reroll, edit, delete),
        (discord.NotFound, discord.HTTPException, discord.Forbidden),
        strict=True,
    ):
        assert f"job #{j}, ref {ix.id}" in record.getMessage()
        assert record.exc_info is not None and isinstance(record.exc_info[1], kind)
    assert w.emu.created_count == 1
    assert await usage(w, w.bob.id) == (0, 0)


async def test_a_locked_database_does_not_keep_a_click_past_discords_3_seconds(
    bot_world: World,
) -> None:
    w = bot_world
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    store = w.bots[-1].store
    # The first job's last write (its running time, stored after delivery) is in before the lock
    # is taken: a write left waiting on the lock would hold up every read on the store's one
    # connection, the click's first, and only the quota check is bounded before the deferral.
    await wait_until(lambda: store.get_meta(RUNNING_TIMES))
    await store.set_user_limit(w.guild.id, w.admin.id, w.bob.id, 0)
    # Another program holds the write lock: the quota check's reserve waits on it (up to 5 s).
    other = sqlite3.connect(w.db_path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        channel, j = int(result["channel_id"]), job_id(result)
        click = await w.fd.click(channel, w.bob, result, f"wan:reroll:{j}")
        await click.wait_response(timeout=3.0)  # the deferral came within Discord's limit
        assert click.response_type == 5
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Once the lock is gone, `submit` checks again and refuses privately.
    text = await told_privately(click)
    assert "You're blocked from using Wan in this server." in text
    assert "Nothing was charged" in text
    assert w.emu.created_count == 1
    assert await usage(w, w.bob.id) == (0, 0)
