"""Admin and owner output in each member's own language, through both fakes: /wanquota, /wanowner,
/wanjobs answer a zh-CN member in Chinese and an en-US one in the same server in English."""

from __future__ import annotations

from typing import Any

from bot.config import load_settings
from bot.i18n import render
from bot.reports import cap_text, cost, money, refused_text
from bot.store import JobState
from bot.store.admin import ROLE_LIMIT
from bot.store.errors import CeilingExceeded
from cogs.utils.quota_words import ceiling_text
from tests.support.fake_discord import FakeInteraction, User
from tests.support.harness import World, embed_text
from tests.support.results import settled_to

ZH = "zh-CN"
PRICE = {"WAN_PRICE_PER_IMAGE": "0.5 USD", "WAN_DEFAULT_DAILY_LIMIT": "2"}


async def slash(w: World, actor: User, name: str, sub: str | None, **options: Any) -> str:
    """Run `/name [sub]` in the test server (or the actor's DM for /wanowner); its private text."""
    if name == "wanowner":
        guild, channel = None, w.fd.dm_channel(actor)
    else:
        guild, channel = w.guild, w.channel
    ix: FakeInteraction = await w.fd.slash(guild, channel, actor, name, options, subcommand=sub)
    await ix.wait_response()
    if ix.response_type == 5:  # deferred: wait for the real answer
        await ix.wait_original(lambda m: bool(m.get("embeds") or m.get("content")))
    assert ix.ephemeral, f"/{name} {sub} answered publicly"
    parts = [ix.response_data or {}, ix.original or {}, *ix.followups]
    return "\n".join(f"{p.get('content') or ''}\n{embed_text(p)}" for p in parts)


async def test_quota_answers_in_each_admins_language(world: World) -> None:
    """Promise: a zh-CN admin's /wanquota show, set, server, usage and log are Chinese (titles, field
    names, values, the change echoed), a zh-CN member without Manage Server is refused in Chinese
    with nothing changed, and an en-US admin in the same server still reads English."""
    w = world
    bot = await w.start_bot(**PRICE)
    w.admin.locale = ZH
    w.alice.locale = ZH
    mod = w.add_member("mod", admin=True)  # en-US
    await w.wanedit(w.bob, "make it blue")
    await w.result_message(w.bob)
    await settled_to(w, w.bob.id, 1)

    shown = await slash(w, w.admin, "wanquota", "show")
    assert "你在本服务器的通义万相额度" in shown
    assert "每日上限" in shown and "2（机器人默认值）" in shown
    assert "今日已用" in shown and "当前剩余" in shown and "每日额度重置" in shown
    assert "本服务器今日" in shown and "已用 1 张，进行中任务占用 0 张，1 位成员生成了图片" in shown
    assert "服务器默认上限" in shown and "未设置（机器人默认 2）" in shown

    echo = await slash(w, w.admin, "wanquota", "set", user=w.bob, limit=3)
    assert "每日上限已修改" in echo
    assert f"{w.bob.mention} 的个人上限：未设置 → **3**" in echo
    assert "当前生效的上限：3（为该成员单独设置）；今天还剩 2 张。" in echo

    echo = await slash(w, w.admin, "wanquota", "server", limit=5)
    assert "服务器每日总上限已修改" in echo and "→ **每天 5 张**" in echo
    assert "今日已用：1 张（另有 0 张被进行中的任务占用）。今天还剩 4 张。" in echo

    usage = await slash(w, w.admin, "wanquota", "usage")
    assert "本服务器的通义万相用量" in usage
    assert "今日：通义万相计费 **1 张**，费用 **0.50 USD**" in usage
    assert "最近 7 天：1 张，0.50 USD" in usage and "今日用量最多的成员" in usage
    assert f"{w.bob.mention}：1 张" in usage
    assert (
        "费用 = 通义万相计费张数 × 每张 0.50 USD（WAN_PRICE_PER_IMAGE）。日期按 UTC 计算。" in usage
    )
    assert "年" in usage and "月" in usage  # the days are dates as Chinese writes them

    log = await slash(w, w.admin, "wanquota", "log")
    assert "本服务器的通义万相额度变更" in log
    assert f"设置 {w.bob.mention} 的每日上限：未设置 → 3" in log
    assert "设置服务器每日总上限：关 → 每天 5 张" in log

    refused = await slash(w, w.alice, "wanquota", "set", user=w.bob, limit=0)
    assert "需要 **管理服务器** 权限才能设置成员的每日上限。未做任何更改。" in refused
    refused = await slash(w, w.alice, "wanquota", "show", user=w.bob)
    assert "需要 **管理服务器** 权限才能查看他人的通义万相额度。" in refused
    assert len(await bot.store.audit_log(w.guild.id)) == 2

    english = await slash(w, mod, "wanquota", "show", user=w.bob)
    assert "bob's Wan images in this server" in english
    assert "Daily limit" in english and "3 (set for this member)" in english
    assert "Server daily cap" in english and "5 images/day, 4 left today" in english
    echo = await slash(w, mod, "wanquota", "grant", user=w.bob, images=1)
    assert "Extra images granted" in echo and "extra images: 0 → **1**" in echo
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in english + echo)


