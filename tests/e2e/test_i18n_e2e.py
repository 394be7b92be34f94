"""Languages through both fakes: command localisations as synced, private answers in the member's
language, public messages in the server's, and a job's language kept across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands

from bot import guild_settings, i18n
from bot.sandbox import FaultRule
from cogs.command_sync import command_hash
from cogs.translator import CatalogueTranslator
from cogs.utils.language import CHOICES
from tests.support.harness import World, embed_text, make_world, wait_until
from tests.support.store import Clock, open_at

ZH = "zh-CN"


def private_text(ix: Any) -> str:
    """What the member was told privately (ephemeral messages only)."""
    parts = [m.get("content") or "" for m in ix.messages if m.get("flags", 0) & 64]
    if ix.response_type == 4 and ix.ephemeral and ix.response_data:
        parts.append(ix.response_data.get("content") or "")
    return "\n".join(parts)


def _options(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for option in node.get("options") or []:
        found.append(option)
        found += _options(option)
    return found


async def test_synced_commands_have_chinese_descriptions(bot_world: World) -> None:
    """Promise: every command, subcommand and option Discord receives has a zh-CN description and
    every choice a zh-CN name (so a Chinese client shows Chinese), names stay English, and the context menu's label is Chinese."""
    commands = bot_world.fd.commands()
    assert {"wanedit", "wanquota", "wansettings", "Edit with Wan"} <= {c["name"] for c in commands}
    assert "wanlanguage" not in {c["name"] for c in commands}  # folded into /wansettings
    missing = []
    for command in commands:
        if command["type"] == 1:
            nodes = [command, *_options(command)]
            for node in nodes:
                zh = (node.get("description_localizations") or {}).get(ZH)
                if not zh or zh == node["description"]:
                    missing.append(f"{command['name']}: {node['name']}: {node['description']!r}")
                assert not node.get("name_localizations"), node["name"]
                for choice in node.get("choices") or []:
                    zh = (choice.get("name_localizations") or {}).get(ZH)
                    # A language's own name reads the same in every client.
                    if choice["name"] not in CHOICES.values() and (not zh or zh == choice["name"]):
                        missing.append(f"{command['name']}: {node['name']}: {choice['name']!r}")
        else:
            assert (command.get("name_localizations") or {}).get(ZH) == "用通义万相编辑"
    assert not missing, "\n".join(missing)
    wanedit = next(c for c in commands if c["name"] == "wanedit")
    assert wanedit["description_localizations"][ZH] == "用通义万相 2.5 按提示词编辑 1 至 3 张图片"
    # English clients get the English text: no en-US/en-GB entries that could drift from it.
    assert not {"en-US", "en-GB"} & set(wanedit["description_localizations"])


async def test_sync_hash_changes_with_the_translations() -> None:
    """Promise: a changed translation changes the command hash, so the next start syncs it."""

    class Other(CatalogueTranslator):
        async def translate(self, string, locale, context):  # type: ignore[no-untyped-def]
            found = await super().translate(string, locale, context)
            return None if found is None else found + "!"

    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)

    @tree.command(
        name="wanedit", description="Edit one to three images with Wan 2.5 from a text prompt"
    )
    async def wanedit(interaction: discord.Interaction) -> None: ...

    plain = await command_hash(tree, 1)
    await tree.set_translator(CatalogueTranslator())
    translated = await command_hash(tree, 1)
    await tree.set_translator(Other())
    changed = await command_hash(tree, 1)
    assert len({plain, translated, changed}) == 3
    await client.close()


async def test_private_answers_follow_each_members_language(bot_world: World) -> None:
    """Promise: in one server a zh-CN member is refused in Chinese and an en-US member in English."""
    w = bot_world
    w.alice.locale = ZH
    zh = await w.fd.slash(w.guild, w.channel, w.alice, "wansettings", {"language": "zh_CN"})
    en = await w.fd.slash(w.guild, w.channel, w.bob, "wansettings", {"language": "zh_CN"})
    await zh.wait_for(private_text)
    await en.wait_for(private_text)
    assert "需要 **管理服务器** 权限才能修改本服务器的 wanbot 设置。未做任何更改。" in private_text(
        zh
    )
    assert "You need the **Manage Server** permission" in private_text(en)
    assert (await guild_settings.load(w.bots[-1].store, w.guild.id)).language == ""


