"""/wanimagine end to end: the real discord.py bot, the fake Discord, the Wan emulator, a real sqlite
file. What Wan is sent, what the member gets and pays, the buttons on the result, Cancel, the caps,
bad input refused before anything is spent, "@bot imagine ..." messages, and the off switch."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from bot import guild_settings
from bot.aspects import IMAGINE_SIZES
from bot.sandbox import FaultRule
from cogs.imagine._command import ASPECT_CHOICES
from tests.e2e.test_owner_e2e import command
from tests.support.fake_discord import FakeInteraction, User
from tests.support.harness import World, embed_text, png, wait_until
from tests.support.results import (
    button_ids,
    private_text,
    settled_to,
    task_inputs,
    task_parameters,
    task_prompt,
    told_privately,
    usage,
)

IMAGINE_ROUTE = "/api/v1/services/aigc/text2image/image-synthesis"
EDIT_ROUTE = "/api/v1/services/aigc/image2image/image-synthesis"
CB_MODAL = 9


async def imagine(w: World, user: User, prompt: str, **options: Any) -> FakeInteraction:
    return await w.fd.slash(w.guild, w.channel, user, "wanimagine", {"prompt": prompt, **options})


async def imagined(w: World, user: User, prompt: str, **options: Any) -> dict[str, Any]:
    """`user`'s delivered /wanimagine result."""
    since = w.fd.mark()
    await imagine(w, user, prompt, **options)
    return await w.result_message(user, since=since)


def job_id(result: dict[str, Any]) -> int:
    return int(result["embeds"][0]["footer"]["text"].rsplit("#", 1)[1])


def creates(w: World) -> list[str]:
    return [
        path
        for _t, method, path, _s in w.emu.request_log
        if method == "POST" and "synthesis" in path
    ]


def assert_size(size: str, aspect: str) -> tuple[int, int]:
    """`size` is inside the text-to-image bounds and of the ratio `aspect` (within 1%)."""
    width, height = (int(side) for side in size.split("*"))
    assert 768 * 768 <= width * height <= 1440 * 1440
    ratio_w, ratio_h = (int(side) for side in aspect.split(":"))
    assert abs(width / height / (ratio_w / ratio_h) - 1) < 0.01
    return width, height


async def test_imagine_round_trip(bot_world: World) -> None:
    """The create body (route, model, n, a 16:9 size within bounds, no images), two images
    posted in a thread under a result that says it was made from text, two images charged."""
    w = bot_world
    ix = await imagine(w, w.alice, "a lighthouse at dusk --ar 16:9", count=2, seed=40)
    await ix.wait_response()
    assert ix.response_type == 5
    result = await w.result_message(w.alice)
    (task,) = w.emu.tasks.values()
    assert creates(w) == [IMAGINE_ROUTE]
    assert task.request["model"] == "wan2.5-t2i-preview"
    assert task.request["input"] == {"prompt": "a lighthouse at dusk"}
    params = task.request["parameters"]
    assert params["n"] == 2 and params["seed"] == 40
    width, height = assert_size(params["size"], "16:9")
    files = w.fd.files(result)
    assert len(files) == 2
    for index, (_name, data) in enumerate(files):
        picture = Image.open(io.BytesIO(data))
        assert picture.size == (width, height)
        # How it was made, in the file: the text-to-image model, the prompt, seed + index.
        assert picture.text["model"] == "wan2.5-t2i-preview"  # type: ignore[attr-defined]
        assert picture.text["prompt"] == "a lighthouse at dusk"  # type: ignore[attr-defined]
        assert picture.text["seed"] == str(40 + index)  # type: ignore[attr-defined]
    text = embed_text(result)
    assert "Wan image from text · job #1" in text and "Created from: text alone" in text
    assert "Aspect: 16:9 (1696×960)" in text and "Seed: 40" in text
    thread = next(t for t in w.fd.threads if t.id == int(result["channel_id"]))
    assert thread.name.startswith("a lighthouse at dusk")
    await settled_to(w, w.alice.id, 2)
    await ix.wait_original(lambda m: "Done" in embed_text(m))


async def test_square_by_default_and_every_ratio_inside_the_bounds(bot_world: World) -> None:
    w = bot_world
    await imagined(w, w.alice, "a plain square")
    assert task_parameters(w.emu, 1)["size"] == "1280*1280"
    # The choices Discord shows name the sizes that are sent.
    for choice in ASPECT_CHOICES:
        width, height = IMAGINE_SIZES[choice.value]
        assert choice.name.startswith(choice.value + " ")
        assert choice.name.endswith(f"({width}×{height})")
        assert_size(f"{width}*{height}", choice.value)