async def test_over_the_owners_ceiling_refused_in_chinese(world: World) -> None:
    """Promise: an admin change over WAN_SERVER_DAILY_LIMIT is refused in the admin's language,
    with the ceiling and the value, and nothing is changed."""
    w = world
    bot = await w.start_bot(WAN_SERVER_DAILY_LIMIT="3")
    w.admin.locale = ZH
    text = await slash(w, w.admin, "wanquota", "set", user=w.bob, limit=5)
    assert "超出所有者设定的上限" in text
    assert (
        "机器人所有者规定每个服务器每天最多 3 张（WAN_SERVER_DAILY_LIMIT），"
        "因此成员的每日上限不能设为 5。未做任何更改。"
    ) in text
    assert await bot.store.audit_log(w.guild.id) == []


async def test_owner_usage_and_controls_in_the_owners_language(world: World) -> None:
    """Promise: a zh-CN owner's /wanowner usage, pause and cap are Chinese; someone else is refused
    in their own language (Chinese here), and an en-US owner still reads English."""
    w = world
    owner = w.fd.world.owner
    other_owner = w.fd.add_user("partner")
    await w.start_bot(WANBOT_OWNER_IDS=str(other_owner.id), **PRICE)
    owner.locale = ZH
    await w.wanedit(w.bob, "make it blue")
    await w.result_message(w.bob)
    await settled_to(w, w.bob.id, 1)

    usage = await slash(w, owner, "wanowner", "usage")
    assert "整个机器人今日的通义万相用量（UTC）" in usage
    assert "通义万相计费 **1 张**：**0.50 USD**" in usage
    assert "全局上限：每天 100 张；已计 1 张（另有 0 张被进行中的任务占用）" in usage
    assert "今日各服务器" in usage and "Test server：计费 1 张（0.50 USD），计入额度 1 张" in usage
    assert f"<@{w.bob.id}>（Test server）：1 张" in usage
    assert (
        "价格：每张 0.50 USD（WAN_PRICE_PER_IMAGE）。每日最高费用：50.00 USD（100 张 × 0.50 USD）。"
        in usage
    )

    paused = await slash(w, owner, "wanowner", "pause")
    assert "已暂停" in paused and "`/wanowner resume`" in paused
    assert "**已暂停**：新请求一律拒绝" in await slash(w, owner, "wanowner", "usage")
    assert "本来就已暂停。" in await slash(w, owner, "wanowner", "pause")
    assert "已重新开始接收新请求。" in await slash(w, owner, "wanowner", "resume")
    capped = await slash(w, owner, "wanowner", "cap", limit=1000)
    assert "全局每日上限：每天 100 张 → **每天 1,000 张**（保存在数据库中" in capped

    w.alice.locale = ZH
    refused = await slash(w, w.alice, "wanowner", "usage")
    assert "只有机器人所有者才能使用 `/wanowner`。未做任何更改。" in refused

    english = await slash(w, other_owner, "wanowner", "usage")
    assert "Wan usage across the bot, today (UTC)" in english
    assert "**1 image** billed by Wan: **0.50 USD**" in english
    assert "Bot-wide cap: 1,000 images/day" in english


