"""Languages through both fakes: command localisations as synced, private answers in the member's
language, public messages in the server's, and a job's language kept across a restart."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot import i18n
from bot.sandbox import FaultRule
from cogs.utils.sync import command_hash
from cogs.utils.translator import CatalogueTranslator
from tests.harness import World, embed_text, make_world, wait_until

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
    """Promise: every command, subcommand and option Discord receives has a zh-CN description (so a
    Chinese client shows Chinese), names stay English, and the context menu's label is Chinese."""
    commands = bot_world.fd.commands()
    assert {"wanedit", "wanquota", "wanlanguage", "Edit with Wan"} <= {c["name"] for c in commands}
    missing = []
    for command in commands:
        if command["type"] == 1:
            nodes = [command, *_options(command)]
            for node in nodes:
                zh = (node.get("description_localizations") or {}).get(ZH)
                if not zh or zh == node["description"]:
                    missing.append(f"{command['name']}: {node['name']}: {node['description']!r}")
                assert not node.get("name_localizations"), node["name"]
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
    zh = await w.fd.slash(w.guild, w.channel, w.alice, "wanlanguage", {"language": "zh_CN"})
    en = await w.fd.slash(w.guild, w.channel, w.bob, "wanlanguage", {"language": "zh_CN"})
    await zh.wait_response()
    await en.wait_response()
    assert "需要 **管理服务器** 权限" in private_text(zh)
    assert "You need the **Manage Server** permission" in private_text(en)
    assert await w.bots[-1].store.get_guild_language(w.guild.id) is None


async def test_server_language_is_chosen_by_an_admin_and_kept_by_jobs(bot_world: World) -> None:
    """Promise: /wanlanguage (Manage Server) sets the server's language; a job made afterwards keeps
    it for its public messages and keeps the requester's own for private ones."""
    w = bot_world
    ix = await w.fd.slash(w.guild, w.channel, w.admin, "wanlanguage", {"language": "zh_CN"})
    await ix.wait_response()
    assert "Done: progress and results in this server are now in 简体中文" in private_text(ix)
    store = w.bots[-1].store
    assert await store.get_guild_language(w.guild.id) == "zh_CN"
    await w.wanedit(w.bob, "make it blue")
    await w.result_message(w.bob)
    (job,) = await store.jobs_for_user(w.bob.id)
    assert (job.extra["language"], job.extra["member_language"]) == ("zh_CN", "en")
    back = await w.fd.slash(w.guild, w.channel, w.admin, "wanlanguage", {"language": "auto"})
    await back.wait_response()
    assert await store.get_guild_language(w.guild.id) is None
    shown = await w.fd.slash(w.guild, w.channel, w.alice, "wanlanguage", {})
    await shown.wait_response()
    assert "English, the server's Discord language" in private_text(shown)


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
    """Promise: what /wanlanguage offers is exactly the catalogues that ship."""
    from cogs.utils.language import CHOICES

    assert set(CHOICES) == set(i18n.available_languages())


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
    await w.bots[-1].store.set_guild_language(w.guild.id, "zh_CN")
    ix = await w.wanedit(w.bob, "make it blue")
    result = embed_text(await w.result_message(w.bob))
    assert "通义万相编辑 · 任务 #1" in result and "随机数种子" in result and "用时" in result
    assert result.endswith("Job #1")
    done = await ix.wait_original(lambda m: "完成" in embed_text(m))
    text = embed_text(done)
    assert "✅ 完成" in text and "结果：" in text and "任务 #" in text


async def test_language_survives_a_restart_mid_job(world: World) -> None:
    """Promise: a job made in a Chinese server and resumed by a new bot process (after a restart
    mid-task) still ends in Chinese, though the setting was changed back meanwhile."""
    w = world
    first = await w.start_bot()
    await first.store.set_guild_language(w.guild.id, "zh_CN")
    w.emu.add_fault(FaultRule(op="task", running_seconds=1.5))
    ix = await w.wanedit(w.alice, "survive a restart")
    await wait_until(lambda: any(t.status.value == "RUNNING" for t in w.emu.tasks.values()))
    await w.stop_bot(first)
    second = await w.start_bot()
    await second.store.set_guild_language(w.guild.id, None)  # the job keeps its own language
    await w.result_message(w.alice)
    done = await ix.wait_original(lambda m: "完成" in embed_text(m))
    assert "✅ 完成" in embed_text(done)
    assert w.emu.created_count == 1
