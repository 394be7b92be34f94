"""Spoiler results: on request, by the server's default (/wansettings), and kept by Reroll and Edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import guild_settings
from tests.e2e.test_results import click_modal, job_id
from tests.support.harness import World, embed_text
from tests.support.results import (
    first_result,
    private_text,
    reply_answer,
    told_privately,
)
from tests.support.store import Clock, open_at


def names(message: dict[str, Any]) -> list[str]:
    """The attachment file names as Discord shows them (a spoiler is a `SPOILER_` name)."""
    return [a["filename"] for a in message["attachments"]]


def all_spoilers(message: dict[str, Any]) -> bool:
    return bool(message["attachments"]) and all(n.startswith("SPOILER_") for n in names(message))


async def set_spoiler(w: World, value: str) -> str:
    ix = await w.fd.slash(w.guild, w.channel, w.admin, "wansettings", {"spoiler": value})
    return embed_text(await ix.wait_original())


async def test_spoiler_on_request_only(bot_world: World) -> None:
    """Guards the `spoiler` option: SPOILER_ file names when asked, plain names otherwise."""
    w = bot_world
    hidden = await first_result(w, w.alice, "secret", spoiler=True, count=2)
    assert all_spoilers(hidden) and len(names(hidden)) == 2
    plain = await first_result(w, w.alice, "open")
    assert names(plain) and not any(n.startswith("SPOILER_") for n in names(plain))


async def test_server_default_makes_spoilers_and_a_request_can_opt_out(bot_world: World) -> None:
    """Guards `/wansettings spoiler:on`: the default for requests that don't say, stored per server."""
    w = bot_world
    shown = await set_spoiler(w, "on")
    assert "Results as spoilers (`spoiler`): off → **on**" in shown
    assert (await guild_settings.load(w.bots[-1].store, w.guild.id)).spoiler is True
    by_default = await first_result(w, w.alice, "default")
    assert all_spoilers(by_default)
    opted_out = await first_result(w, w.bob, "not hidden", spoiler=False)
    assert not any(n.startswith("SPOILER_") for n in names(opted_out))


async def test_server_default_applies_to_reply_edits(bot_world: World) -> None:
    """Guards the default for requests without options: a reply to a result."""
    w = bot_world
    result = await first_result(w, w.alice, "first")
    await set_spoiler(w, "on")
    request = await w.fd.post_user_message(
        int(result["channel_id"]), w.alice, f"<@{w.fd.bot_user.id}> darker", reference=result
    )
    assert all_spoilers(await reply_answer(w, request))


async def test_reroll_and_edit_keep_the_jobs_spoiler(bot_world: World) -> None:
    """Guards "Reroll and Edit keep a job's spoiler", even after the server default changed."""
    w = bot_world
    await set_spoiler(w, "on")
    result = await first_result(w, w.alice, "hidden")
    assert all_spoilers(result)
    await set_spoiler(w, "off")
    since = w.fd.mark()
    click = await w.fd.click(
        int(result["channel_id"]), w.alice, result, f"wan:reroll:{job_id(result)}"
    )
    await click.wait_response()
    rerolled = await w.result_message(w.alice, since=since)
    assert all_spoilers(rerolled)
    since = w.fd.mark()
    await click_modal(w, result, w.alice, f"wan:edit:{job_id(result)}", {"prompt": "edit it"})
    edited = await w.result_message(w.alice, since=since)
    assert all_spoilers(edited)
    # A new request follows the (now off) default.
    assert not all_spoilers(await first_result(w, w.bob, "after"))


async def test_wansettings_needs_manage_server(bot_world: World) -> None:
    """Guards the code-side permission check: a member is refused and nothing changes."""
    w = bot_world
    ix = await w.fd.slash(w.guild, w.channel, w.alice, "wansettings", {"spoiler": "on"})
    text = await told_privately(ix)
    assert "Manage Server" in text and "Nothing was changed" in text
    assert (await guild_settings.load(w.bots[-1].store, w.guild.id)).spoiler is False
    assert private_text(ix)  # private: no public message was posted
    assert not [m for m in w.fd.messages(w.channel) if "Server settings" in embed_text(m)]


async def test_wansettings_without_options_shows_the_settings(bot_world: World) -> None:
    w = bot_world
    ix = await w.fd.slash(w.guild, w.channel, w.admin, "wansettings", {})
    shown = await ix.wait_original()
    assert ix.ephemeral and "Results as spoilers (`spoiler`): off" in embed_text(shown)


async def test_server_settings_survive_a_reopen_and_ignore_junk(tmp_path: Path) -> None:
    """Guards the storage: per server, kept in the sqlite file, a bad stored value reads as default."""
    store = await open_at(tmp_path / "s.db", Clock())
    try:
        assert await guild_settings.save(store, 7, "spoiler", True) == (False, True)
        await store.set_meta(guild_settings.key(8, "spoiler"), "not json")
    finally:
        await store.close()
    store = await open_at(tmp_path / "s.db", Clock())
    try:
        assert (await guild_settings.load(store, 7)).spoiler is True
        assert (await guild_settings.load(store, 8)).spoiler is False  # junk: the default
        assert (await guild_settings.load(store, 9)).spoiler is False  # never set
        assert (await guild_settings.load(store, None)).spoiler is False  # DMs
        with pytest.raises(ValueError):
            await guild_settings.save(store, 7, "spoiler", "yes")
    finally:
        await store.close()
