"""What members see in a Chinese server, through both fakes: the buttons on public messages in the
server's language, the Edit form and every private answer in each member's own (a zh-CN member gets
Chinese, an en-US member English, side by side), reply-edit answers and the reply-ping offer in the
server's language."""

from __future__ import annotations

import json
from typing import Any

from bot import guild_settings
from tests.e2e.test_results import CB_MODAL, job_id
from tests.support.harness import World, embed_text
from tests.support.results import (
    button_ids,
    first_result,
    reply_answer,
    settled_to,
    told_privately,
    usage,
)

ZH = "zh-CN"


def labels(message: dict[str, Any]) -> list[str]:
    """Every button label on a message, row by row."""
    return [c.get("label") for row in message.get("components", []) for c in row["components"]]


async def chinese_server(w: World) -> None:
    await guild_settings.save(w.bots[-1].store, w.guild.id, "language", "zh_CN")


async def open_form(w: World, result: dict[str, Any], user: Any, custom_id: str) -> Any:
    """Click an Edit button on `result` as `user`; the modal Discord was asked to show."""
    ix = await w.fd.click(int(result["channel_id"]), user, result, custom_id)
    await ix.wait_response()
    assert ix.response_type == CB_MODAL, ix
    return ix


async def test_cancel_button_and_its_answers_in_a_chinese_server(world: World) -> None:
    """Promise: a queued job's progress in a Chinese server carries a Chinese Cancel button; an
    en-US member who may not cancel it is told so in English, its zh-CN owner's cancel is answered
    in Chinese; the next result's buttons are Chinese whoever asked (numbered per image)."""
    w = world
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    await chinese_server(w)
    w.alice.locale = ZH
    w.emu.hold("running")  # bob's job holds the only slot, so alice's waits in our queue
    await w.wanedit(w.bob, "slow one", count=2)
    await w.emu.wait_for_task_count(1, timeout=5)
    ix = await w.wanedit(w.alice, "queued one")
    queued = await ix.wait_original(lambda m: "排队中" in embed_text(m))
    assert labels(queued) == ["取消"]
    (cancel,) = button_ids(queued)
    refused = await w.fd.click(w.channel, w.bob, queued, cancel)
    assert (
        "Only the member who asked for this edit (or a moderator) can cancel it."
        in await told_privately(refused)
    )
    mine = await w.fd.click(w.channel, w.alice, queued, cancel)
    assert "已取消。未扣除额度。" in await told_privately(mine)
    await settled_to(w, w.alice.id, 0)
    w.emu.release("running")
    result = await w.result_message(w.bob)
    assert labels(result) == ["重新生成", "删除", "编辑图1", "编辑图2"]
    assert w.emu.created_count == 1


async def test_the_edit_form_and_click_answers_follow_each_member(bot_world: World) -> None:
    """Promise: on one Chinese result, a zh-CN member's Edit form is Chinese (title, labels,
    placeholders, switches) and an en-US member's English; a bad count in the Chinese form is
    refused in Chinese with nothing spent; a refused Delete is told in the clicker's language."""
    w = bot_world
    await chinese_server(w)
    w.alice.locale = ZH
    result = await first_result(w, w.bob, "make it blue")
    assert labels(result) == ["重新生成", "编辑", "删除"]
    edit = f"wan:edit:{job_id(result)}"
    zh = await open_form(w, result, w.alice, edit)
    form = json.dumps(zh.modal, ensure_ascii=False)
    assert zh.modal["title"] == "编辑任务 #1"
    for text in (
        "想怎么改",
        "例如：让天空乌云密布",
        "不想出现的内容（可选）",
        "生成几张（1-4）",
        "留空 = 随机",
        '"选项"',
        "让通义万相智能改写提示词",
        "默认开启；稍慢一些",
        "添加通义万相的“AI生成”水印",
    ):
        assert text in form, text
    assert "What to change" not in form
    en = await open_form(w, result, w.bob, edit)
    english = json.dumps(en.modal, ensure_ascii=False)
    assert en.modal["title"] == "Edit job #1"
    assert (
        "What to change" in english and "Let Wan rewrite" in english and "想怎么改" not in english
    )
    bad = await w.fd.submit_modal(
        int(result["channel_id"]),
        w.alice,
        zh.modal["custom_id"],
        {"prompt": "更亮一点", "count": "9"},
        message=result,
    )
    said = await told_privately(bad)
    assert "“9”不是有效的张数：请填 1 到 4 之间的数字。未扣除额度。" in said
    assert w.emu.created_count == 1 and await usage(w, w.alice.id) == (0, 0)
    delete = f"wan:delete:{job_id(result)}"
    refused = await w.fd.click(int(result["channel_id"]), w.alice, result, delete)
    assert "只有发起这次编辑的成员（或拥有“管理消息”权限的人）可以删除。" in await told_privately(
        refused
    )
    assert w.fd.message(result["id"]) is not None


async def test_reply_answers_and_the_offer_speak_the_servers_language(bot_world: World) -> None:
    """Promise: in a Chinese server a reply edit's refusal is Chinese (public, so the server's
    language), the offer under a bare reply-ping and its button too; a click on someone else's
    offer is refused in the clicker's own language: English for en-US, Chinese for zh-CN."""
    w = bot_world
    await chinese_server(w)
    result = await first_result(w, w.alice, "make it blue")
    thread = int(result["channel_id"])
    pick = await w.fd.post_user_message(
        thread, w.bob, f"<@{w.fd.bot_user.id}> #3 make it red", reference=result
    )
    answer = (await reply_answer(w, pick))["content"]
    assert answer == "该结果有 1 张图片；请在提示词开头写编号（从 #1 起）来选一张。未扣除额度。"
    carol = w.users[2]
    thanks = await w.fd.post_user_message(thread, carol, "谢谢！", reference=result)
    offer = await reply_answer(w, thanks)
    assert offer["content"].startswith("要用通义万相编辑吗？提示词：“谢谢！”")
    assert f"只有 <@{carol.id}> 可以开始" in offer["content"]
    assert labels(offer) == ["编辑"]
    (button,) = button_ids(offer)
    en = await w.fd.click(thread, w.bob, offer, button)
    assert f"Only <@{carol.id}> can use this button" in await told_privately(en)
    w.alice.locale = ZH
    zh = await w.fd.click(thread, w.alice, offer, button)
    assert f"只有 <@{carol.id}> 可以使用这个按钮" in await told_privately(zh)
    assert w.emu.created_count == 1
