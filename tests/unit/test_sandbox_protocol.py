"""Emulator request handling: auth, headers, create validation, rate limits, list, error envelopes."""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.sandbox.clock import WAN_TZ
from tests.support.sandbox_fixtures import (
    CREATE,
    KEY,
    LIST_ITEM_KEYS,
    SEED_ERROR,
    create_body,
    data_uri,
    sandbox,
)

SYNC_DENIED = "current user api does not support synchronous calls"


async def test_missing_and_wrong_keys_get_401() -> None:
    async with sandbox(other_region_keys={"sk-beijing"}) as (emu, api):
        url = emu.base_url + CREATE
        async with api.session.post(
            url, json=create_body(), headers={"X-DashScope-Async": "enable"}
        ) as resp:
            body = await resp.json()
            assert resp.status == 401 and resp.content_type == "application/json"
            assert body["code"] == "InvalidApiKey" and body["message"] == "No API-key provided."
            assert body.keys() == SEED_ERROR.keys()
        for key in ("sk-wrong", "sk-beijing"):
            api.key = key
            status, body = await api.create()
            assert (status, body["code"], body["message"]) == (
                401,
                "InvalidApiKey",
                "Invalid API-key provided.",
            )
            status, body = await api.get("some-id")
            assert (status, body["code"]) == (401, "InvalidApiKey")
        assert emu.created_count == 0


async def test_empty_key_set_accepts_any_key_but_other_region() -> None:
    async with sandbox(api_keys=set(), other_region_keys={"sk-beijing"}) as (_emu, api):
        api.key = "sk-anything"
        assert (await api.create())[0] == 200
        api.key = "sk-beijing"
        assert (await api.create())[0] == 401


async def test_create_without_async_header_is_denied() -> None:
    async with sandbox() as (emu, api):
        headers = {"Authorization": f"Bearer {KEY}"}
        async with api.session.post(
            emu.base_url + CREATE, json=create_body(), headers=headers
        ) as resp:
            body = await resp.json()
        assert resp.status == 403
        assert (body["code"], body["message"]) == ("AccessDenied", SYNC_DENIED)
        assert emu.created_count == 0


async def test_non_json_body_is_400() -> None:
    async with sandbox() as (emu, api):
        headers = api.headers(**{"X-DashScope-Async": "enable", "Content-Type": "application/json"})
        async with api.session.post(
            emu.base_url + CREATE, data=b"{not json", headers=headers
        ) as resp:
            body = await resp.json()
        assert resp.status == 400 and body["code"] == "InvalidParameter"
        assert body["message"] == "Required body invalid, please check the request body format."


def _mutate(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(create_body())
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
        ("model", ..., "BadRequest.EmptyModel", "model"),
        ("model", "wan2.2-t2i-flash", "InvalidParameter", "Model not exist."),
        ("input", ..., "BadRequest.EmptyInput", "input"),
        ("input.prompt", ..., "InvalidParameter", "prompt"),
        ("input.prompt", "   ", "InvalidParameter", "prompt"),
        ("input.images", [], "InvalidParameter", "images"),
        ("input.images", [data_uri()] * 4, "InvalidParameter", "between 1 and 3"),
        ("input.images", ["file:///tmp/x.png"], "InvalidParameter", "image 1"),
        ("parameters.n", 0, "InvalidParameter", "`n`"),
        ("parameters.n", 5, "InvalidParameter", "`n`"),
        ("parameters.n", "two", "InvalidParameter", "`n`"),
        ("parameters.seed", -1, "InvalidParameter", "`seed`"),
        ("parameters.seed", 2**31, "InvalidParameter", "`seed`"),
        ("parameters.size", "1024x1024", "InvalidParameter", "size format"),
        ("parameters.size", "512*512", "InvalidParameter", "total pixels"),
        ("parameters.size", "1500*1500", "InvalidParameter", "total pixels"),
        ("parameters.size", "2600*600", "InvalidParameter", "aspect"),
        ("parameters.prompt_extend", "yes", "InvalidParameter", "prompt_extend"),
    ],
)
async def test_create_validation_errors(path: str, value: Any, code: str, text: str) -> None:
    async with sandbox() as (emu, api):
        status, body = await api.create(_mutate(path, value))
        assert status == 400, body
        assert body["code"] == code
        assert text in body["message"]
        assert emu.created_count == 0


@pytest.mark.parametrize(
    ("size", "expected"),
    [("2560*640", (2560, 640)), ("768*768", (768, 768)), (" 1280 * 720 ", (1280, 720))],
)
async def test_size_limits_are_inclusive(size: str, expected: tuple[int, int]) -> None:
    async with sandbox() as (emu, api):
        task_id = await api.create_id(create_body(size=size))
        assert emu.tasks[task_id].params.size == expected


async def test_seed_as_numeric_string_like_the_java_sample() -> None:
    async with sandbox() as (emu, api):
        task_id = await api.create_id(create_body(seed="12345"))
        assert emu.tasks[task_id].params.seed == 12345


