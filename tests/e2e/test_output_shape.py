"""The `aspect` option and `--ar`: each ratio reaches Wan as its documented size, the result has that
size, the choice survives a Reroll, and a ratio Wan can't make is refused with nothing spent."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.aspects import ASPECTS, AspectRejected, size_for, take_aspect
from bot.sandbox import Emulator
from tests.e2e.test_results import click_modal, job_id
from tests.support.harness import World, embed_text, png
from tests.support.results import (
    first_result,
    reply_answer,
    settled_to,
    task_parameters,
    task_prompt,
    told_privately,
    usage,
    world_with_intent,
)


@pytest.fixture
async def intent_world(tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    async with world_with_intent(tmp_path, emulator) as w:
        yield w


async def fetch_attachments(message: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(filename, bytes) of each attachment, downloaded from the (fake) CDN as a member would."""
    found = []
    async with aiohttp.ClientSession() as session:
        for attachment in message["attachments"]:
            async with session.get(attachment["url"]) as response:
                assert response.status == 200, attachment
                found.append((attachment["filename"], await response.read()))
    return found


def pixel_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def test_the_ratios_are_the_documented_sizes() -> None:
    """Guards the mapping: each ratio is one of wan-api.md's recommended sizes, within its range."""
    assert list(ASPECTS) == ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9"]
    documented = {"1280*1280", "1280*960", "960*1280", "1200*800", "800*1200", "1280*720",
                  "720*1280", "1344*576"}  # fmt: skip
    assert {size_for(a) for a in ASPECTS} == documented
    for width, height in ASPECTS.values():
        assert 768 * 768 <= width * height <= 1280 * 1280
        assert max(width / height, height / width) <= 4


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("make it snow --ar 16:9", ("make it snow", "16:9")),
        ("make it snow --AR 9:16  ", ("make it snow", "9:16")),
        ("make it snow --aspect 21:9", ("make it snow", "21:9")),
        ("做成海报 --ar 9：16", ("做成海报", "9:16")),
        ("make it snow", ("make it snow", None)),
        ("use --ar 16:9 style words here", ("use --ar 16:9 style words here", None)),
    ],
)
def test_take_aspect_only_takes_a_trailing_flag(prompt: str, expected: tuple) -> None:
    """Guards `--ar` parsing: only at the end of the prompt, taken off it."""
    assert take_aspect(prompt) == expected


@pytest.mark.parametrize("prompt", ["snow --ar 5:4", "snow --ar wide", "snow --ar"])
def test_take_aspect_names_the_supported_ratios(prompt: str) -> None:
    with pytest.raises(AspectRejected) as err:
        take_aspect(prompt)
    assert "16:9" in str(err.value) and "21:9" in str(err.value)


async def test_each_aspect_reaches_wan_as_its_size_and_the_result_has_it(bot_world: World) -> None:
    """Guards item 1: `aspect` -> `parameters.size` "W*H", the emulator honours it, the result
    message says so; left empty, no size is sent."""
    w = bot_world
    for number, (ratio, (width, height)) in enumerate(ASPECTS.items(), start=1):
        result = await first_result(w, w.alice, f"shape {ratio}", aspect=ratio)
        assert task_parameters(w.emu, number)["size"] == f"{width}*{height}"
        files = await fetch_attachments(result)
        assert [pixel_size(data) for _, data in files] == [(width, height)]
        assert f"Aspect: {ratio} ({width}×{height})" in embed_text(result)
        await settled_to(w, w.alice.id, number)
    plain = await first_result(w, w.bob, "no shape asked", images=[png(600, 400)])
    assert "size" not in task_parameters(w.emu, len(ASPECTS) + 1)
    assert "Aspect" not in embed_text(plain)
    (width, height) = pixel_size((await fetch_attachments(plain))[0][1])
    assert abs(width / height - 1.5) < 0.02  # the input's shape