async def wansettings(w: World, user: Any, **options: str) -> str:
    """Run /wansettings as `user` and return the text of its (private) answer."""
    ix = await w.fd.slash(w.guild, w.channel, user, "wansettings", options)
    shown = await ix.wait_original(lambda m: bool(m.get("embeds")))
    assert ix.ephemeral
    return embed_text(shown)


async def test_server_language_is_chosen_by_an_admin_and_kept_by_jobs(bot_world: World) -> None:
    """Promise: `/wansettings language:` (Manage Server) sets the server's language, answered in
    the admin's own; a job made afterwards keeps it for its public messages and the requester's own
    for private ones; "server default" goes back to the server's Discord language."""
    w = bot_world
    store = w.bots[-1].store
    shown = await wansettings(w, w.admin, language="zh_CN")
    assert (
        "Language of public messages (`language`): server default (English) → **简体中文**" in shown
    )
    assert "Progress and results in this server are now in 简体中文" in shown
    assert (await guild_settings.load(store, w.guild.id)).language == "zh_CN"
    await w.wanedit(w.bob, "make it blue")
    await w.result_message(w.bob)
    (job,) = await store.jobs_for_user(w.bob.id)
    assert (job.extra["language"], job.extra["member_language"]) == ("zh_CN", "en")
    w.admin.locale = ZH
    back = await wansettings(w, w.admin, language="default")
    assert (
        "服务器设置" in back
        and "公开消息的语言（`language`）: 简体中文 → **服务器默认（English）**" in back
    )
    assert (await guild_settings.load(store, w.guild.id)).language == ""
    w.admin.locale = "en-US"
    assert (
        "Language of public messages (`language`): server default (English)"
        in await wansettings(w, w.admin)
    )


async def test_a_language_chosen_before_the_upgrade_still_counts(bot_world: World) -> None:
    """Promise: a server language kept by the old /wanlanguage (meta `guild_language:ID`) is read
    as the setting until /wansettings changes it, and a new choice wins over it."""
    w = bot_world
    store = w.bots[-1].store
    await store.set_meta(guild_settings.legacy_language_key(w.guild.id), "zh_CN")
    assert "Language of public messages (`language`): 简体中文" in await wansettings(w, w.admin)
    await w.wanedit(w.bob, "make it blue")
    result = embed_text(await w.result_message(w.bob))
    assert "通义万相编辑 · 任务 #1" in result
    await wansettings(w, w.admin, language="en")
    assert (await guild_settings.load(store, w.guild.id)).language == "en"
    since = w.fd.mark()
    await w.wanedit(w.bob, "make it red")
    assert "Wan edit · job #2" in embed_text(await w.result_message(w.bob, since=since))


async def test_only_shipped_languages_are_kept(tmp_path: Path) -> None:
    """Promise: the store keeps only a language we have a catalogue for (or "" for the server
    default); a junk value, however it got there, reads as the default instead of a silent
    English."""
    store = await open_at(tmp_path / "s.db", Clock())
    try:
        with pytest.raises(ValueError):
            await guild_settings.save(store, 7, "language", "fr")
        assert await guild_settings.save(store, 7, "language", "zh_CN") == ("", "zh_CN")
        await store.set_meta(guild_settings.key(8, "language"), '"xx_YY"')
        await store.set_meta(guild_settings.legacy_language_key(9), "")  # the old "follow Discord"
        assert (await guild_settings.load(store, 7)).language == "zh_CN"
        assert (await guild_settings.load(store, 8)).language == ""
        assert (await guild_settings.load(store, 9)).language == ""
    finally:
        await store.close()


