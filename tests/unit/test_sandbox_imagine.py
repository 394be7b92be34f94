"""The emulator's text-to-image route (`wan2.5-t2i-preview`): its validation, its results drawn from
the prompt, the task list per model, and a model the account may not use."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.sandbox_fixtures import (
    CREATE,
    IMAGINE,
    IMAGINE_MODEL,
    MODEL,
    create_body,
    data_uri,
    imagine_body,
    png_size,
    sandbox,
)


def _changed(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(imagine_body())
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "code", "text"),
    [
        ("model", MODEL, "InvalidParameter", "Model not exist."),
        ("model", ..., "BadRequest.EmptyModel", "model"),
        ("input", ..., "BadRequest.EmptyInput", "input"),
        ("input.prompt", "  ", "InvalidParameter", "prompt"),
        ("input.images", [data_uri()], "InvalidParameter", "input.images"),
        ("parameters.n", 0, "InvalidParameter", "`n`"),
        ("parameters.n", 5, "InvalidParameter", "`n`"),
        ("parameters.size", "700*700", "InvalidParameter", "768*768 and 1440*1440"),
        ("parameters.size", "1500*1500", "InvalidParameter", "768*768 and 1440*1440"),
        ("parameters.size", "2900*700", "InvalidParameter", "aspect"),
        ("parameters.seed", 2**31, "InvalidParameter", "`seed`"),
    ],
)
async def test_text_to_image_create_is_validated(
    path: str, value: Any, code: str, text: str
) -> None:
    async with sandbox() as (emu, api):
        status, body = await api.create(_changed(path, value), route=IMAGINE)
        assert status == 400, body
        assert body["code"] == code and text in body["message"]
        assert emu.created_count == 0


async def test_each_route_takes_only_its_own_model() -> None:
    """The editing route does not make images from text, nor the text route edits."""
    async with sandbox() as (emu, api):
        status, body = await api.create(imagine_body(), route=CREATE)
        assert (status, body["message"]) == (400, "Model not exist.")
        status, body = await api.create(create_body(), route=IMAGINE)
        assert (status, body["message"]) == (400, "Model not exist.")
        assert emu.created_count == 0


@pytest.mark.parametrize("size", ["1440*1440", "768*768", "1696*960", "2016*864", "768*2700"])
async def test_sizes_up_to_1440_squared_are_drawn_exactly(size: str) -> None:
    """Larger than an edit may be (1440*1440 in all, any side length within 1:4..4:1)."""
    async with sandbox() as (_emu, api):
        task_id = await api.create_id(imagine_body(size=size), route=IMAGINE)
        data = await api.finished(task_id)
        assert data["output"]["task_status"] == "SUCCEEDED"
        status, png = await api.download(data["output"]["results"][0]["url"])
        width, height = (int(side) for side in size.split("*"))
        assert status == 200 and png_size(png) == (width, height)


async def test_results_are_drawn_from_the_prompt_one_per_seed() -> None:
    """n images, seeds seed..seed+n-1, the documented 1280*1280 without a size, and a picture
    that differs with the prompt (the same prompt and seed: the same bytes)."""
    async with sandbox() as (emu, api):
        body = imagine_body("a red fox in snow", n=2, seed=40)
        del body["parameters"]["prompt_extend"]  # default: on, rewritten prompt returned
        first = await api.finished(await api.create_id(body, route=IMAGINE))
        again = await api.finished(
            await api.create_id(imagine_body("a red fox in snow", n=1, seed=40), route=IMAGINE)
        )
        other = await api.finished(
            await api.create_id(imagine_body("a blue whale", n=1, seed=40), route=IMAGINE)
        )
        results = first["output"]["results"]
        assert len(results) == 2 and first["usage"] == {"image_count": 2}
        assert results[0]["actual_prompt"].startswith("a red fox in snow.")
        pngs = [(await api.download(r["url"]))[1] for r in results]
        assert [png_size(p) for p in pngs] == [(1280, 1280)] * 2
        assert pngs[0] != pngs[1]  # seeds 40 and 41
        same = (await api.download(again["output"]["results"][0]["url"]))[1]
        different = (await api.download(other["output"]["results"][0]["url"]))[1]
        assert same == pngs[0] and different != pngs[0]
        assert [t.params.seed for t in emu.tasks.values()] == [40, 40, 40]


async def test_the_task_list_names_each_task_s_model_and_filters_by_it() -> None:
    async with sandbox() as (_emu, api):
        edit_id = await api.create_id(create_body())
        imagine_id = await api.create_id(imagine_body(), route=IMAGINE)
        status, page = await api.list(model_name=IMAGINE_MODEL)
        assert status == 200
        assert [(t["task_id"], t["model_name"]) for t in page["data"]] == [
            (imagine_id, IMAGINE_MODEL)
        ]
        status, page = await api.list(model_name=MODEL)
        assert [t["task_id"] for t in page["data"]] == [edit_id]
        status, page = await api.list()
        assert {t["model_name"] for t in page["data"]} == {MODEL, IMAGINE_MODEL}


async def test_a_denied_model_is_refused_before_its_body_is_read() -> None:
    """403 Model.AccessDenied for any create naming it, even an empty one; the other model works."""
    async with sandbox(denied_models={IMAGINE_MODEL}) as (emu, api):
        status, body = await api.create(imagine_body(), route=IMAGINE)
        assert (status, body["code"]) == (403, "Model.AccessDenied")
        empty = {"model": IMAGINE_MODEL, "input": {}}
        status, body = await api.create(empty, route=IMAGINE)
        assert (status, body["code"]) == (403, "Model.AccessDenied")
        assert (await api.create(create_body()))[0] == 200
        assert emu.created_count == 1