async def test_wanjobs_in_the_members_language(bot_world: World) -> None:
    """Promise: /wanjobs answers a zh-CN member in Chinese (title, state, images, link, footer, a
    recorded reason that is a catalogue sentence), a zh-CN member naming someone else is refused in
    Chinese, and an en-US admin reads the same jobs in English."""
    w = bot_world
    store = w.bots[-1].store
    await w.wanedit(w.alice, "make it blue")
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    job = await store.create_job(
        scope=w.guild.id,
        guild_id=w.guild.id,
        channel_id=w.channel.id,
        user_id=w.alice.id,
        source="slash",
        prompt="never mind",
        options={"count": 2},
        state=JobState.QUEUED,
    )
    await store.finish_job(
        job.id, JobState.CANCELLED, error_message="Cancelled. Nothing was charged."
    )
    w.alice.locale = ZH

    text = await slash(w, w.alice, "wanjobs", None)
    assert "你在这里最近的通义万相任务" in text
    assert (
        "✅ 已完成 · 已生成 1/1 张" in text and "[查看结果](https://discord.com/channels/" in text
    )
    assert "✖️ 已取消 · 请求 2 张" in text and "已取消。未扣除额度。" in text
    assert "按时间倒序，最多 10 条。" in text

    refused = await slash(w, w.alice, "wanjobs", None, member=w.bob)
    assert "需要本服务器的 **管理服务器** 权限才能查看他人的任务" in refused
    empty = await slash(w, w.bob, "wanjobs", None)
    assert "No jobs yet. Start one with `/wanedit`." in empty
    english = await slash(w, w.admin, "wanjobs", None, member=w.alice)
    assert "alice's latest Wan jobs here" in english
    assert "✅ done · 1 of 1 image" in english and "✖️ cancelled · 2 images asked" in english
    assert "Cancelled. Nothing was charged." in english


def test_report_words_stay_english_as_str_and_translate_when_rendered() -> None:
    """Promise: the shared usage words are English where used as a str (the CLI, logs) and follow
    the reader's language, with Babel's numbers and proper plurals, when rendered."""
    assert money(1234.5, "USD") == "1,234.50 USD" and money(0.220177, "CNY") == "0.220177 CNY"
    assert (cap_text(1), cap_text(2), cap_text(None)) == ("1 image/day", "2 images/day", "no cap")
    assert render(ZH, cap_text(1200)) == "每天 1,200 张"
    refused = refused_text({"paused": 1, "daily_limit": 3})
    assert refused == "3 by member limits, 1 by the pause"
    assert render(ZH, refused) == "成员额度 3、暂停 1"
    assert render(ZH, refused_text({})) == "无"
    ceiling = ceiling_text(CeilingExceeded(ROLE_LIMIT, 9, 1))
    assert "at most 1 image per server per day" in str(ceiling)
    assert "身份组的每日上限不能设为 9" in render(ZH, ceiling)

    # A base URL of neither region, and no WAN_PRICE_PER_IMAGE: no price is known.
    unpriced = load_settings(
        {"DASHSCOPE_API_KEY": "k", "DASHSCOPE_BASE_URL": "http://127.0.0.1:9/api/v1"},
        dotenv_path=None,
        require_discord=False,
    )
    assert render(ZH, cost(3, unpriced)) == "单价未知（请设置 WAN_PRICE_PER_IMAGE）"


async def test_quota_refusals_outside_a_server_and_off_the_allowlist_in_chinese(
    world: World,
) -> None:
    """Promise: in DMs a zh-CN member's own /wanquota show is Chinese and an admin subcommand is
    refused in Chinese; in a server not on WAN_ALLOWED_GUILDS every subcommand is refused in
    Chinese; nothing is changed either way."""
    w = world
    bot = await w.start_bot(WAN_ALLOWED_GUILDS="1")
    w.alice.locale = ZH
    w.admin.locale = ZH
    dm = w.fd.dm_channel(w.alice)

    async def in_dm(sub: str, **options: Any) -> str:
        ix = await w.fd.slash(None, dm, w.alice, "wanquota", options, subcommand=sub)
        await ix.wait_response()
        if ix.response_type == 5:
            await ix.wait_original(lambda m: bool(m.get("embeds")))
        return f"{embed_text(ix.original or {})}\n{(ix.response_data or {}).get('content') or ''}"

    assert "你在私信中的通义万相额度" in await in_dm("show")
    refused = await in_dm("server", limit=5)
    assert "额度按服务器设置：只能在服务器中设置服务器每日总上限。未做任何更改。" in refused
    off_list = await slash(w, w.admin, "wanquota", "show")
    assert "机器人所有者尚未在本服务器启用它" in off_list and "未做任何更改。" in off_list
    assert await bot.store.audit_log(0) == [] and await bot.store.audit_log(w.guild.id) == []