async def test_server_discord_language_is_the_default(tmp_path, emulator) -> None:  # type: ignore[no-untyped-def]
    """Promise: with no choice made, a server whose Discord language is Chinese gets Chinese public
    messages (its `guild_locale`), and that is what the job remembers."""
    w = await make_world(tmp_path, emulator=emulator)
    try:
        guild = w.fd.add_guild("中文服务器", owner=w.admin, locale=ZH)
        channel = w.fd.add_text_channel(guild, "综合")
        w.fd.add_member(guild, w.alice, permissions=0)
        bot = await w.start_bot()
        await w.wanedit(w.alice, "make it blue", guild=guild, channel=channel)
        await w.result_message(w.alice)
        (job,) = await bot.store.jobs_for_user(w.alice.id)
        assert job.extra["language"] == "zh_CN"
        assert job.extra["member_language"] == "en"
    finally:
        await w.close()
        await w.fd.close()


def test_language_names_are_catalogue_names() -> None:
    """Promise: what `/wansettings language:` offers is exactly the catalogues that ship, plus the
    server default."""
    from cogs.settings._cog import LANGUAGES, SERVER_DEFAULT

    assert set(CHOICES) == set(i18n.available_languages())
    assert [c.value for c in LANGUAGES] == [*CHOICES, SERVER_DEFAULT]


async def test_refusals_in_each_members_language_in_one_server(bot_world: World) -> None:
    """Promise: a zh-CN member's quota refusal for /wanedit is Chinese, an en-US member's in the
    same server English; neither costs anything."""
    w = bot_world
    store = w.bots[-1].store
    w.alice.locale = ZH
    for user in (w.alice, w.bob):
        await store.set_user_limit(w.guild.id, w.admin.id, user.id, 0)
    zh = await w.wanedit(w.alice, "make it blue")
    en = await w.wanedit(w.bob, "make it blue")
    await zh.wait_for(private_text)
    await en.wait_for(private_text)
    assert "你已被禁止在本服务器使用通义万相。未扣除额度。" in private_text(zh)
    assert "You're blocked from using Wan in this server." in private_text(en)
    assert "Nothing was charged" in private_text(en)
    # Bad input too, before anything is downloaded.
    bad = await w.wanedit(w.alice, "   ")
    await bad.wait_for(private_text)
    assert "请写一句提示词" in private_text(bad)
    assert w.emu.created_count == 0


async def test_a_chinese_server_gets_chinese_progress_and_results(bot_world: World) -> None:
    """Promise: in a server set to Chinese the result message is Chinese, and the public progress
    message ends as a Chinese "done" pointing at it, whatever the requester's own language. The
    footer keeps "Job #N" (a re-delivery after a restart looks for it)."""
    w = bot_world
    await guild_settings.save(w.bots[-1].store, w.guild.id, "language", "zh_CN")
    ix = await w.wanedit(w.bob, "make it blue")
    result = embed_text(await w.result_message(w.bob))
    assert "通义万相编辑 · 任务 #1" in result and "随机数种子" in result and "用时" in result
    assert result.endswith("Job #1")
    done = await ix.wait_original(lambda m: "完成" in embed_text(m))
    text = embed_text(done)
    assert "✅ 完成" in text and "结果：" in text and "任务 #" in text


async def test_language_survives_a_restart_mid_job(world: World) -> None:
    """Promise: after `/wansettings language:` chose Chinese, the next job's public messages are
    Chinese, and a job resumed by a new bot process (after a restart mid-task) still ends in
    Chinese, its result's buttons too, though the setting was changed back meanwhile."""
    w = world
    first = await w.start_bot()
    await wansettings(w, w.admin, language="zh_CN")
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.5))
    ix = await w.wanedit(w.alice, "survive a restart")
    await ix.wait_original(lambda m: "通义万相" in embed_text(m))  # its progress, in Chinese
    await wait_until(lambda: any(t.status.value == "RUNNING" for t in w.emu.tasks.values()))
    await w.stop_bot(first)
    second = await w.start_bot()
    # The job keeps its own language.
    await guild_settings.save(second.store, w.guild.id, "language", "en")
    result = await w.result_message(w.alice)
    assert "通义万相编辑 · 任务 #1" in embed_text(result)
    labels = [c.get("label") for row in result["components"] for c in row["components"]]
    assert labels == ["重新生成", "编辑", "删除"]
    done = await ix.wait_original(lambda m: "完成" in embed_text(m))
    assert "✅ 完成" in embed_text(done)
    assert w.emu.created_count == 1