async def test_reroll_keeps_the_aspect(bot_world: World) -> None:
    """Guards "the job keeps its aspect": Reroll sends the same size again."""
    w = bot_world
    result = await first_result(w, w.alice, "wide", aspect="21:9")
    since = w.fd.mark()
    click = await w.fd.click(
        int(result["channel_id"]), w.alice, result, f"wan:reroll:{job_id(result)}"
    )
    await click.wait_response()
    again = await w.result_message(w.alice, since=since)
    assert task_parameters(w.emu, 2)["size"] == "1344*576"
    assert pixel_size((await fetch_attachments(again))[0][1]) == (1344, 576)
    job = await w.bots[-1].store.get_job(job_id(again))
    assert job is not None and job.options["aspect"] == "21:9"


async def test_ar_at_the_end_of_a_reply_sets_the_shape(intent_world: World) -> None:
    """Guards `--ar` in reply edits: taken off the prompt, sent as the size."""
    w = intent_world
    original = await w.fd.post_user_message(
        w.channel, w.bob, "cat", attachments=[("cat.png", png(500, 500))]
    )
    request = await w.fd.post_user_message(
        w.channel,
        w.alice,
        f"<@{w.fd.bot_user.id}> make it a poster --ar 9:16",
        reference=original,
        ping_reply=False,
    )
    answer = await reply_answer(w, request)
    assert task_prompt(w.emu, 1) == "make it a poster"
    assert task_parameters(w.emu, 1)["size"] == "720*1280"
    assert pixel_size((await fetch_attachments(answer))[0][1]) == (720, 1280)


async def test_unsupported_ratio_in_a_reply_is_refused_before_anything_is_spent(
    intent_world: World,
) -> None:
    """Guards the refusal: the supported ratios listed, no Wan task, quota untouched."""
    w = intent_world
    original = await w.fd.post_user_message(
        w.channel, w.bob, "cat", attachments=[("cat.png", png(500, 500))]
    )
    request = await w.fd.post_user_message(
        w.channel,
        w.alice,
        f"<@{w.fd.bot_user.id}> make it a poster --ar 5:4",
        reference=original,
        ping_reply=False,
    )
    text = (await reply_answer(w, request))["content"]
    assert "`5:4`" in text and "1:1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16, 21:9" in text
    assert "Nothing was charged" in text
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)
    assert await w.bots[-1].store.jobs_for_user(w.alice.id) == []


async def test_unsupported_ratio_in_a_prompt_is_refused_privately(bot_world: World) -> None:
    """Guards the same refusal for /wanedit (and so the Edit form: both go through one check)."""
    w = bot_world
    ix = await w.wanedit(w.alice, "make it wide --ar 32:9")
    text = await told_privately(ix)
    assert "`32:9`" in text and "Nothing was charged" in text
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)


async def test_the_edit_form_takes_ar_from_its_prompt(bot_world: World) -> None:
    """Guards the Edit form accepting an aspect: `--ar` in its prompt becomes the size."""
    w = bot_world
    result = await first_result(w, w.alice, "first")
    since = w.fd.mark()
    await click_modal(
        w, result, w.alice, f"wan:edit:{job_id(result)}", {"prompt": "now wider --ar 16:9"}
    )
    again = await w.result_message(w.alice, since=since)
    assert task_prompt(w.emu, 2) == "now wider"
    assert task_parameters(w.emu, 2)["size"] == "1280*720"
    assert "Aspect: 16:9" in embed_text(again)


async def test_the_registered_aspect_option_offers_exactly_the_ratios(bot_world: World) -> None:
    """Guards the command's shape: a choice whose values are exactly the eight ratios, each named with
    its size, optional."""
    w = bot_world
    (command,) = [c for c in w.fd.commands() if c["name"] == "wanedit"]
    options = {o["name"]: o for o in command["options"]}
    aspect, spoiler = options["aspect"], options["spoiler"]
    assert [c["value"] for c in aspect["choices"]] == list(ASPECTS)
    # Each choice names the size that is sent.
    for choice in aspect["choices"]:
        width, height = ASPECTS[choice["value"]]
        assert choice["name"].startswith(choice["value"] + " ")
        assert choice["name"].endswith(f"({width}×{height})"), choice["name"]
    assert not aspect.get("required") and not spoiler.get("required")
    assert spoiler["type"] == 5  # boolean