async def test_long_prompts_are_truncated_not_rejected() -> None:
    async with sandbox() as (emu, api):
        body = create_body(prompt="p" * 2500)
        body["input"]["negative_prompt"] = "n" * 600
        task_id = await api.create_id(body)
        params = emu.tasks[task_id].params
        assert len(params.prompt) == 2000 and params.negative_prompt == "n" * 500
        data = await api.finished(task_id)
        assert data["output"]["results"][0]["orig_prompt"] == "p" * 2000


async def test_submit_rate_limit_429() -> None:
    async with sandbox(submit_rps=3.0) as (emu, api):
        answers = await asyncio.gather(*(api.create() for _ in range(8)))
        statuses = [status for status, _ in answers]
        assert 3 <= statuses.count(200) <= 4, statuses
        assert statuses.count(429) == 8 - statuses.count(200)
        throttled = next(body for status, body in answers if status == 429)
        assert throttled["code"] == "Throttling.RateQuota"
        assert throttled["message"] == "Requests rate limit exceeded, please try again later."
        assert emu.created_count == statuses.count(200)
        logged = [entry for entry in emu.request_log if entry[2].endswith(CREATE)]
        assert sorted(e[3] for e in logged) == sorted(statuses)


async def test_query_rate_limit_is_shared_by_get_cancel_and_list() -> None:
    async with sandbox(query_qps=4.0) as (emu, api):
        task_id = await api.create_id()
        calls = [
            api.get(task_id),
            api.list(),
            api.cancel("nope"),
            api.get(task_id),
            api.list(),
            api.get(task_id),
        ]
        answers = await asyncio.gather(*calls)
        statuses = [status for status, _ in answers]
        assert statuses.count(429) >= 1, statuses
        assert all(
            body["code"] == "Throttling.RateQuota" for status, body in answers if status == 429
        )
        window = [e for e in emu.request_log if "/tasks" in e[2]]
        assert len(window) == 6
        assert max(e[0] for e in window) - min(e[0] for e in window) < 1.0  # measurable peak QPS


async def test_list_shape_paging_and_filters() -> None:
    async with sandbox() as (emu, api):
        ids = [await api.create_id() for _ in range(3)]
        for task_id in ids:
            await emu.wait_for_status(task_id, "SUCCEEDED")
        status, page = await api.list(page_no=1, page_size=2)
        assert status == 200
        assert page.keys() == {"request_id", "data", "total", "total_page", "page_no", "page_size"}
        assert (page["total"], page["total_page"], page["page_no"], page["page_size"]) == (
            3,
            2,
            1,
            2,
        )
        assert [item["task_id"] for item in page["data"]] == ids[::-1][:2]  # newest first
        item = page["data"][0]
        assert item.keys() == LIST_ITEM_KEYS
        assert item["status"] == "SUCCEEDED" and item["model_name"] == "wan2.5-i2i-preview"
        assert item["region"] == "ap-southeast-1"
        assert (
            isinstance(item["gmt_create"], int)
            and item["end_time"] >= item["start_time"] >= item["gmt_create"]
        )
        assert KEY not in str(page)

        _, second = await api.list(page_no=2, page_size=2)
        assert [i["task_id"] for i in second["data"]] == [ids[0]]
        assert (await api.list(status="FAILED"))[1]["total"] == 0
        assert (await api.list(status="SUCCEEDED", model_name="wan2.5-i2i-preview"))[1][
            "total"
        ] == 3
        assert (await api.list(model_name="wanx-v1"))[1]["total"] == 0

        now = datetime.now(WAN_TZ)
        fmt = "%Y%m%d%H%M%S"
        future = (now + timedelta(hours=1)).strftime(fmt)
        assert (await api.list(start_time=future, end_time=future))[1]["total"] == 0
        recent = (now - timedelta(minutes=5)).strftime(fmt)
        assert (await api.list(start_time=recent, end_time=now.strftime(fmt)))[1]["total"] == 3


@pytest.mark.parametrize(
    "query",
    [
        {"start_time": "20250101000000", "end_time": "20250103000000"},  # > 24 h
        {"start_time": "2025-01-01"},
        {"start_time": "20250102000000", "end_time": "20250101000000"},
        {"status": "DONE"},
        {"page_size": 0},
        {"page_no": "x"},
    ],
)
async def test_list_parameter_errors(query: dict[str, str | int]) -> None:
    async with sandbox() as (_emu, api):
        status, body = await api.list(**query)
        assert (status, body["code"]) == (400, "InvalidParameter")


async def test_list_in_beijing_region() -> None:
    async with sandbox(region="beijing") as (_emu, api):
        await api.create_id()
        assert (await api.list())[1]["data"][0]["region"] == "cn-beijing"


async def test_unknown_api_path_is_a_url_error() -> None:
    async with sandbox() as (emu, api):
        async with api.session.get(
            emu.base_url + "/services/aigc/text2image/nope", headers=api.headers()
        ) as resp:
            body = await resp.json()
        assert resp.status == 400 and body["message"] == "url error, please check url!"


async def test_request_log_records_every_request() -> None:
    async with sandbox() as (emu, api):
        before = time.monotonic()
        await api.create()
        await api.get("x")
        api.key = "bad"
        await api.get("x")
        assert [(m, s) for _, m, _, s in emu.request_log] == [
            ("POST", 200),
            ("GET", 200),
            ("GET", 401),
        ]
        assert all(t >= before for t, *_ in emu.request_log)
