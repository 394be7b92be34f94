"""WanClient's text-to-image create (`wan2.5-t2i-preview`) and its model check, against the emulator
over loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from bot.aspects import ASPECTS, IMAGINE_SIZES, size_for
from bot.sandbox import Emulator
from bot.wan import IMAGINE_MODEL, ImagineRequest, TaskStatus, WanError
from tests.support.wan import (
    edit,
    emulator_config,
    loopback_server,
    make_client,
    requests_to,
)

IMAGINE = "/services/aigc/text2image/image-synthesis"
CREATE = "/services/aigc/image2image/image-synthesis"


async def test_imagine_goes_to_the_text_to_image_route_with_n_and_no_images(
    emu: Emulator,
) -> None:
    async with make_client(emu.base_url) as wan:
        req = ImagineRequest(
            "a lighthouse at dusk", negative_prompt="people", size="1696*960", seed=11
        )
        created = await wan.create_task(req)
        result = await wan.wait(created.task_id)
    assert result.status is TaskStatus.SUCCEEDED and len(result.urls) == 1
    sent = emu.tasks[created.task_id].request
    # n is sent even at 1: the model makes (and bills) 4 when it is left out.
    assert sent == {
        "model": IMAGINE_MODEL,
        "input": {"prompt": "a lighthouse at dusk", "negative_prompt": "people"},
        "parameters": {"n": 1, "seed": 11, "size": "1696*960"},
    }
    assert [r[2] for r in requests_to(emu, "POST", "image-synthesis")] == ["/api/v1" + IMAGINE]


async def test_edits_still_go_to_the_editing_route(emu: Emulator) -> None:
    async with make_client(emu.base_url) as wan:
        created = await wan.create_task(edit(n=2))
    assert emu.tasks[created.task_id].request["model"] == "wan2.5-i2i-preview"
    assert [r[2] for r in requests_to(emu, "POST", "image-synthesis")] == ["/api/v1" + CREATE]


async def test_the_task_list_is_read_for_the_model_asked(emu: Emulator) -> None:
    """What the runner reads to find a text-to-image task whose create went unanswered."""
    async with make_client(emu.base_url) as wan:
        before = datetime.now(UTC) - timedelta(seconds=2)
        edited = await wan.create_task(edit())
        imagined = await wan.create_task(ImagineRequest("a fox"))
        after = datetime.now(UTC) + timedelta(seconds=2)
        only_text = await wan.list_tasks(before, after, model=wan.model_of(from_text=True))
        only_edits = await wan.list_tasks(before, after)
    assert [t.task_id for t in only_text.tasks] == [imagined.task_id]
    assert [t.task_id for t in only_edits.tasks] == [edited.task_id]


def test_every_ratio_has_a_text_to_image_size_inside_the_documented_bounds() -> None:
    """768*768..1440*1440 pixels in all, 1:4..4:1, and the ratio it is named for (within 1%)."""
    assert IMAGINE_SIZES.keys() == ASPECTS.keys()
    for aspect, (width, height) in IMAGINE_SIZES.items():
        assert 768 * 768 <= width * height <= 1440 * 1440, aspect
        assert 1 / 4 <= width / height <= 4
        ratio_w, ratio_h = (int(side) for side in aspect.split(":"))
        assert abs(width / height / (ratio_w / ratio_h) - 1) < 0.01, aspect
        assert size_for(aspect, from_text=True) == f"{width}*{height}"
    # The edit sizes stay the editing model's (at most 1280*1280 in all).
    assert size_for("16:9") == "1280*720"


async def test_check_model_says_which_models_the_key_may_use_and_creates_nothing() -> None:
    async with (
        Emulator(emulator_config(denied_models={IMAGINE_MODEL})) as emu,
        make_client(emu.base_url) as wan,
    ):
        await wan.check_model()  # editing: allowed
        with pytest.raises(WanError) as refused:
            await wan.check_model(from_text=True)
    assert refused.value.code == "Model.AccessDenied" and refused.value.http_status == 403
    assert "may not use this model" in refused.value.user_message
    assert emu.created_count == 0
    assert len(requests_to(emu, "POST", "image-synthesis")) == 2


async def test_check_model_treats_an_unknown_model_as_refused(emu: Emulator) -> None:
    async with make_client(emu.base_url, imagine_model="wan9-t2i") as wan:
        with pytest.raises(WanError) as refused:
            await wan.check_model(from_text=True)
        await wan.check_model()
    assert refused.value.message == "Model not exist."
    assert emu.created_count == 0


async def test_check_model_cancels_a_task_an_empty_create_made() -> None:
    """A service that made a task of the empty probe anyway: it is cancelled while PENDING."""
    seen: list[str] = []

    async def create(request: web.Request) -> web.Response:
        seen.append("create")
        return web.json_response(
            {"request_id": "r", "output": {"task_id": "t-1", "task_status": "PENDING"}}
        )

    async def cancel(request: web.Request) -> web.Response:
        seen.append(f"cancel {request.match_info['task_id']}")
        return web.json_response(
            {"request_id": "r", "output": {"task_id": "t-1", "task_status": "CANCELED"}}
        )

    routes = {
        ("POST", "/api/v1" + IMAGINE): create,
        ("POST", "/api/v1/tasks/{task_id}/cancel"): cancel,
    }
    async with loopback_server(routes) as origin, make_client(origin + "/api/v1") as wan:
        await wan.check_model(from_text=True)
    assert seen == ["create", "cancel t-1"]