async def test_partial_failure_is_charged_for_the_images_delivered(bot_world: World) -> None:
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", partial_failures=1))
    result = await imagined(w, w.alice, "two tries", count=2)
    assert len(w.fd.files(result)) == 1 and "1 of 2" in embed_text(result)
    await settled_to(w, w.alice.id, 1)


async def test_reroll_imagines_again_with_a_new_seed_for_the_clicker(bot_world: World) -> None:
    w = bot_world
    result = await imagined(w, w.alice, "a red fox in snow", count=2, aspect="9:16")
    j = job_id(result)
    assert button_ids(result) == [
        f"wan:reroll:{j}",
        f"wan:delete:{j}",
        f"wan:edit:{j}:1",
        f"wan:edit:{j}:2",
    ]
    await settled_to(w, w.alice.id, 2)
    since = w.fd.mark()
    click = await w.fd.click(int(result["channel_id"]), w.bob, result, f"wan:reroll:{j}")
    await click.wait_response()
    again = await w.result_message(w.bob, since=since)
    assert creates(w) == [IMAGINE_ROUTE, IMAGINE_ROUTE]
    first, second = task_parameters(w.emu, 1), task_parameters(w.emu, 2)
    assert second["seed"] != first["seed"]
    assert (second["n"], second["size"]) == (2, first["size"]) == (2, "960*1696")
    assert task_prompt(w.emu, 2) == "a red fox in snow"
    assert "Wan image from text" in embed_text(again)
    await settled_to(w, w.bob.id, 2)
    job = await w.bots[-1].store.get_job(job_id(again))
    assert job is not None and job.source == "reroll" and job.options["kind"] == "imagine"


async def test_edit_turns_the_result_into_an_edit_of_it(bot_world: World) -> None:
    w = bot_world
    result = await imagined(w, w.alice, "two cats", count=2)
    j = job_id(result)
    channel = int(result["channel_id"])
    since = w.fd.mark()
    ix = await w.fd.click(channel, w.bob, result, f"wan:edit:{j}:2")
    await ix.wait_response()
    assert ix.response_type == CB_MODAL
    await w.fd.submit_modal(
        channel, w.bob, ix.modal["custom_id"], {"prompt": "add a hat"}, message=result
    )
    edited = await w.result_message(w.bob, since=since)
    assert creates(w) == [IMAGINE_ROUTE, EDIT_ROUTE]
    assert task_inputs(w.emu, 2) == [w.fd.files(result)[1][1]]
    assert task_prompt(w.emu, 2) == "add a hat"
    text = embed_text(edited)
    assert f"Edited from: job #{j} image 2" in text and "Wan edit · job #2" in text
    await settled_to(w, w.bob.id, 1)


async def test_a_reply_with_a_mention_edits_the_result(bot_world: World) -> None:
    w = bot_world
    result = await imagined(w, w.alice, "a teapot")
    thread = int(result["channel_id"])
    me = w.bots[-1].user
    assert me is not None
    since = w.fd.mark()
    await w.fd.post_user_message(thread, w.bob, f"<@{me.id}> make it gold", reference=result)
    edited = await w.result_message(w.bob, since=since)
    assert creates(w) == [IMAGINE_ROUTE, EDIT_ROUTE]
    assert task_inputs(w.emu, 2) == [w.fd.files(result)[0][1]]
    assert task_prompt(w.emu, 2) == "make it gold"
    assert f"Edited from: job #{job_id(result)} image 1" in embed_text(edited)
    await settled_to(w, w.bob.id, 1)


async def test_cancel_while_pending_at_wan(world: World) -> None:
    w = world
    w.emu.config.max_running = 1
    await w.start_bot()
    w.emu.hold("running")  # bob's task keeps Wan's only slot, so alice's stays PENDING
    await imagine(w, w.bob, "occupies the only slot")
    ix = await imagine(w, w.alice, "waits pending")
    pending = await ix.wait_original(lambda m: "waiting for a free slot" in embed_text(m))
    button = pending["components"][0]["components"][0]
    assert button["custom_id"].startswith("wan:cancel:")
    click = await w.fd.click(w.channel, w.alice, pending, button["custom_id"])
    await click.wait_for(private_text)
    await ix.wait_original(lambda m: "Cancelled" in embed_text(m))
    await settled_to(w, w.alice.id, 0)
    assert [t.status.value for t in w.emu.tasks.values()].count("CANCELED") == 1
    w.emu.release("running")
    running = await w.result_message(w.bob)
    assert "Wan image from text" in embed_text(running)
    await settled_to(w, w.bob.id, 1)
    assert w.results_for(w.alice) == []


