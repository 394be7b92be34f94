"""Discord details: where commands may be used, the sync hash, reactions without the
permission, and the Edit form's seed/watermark/prompt-extend fields. Real bot, fake Discord, emulator."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.sandbox import Emulator
from tests.e2e.test_results import button_ids, click_modal, job_id
from tests.support.harness import World, make_world, png
from tests.support.results import (
    first_result,
    reply_answer,
    settled_to,
    task_parameters,
    told_privately,
    world_with_intent,
)

GUILD_INSTALL = 0
GUILD, BOT_DM = 0, 1
ADD_REACTIONS = 1 << 6


async def test_every_command_is_guild_installed_and_used_in_guilds_and_dms(
    bot_world: World,
) -> None:
    """Guards: a user-installed copy can't run the commands in servers without the bot (synced
    `integration_types` is guild install only; `contexts` are guilds and the bot's DMs, and the
    owner's /wanowner the bot's DMs only, when no dev server is set)."""
    commands = bot_world.fd.commands()
    assert {c["name"] for c in commands} >= {"wanedit", "wanquota", "wanowner", "Edit with Wan"}
    for command in commands:
        assert command["integration_types"] == [GUILD_INSTALL], command["name"]
        where = [BOT_DM] if command["name"] == "wanowner" else [GUILD, BOT_DM]
        assert sorted(command["contexts"]) == where, command["name"]


async def test_a_new_application_on_the_same_database_syncs_its_commands(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Guards: the sync hash includes the application id, so a database reused with another bot's
    token registers the commands with that application instead of skipping the sync."""
    first = await make_world(tmp_path, emulator=emulator)
    try:
        await first.start_bot()
        assert first.fd.command_sync_count == 1
    finally:
        await first.close()
        await first.fd.close()
    second = await make_world(tmp_path, emulator=emulator)  # same tmp_path: same sqlite file
    try:
        assert second.fd.application_id != first.fd.application_id
        await second.start_bot()
        assert second.fd.command_sync_count == 1
        assert "wanedit" in {c["name"] for c in second.fd.commands()}
        await second.stop_bot(second.bots[-1])
        await second.start_bot()
        assert second.fd.command_sync_count == 1  # and unchanged again is not synced again
    finally:
        await second.close()
        await second.fd.close()


@pytest.fixture
async def intent_world(tmp_path: Path, emulator: Emulator):  # type: ignore[no-untyped-def]
    async with world_with_intent(tmp_path, emulator) as w:
        yield w


async def test_missing_add_reactions_is_one_log_line(
    intent_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Guards: a reply edit in a channel without Add Reactions still delivers, and the refusals are
    one warning, not a traceback for every stage of every job."""
    w = intent_world
    w.fd.set_bot_permissions(w.guild, w.channel, deny=ADD_REACTIONS)
    caplog.set_level(logging.INFO)
    original = await w.fd.post_user_message(
        w.channel, w.bob, "my cat", attachments=[("cat.png", png())]
    )
    for i in range(2):
        request = await w.fd.post_user_message(
            w.channel,
            w.alice,
            f"<@{w.fd.bot_user.id}> make it number {i}",
            reference=original,
            ping_reply=False,
        )
        answer = await reply_answer(w, request)
        assert w.fd.files(answer)
    await settled_to(w, w.alice.id, 2)
    assert w.fd.reactions(request, user=w.fd.bot_user) == []
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks == []
    warned = [r for r in caplog.records if "can't add reactions" in r.getMessage()]
    assert len(warned) == 1


async def test_edit_form_sets_seed_watermark_and_prompt_extend(bot_world: World) -> None:
    """Guards: the Edit form has the fields /wanedit has beyond the prompt and count, and they
    reach Wan: a seed, the watermark on, prompt extend off."""
    w = bot_world
    result = await first_result(w, w.alice, "a start")
    j = job_id(result)
    assert f"wan:edit:{j}" in button_ids(result)
    since = w.fd.mark()
    submit = await click_modal(
        w,
        result,
        w.alice,
        f"wan:edit:{j}",
        {"prompt": "now in gold", "seed": "1234", "options": ["watermark"]},
    )
    await submit.wait_response()
    await w.result_message(w.alice, since=since)
    params = task_parameters(w.emu, 2)
    assert params["seed"] == 1234 and params["watermark"] is True
    assert params["prompt_extend"] is False


async def test_edit_form_defaults_keep_prompt_extend_on_and_refuse_a_bad_seed(
    bot_world: World,
) -> None:
    """Guards: left alone, the options keep /wanedit's defaults (extend on, no watermark); a seed
    that isn't a number is refused before anything is spent."""
    w = bot_world
    result = await first_result(w, w.alice, "a start")
    j = job_id(result)
    bad = await click_modal(w, result, w.alice, f"wan:edit:{j}", {"prompt": "x", "seed": "abc"})
    text = await told_privately(bad)
    assert "seed" in text and "Nothing was charged" in text
    since = w.fd.mark()
    await click_modal(w, result, w.alice, f"wan:edit:{j}", {"prompt": "now in gold"})
    await w.result_message(w.alice, since=since)
    assert w.emu.created_count == 2
    params = task_parameters(w.emu, 2)
    assert params.get("prompt_extend", True) is True and not params.get("watermark", False)
    assert "seed" in params  # a random one, chosen by the bot