async def test_the_progress_says_the_image_is_being_made(world: World) -> None:
    w = world
    await w.start_bot()
    w.emu.hold("running")
    ix = await imagine(w, w.alice, "slowly")
    running = await ix.wait_original(lambda m: "Wan is making your image" in embed_text(m))
    assert "slowly" in embed_text(running)
    w.emu.release("running")
    await w.result_message(w.alice)


async def refused(w: World, user: User, prompt: str = "a castle", **options: Any) -> str:
    ix = await imagine(w, user, prompt, **options)
    return await told_privately(ix)


async def test_each_cap_refuses_before_anything_is_spent(world: World) -> None:
    """The member's limit, the server's cap, the bot-wide cap, the pause and the member's jobs
    in flight: each says why, and nothing is reserved or created."""
    w = world
    await w.start_bot(WAN_GLOBAL_DAILY_LIMIT="6", WAN_MAX_JOBS_PER_USER="1")
    store = w.bots[-1].store
    g = w.guild.id
    await store.set_user_limit(g, w.admin.id, w.alice.id, 1)
    text = await refused(w, w.alice, count=2)
    assert "You have 1 image left today and this needs 2." in text
    await store.set_server_cap(g, w.admin.id, 1)
    text = await refused(w, w.bob, count=2)
    assert "The daily limit for this server" in text and "Nothing was charged" in text
    await store.set_server_cap(g, w.admin.id, None)
    await store.set_global_cap(w.admin.id, 1)
    text = await refused(w, w.bob, count=2)
    assert "The bot's daily limit for everyone" in text
    await store.set_global_cap(w.admin.id, None)
    await store.set_paused(w.admin.id, True)
    assert "paused" in await refused(w, w.bob)
    await store.set_paused(w.admin.id, False)
    await store.block_user(g, w.admin.id, w.bob.id)
    assert "You're blocked from using Wan in this server." in await refused(w, w.bob)
    assert w.emu.created_count == 0
    assert [await usage(w, u.id) for u in (w.alice, w.bob)] == [(0, 0), (0, 0)]
    # One job in flight is the most a member may have here.
    w.emu.hold("running")
    await imagine(w, w.users[2], "first")
    await w.emu.wait_for_task_count(1)
    text = await refused(w, w.users[2], "second")
    assert "You already have 1 job queued or running (the limit is 1)." in text
    assert w.emu.created_count == 1
    w.emu.release("running")
    await w.result_message(w.users[2])


async def test_bad_input_is_refused_before_anything_is_spent(bot_world: World) -> None:
    w = bot_world
    assert "Write a prompt saying what to make" in await refused(w, w.alice, "   ")
    assert "`5:7` isn't an aspect ratio" in await refused(w, w.alice, "a dog --ar 5:7")
    assert "needs a ratio after it" in await refused(w, w.alice, "a dog --ar")
    text = await refused(w, w.alice, "a dog --ar 16:9", aspect="1:1")
    assert "Two aspect ratios were given" in text
    # The prompt's and count's bounds are Discord's to enforce, as registered with it.
    (command,) = [c for c in w.fd.commands() if c["name"] == "wanimagine"]
    options = {o["name"]: o for o in command["options"]}
    assert (options["prompt"]["min_length"], options["prompt"]["max_length"]) == (1, 2000)
    assert (options["count"]["min_value"], options["count"]["max_value"]) == (1, 4)
    assert [c["value"] for c in options["aspect"]["choices"]] == list(IMAGINE_SIZES)
    assert w.emu.created_count == 0 and await usage(w, w.alice.id) == (0, 0)


async def test_a_mention_asking_to_imagine_makes_an_image_and_refuses_images(
    bot_world: World,
) -> None:
    w = bot_world
    me = w.bots[-1].user
    assert me is not None
    refused_message = await w.fd.post_user_message(
        w.channel, w.alice, f"<@{me.id}> imagine a kite", attachments=[("a.png", png())]
    )

    def answer_to(message: dict[str, Any]) -> Any:
        def check(m: dict[str, Any]) -> bool:
            return (m.get("message_reference") or {}).get("message_id") == message["id"]

        return check

    answer = await w.fd.wait_for_message(w.channel, answer_to(refused_message), 10.0)
    assert "Imagine makes an image from words alone" in answer["content"]
    assert "Nothing was charged" in answer["content"]
    assert w.emu.created_count == 0
    since = w.fd.mark()
    request = await w.fd.post_user_message(
        w.channel, w.alice, f"<@{me.id}> imagine a kite over dunes --ar 21:9"
    )
    result = await w.result_message(w.alice, since=since)
    assert (result.get("message_reference") or {}).get("message_id") == request["id"]
    assert creates(w) == [IMAGINE_ROUTE]
    assert task_prompt(w.emu, 1) == "a kite over dunes"
    assert task_parameters(w.emu, 1)["size"] == "2016*864"
    await wait_until(lambda: "✅" in w.fd.reactions(request, me))
    await settled_to(w, w.alice.id, 1)


async def test_turned_off_it_is_not_registered_and_old_results_say_so(world: World) -> None:
    w = world
    first = await w.start_bot()
    result = await imagined(w, w.alice, "before the switch")
    await settled_to(w, w.alice.id, 1)
    await w.stop_bot(first)
    await w.start_bot(WAN_TEXT_TO_IMAGE="false")
    assert "wanimagine" not in {c["name"] for c in w.fd.commands()}
    reroll = await w.fd.click(
        int(result["channel_id"]), w.bob, result, f"wan:reroll:{job_id(result)}"
    )
    text = await told_privately(reroll)
    assert "Making images from text is turned off" in text and "Nothing was charged" in text
    assert w.emu.created_count == 1


ZH = "zh-CN"


async def test_in_chinese(bot_world: World) -> None:
    """The command, its options and ratio choices as Discord shows them to a Chinese client; a
    Chinese member's refusal; a Chinese server's result and its refusal of images."""
    w = bot_world
    (command,) = [c for c in w.fd.commands() if c["name"] == "wanimagine"]
    assert command["description_localizations"][ZH] == "用通义万相 2.5 根据提示词生成图片"
    for option in command["options"]:
        zh = option["description_localizations"][ZH]
        assert zh and zh != option["description"], option["name"]
    aspect = next(o for o in command["options"] if o["name"] == "aspect")
    names = [c["name_localizations"][ZH] for c in aspect["choices"]]
    assert names[0] == "1:1 方形（1280×1280）" and names[5] == "16:9 宽屏（1696×960）"
    w.alice.locale = ZH
    assert "请写一句提示词说明想生成什么" in await refused(w, w.alice, "   ")
    await guild_settings.save(w.bots[-1].store, w.guild.id, "language", "zh_CN")
    result = embed_text(await imagined(w, w.bob, "a paper lantern"))
    assert "通义万相文生图 · 任务 #1" in result and "生成方式: 仅凭文字（没有输入图片）" in result
    me = w.bots[-1].user
    assert me is not None
    message = await w.fd.post_user_message(
        w.channel, w.bob, f"<@{me.id}> imagine a kite", attachments=[("a.png", png())]
    )
    answer = await w.fd.wait_for_message(
        w.channel,
        lambda m: (m.get("message_reference") or {}).get("message_id") == message["id"],
        10.0,
    )
    assert answer["content"].startswith("“imagine”只根据文字生成图片，不接受图片")
    assert w.emu.created_count == 1


async def test_the_usage_reports_price_images_made_from_text_apart(world: World) -> None:
    """One price per model: the owner's and the admins' reports add what each kind cost."""
    w = world
    await w.start_bot(WAN_PRICE_PER_IMAGE="0.2 USD", WAN_PRICE_PER_IMAGE_T2I="0.5")
    await imagined(w, w.alice, "two from text", count=2)
    await settled_to(w, w.alice.id, 2)
    since = w.fd.mark()
    await w.wanedit(w.bob, "one edit")
    await w.result_message(w.bob, since=since)
    await settled_to(w, w.bob.id, 1)
    owner_view = await command(w, w.fd.world.owner, "wanowner", "usage")
    assert "**3 images** billed by Wan: **1.20 USD**" in owner_view
    assert "Test server: 3 billed (1.20 USD)" in owner_view
    assert "0.50 USD per image made from text (WAN_PRICE_PER_IMAGE_T2I)" in owner_view
    admin_view = await command(w, w.admin, "wanquota", "usage", guild=w.guild, channel=w.channel)
    assert "cost **1.20 USD**" in admin_view and "Last 7 days: 3 images, 1.20 USD" in admin_view
