"""The official dashscope SDK (v2.0.2) against the emulator: the seed document's sample calls work unchanged.

The SDK is synchronous (requests), so it runs in a worker thread while the emulator serves from the test loop.
Its wait() polls at 0, 1, 2, ... s, so each waited task costs about a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import dashscope
import pytest
import requests
from dashscope import ImageSynthesis
from dashscope.aigc.image_synthesis import AioImageSynthesis
from dashscope.api_entities.aio_session import close_shared_aio_session

from bot.sandbox import FaultRule
from tests.support.sandbox_fixtures import KEY, MODEL, data_uri, image_bytes, png_size, sandbox

PROMPT = "Place the alarm clock from image 1 next to the vase on the dining table in image 2."


@pytest.fixture(autouse=True)
def restore_base_url() -> Iterator[None]:
    saved = dashscope.base_http_api_url
    yield
    dashscope.base_http_api_url = saved


async def test_sdk_sync_call_sample() -> None:
    images = [data_uri(image_bytes(600, 800)), data_uri(image_bytes(848, 480))]
    async with sandbox() as (emu, _api):
        dashscope.base_http_api_url = emu.base_url
        rsp = await asyncio.to_thread(
            ImageSynthesis.call,
            api_key=KEY,
            model=MODEL,
            prompt=PROMPT,
            images=images,
            negative_prompt="",
            n=1,
            watermark=False,
            seed=12345,
        )
        assert rsp.status_code == HTTPStatus.OK, rsp
        assert rsp.output.task_status == "SUCCEEDED"
        assert rsp.usage.image_count == 1
        (result,) = rsp.output.results
        assert result.orig_prompt == PROMPT
        content = (await asyncio.to_thread(requests.get, result.url, timeout=10)).content
        width, height = png_size(content)
        assert abs(width / height - 848 / 480) < 0.05  # aspect of the last image

        (task,) = emu.tasks.values()
        assert task.request["parameters"] == {"n": 1, "seed": 12345, "watermark": False}
        assert task.request["input"]["negative_prompt"] == ""


async def test_sdk_async_call_fetch_wait() -> None:
    async with sandbox() as (_emu, _api):
        dashscope.base_http_api_url = _emu.base_url
        _emu.hold("running")  # not finished before the SDK's fetch, however slow its thread
        created = await asyncio.to_thread(
            ImageSynthesis.async_call,
            api_key=KEY,
            model=MODEL,
            prompt=PROMPT,
            images=[data_uri()],
            n=2,
        )
        assert created.status_code == HTTPStatus.OK, created
        assert created.output.task_status == "PENDING" and created.output.task_id
        fetched = await asyncio.to_thread(ImageSynthesis.fetch, created, api_key=KEY)
        assert fetched.output.task_status in {"PENDING", "RUNNING"}
        _emu.release("running")
        done = await asyncio.to_thread(ImageSynthesis.wait, created, api_key=KEY)
        assert done.status_code == HTTPStatus.OK
        assert done.output.task_status == "SUCCEEDED" and len(done.output.results) == 2
        assert done.output.task_metrics == {"TOTAL": 2, "SUCCEEDED": 2, "FAILED": 0}
        assert all(r.actual_prompt for r in done.output.results)  # prompt_extend defaults to on
        again = await asyncio.to_thread(ImageSynthesis.fetch, created.output.task_id, api_key=KEY)
        assert again.output.end_time and again.usage.image_count == 2


async def test_sdk_cancel_pending_task() -> None:
    async with sandbox(max_running=1) as (emu, _api):
        dashscope.base_http_api_url = emu.base_url
        emu.add_fault(FaultRule(op="task", running_seconds=5))
        first = await asyncio.to_thread(
            ImageSynthesis.async_call, api_key=KEY, model=MODEL, prompt="a", images=[data_uri()]
        )
        second = await asyncio.to_thread(
            ImageSynthesis.async_call, api_key=KEY, model=MODEL, prompt="b", images=[data_uri()]
        )
        await emu.wait_for_status(first.output.task_id, "RUNNING")
        canceled = await asyncio.to_thread(ImageSynthesis.cancel, second, api_key=KEY)
        assert canceled.status_code == HTTPStatus.OK, canceled
        # The seed sample prints rsp.output.task_status, but the SDK hands cancel's output over as a plain dict.
        assert canceled.output["task_status"] == "CANCELED"
        assert emu.tasks[second.output.task_id].status.value == "CANCELED"
        refused = await asyncio.to_thread(ImageSynthesis.cancel, first, api_key=KEY)
        assert refused.status_code == 400 and refused.code == "UnsupportedOperation"
        waited = await asyncio.to_thread(ImageSynthesis.wait, second, api_key=KEY)
        assert waited.output.task_status == "CANCELED"


async def test_sdk_list() -> None:
    async with sandbox() as (emu, api):
        dashscope.base_http_api_url = emu.base_url
        task_id = await api.create_id()
        await emu.wait_for_status(task_id)
        listed = await asyncio.to_thread(ImageSynthesis.list, api_key=KEY)
        assert listed.status_code == HTTPStatus.OK, listed
        assert listed.output["total"] == 1 and listed.output["page_size"] == 10
        assert listed.output["data"][0]["task_id"] == task_id
        assert listed.request_id


async def test_sdk_local_file_goes_through_upload_and_oss(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(image_bytes(500, 700))
    async with sandbox() as (emu, _api):
        dashscope.base_http_api_url = emu.base_url
        rsp = await asyncio.to_thread(
            ImageSynthesis.call,
            api_key=KEY,
            model=MODEL,
            prompt="Cat in a hat",
            images=[f"file://{picture}"],
            n=1,
        )
        assert rsp.status_code == HTTPStatus.OK, rsp
        assert rsp.output.task_status == "SUCCEEDED"
        (key,) = emu.uploads.objects
        assert key.endswith("/cat.png")
        (task,) = emu.tasks.values()
        assert task.request["input"]["images"] == [f"oss://{key}"]


async def test_sdk_errors_and_terminal_states() -> None:
    async with sandbox() as (emu, _api):
        dashscope.base_http_api_url = emu.base_url
        bad = await asyncio.to_thread(
            ImageSynthesis.async_call,
            api_key="sk-bad",
            model=MODEL,
            prompt="x",
            images=[data_uri()],
        )
        assert (
            bad.status_code == 401
            and bad.code == "InvalidApiKey"
            and bad.message == "Invalid API-key provided."
        )
        unknown = await asyncio.to_thread(ImageSynthesis.fetch, "no-such-task", api_key=KEY)
        assert unknown.status_code == HTTPStatus.OK and unknown.output.task_status == "UNKNOWN"
        failed = await asyncio.to_thread(
            ImageSynthesis.call,
            api_key=KEY,
            model=MODEL,
            prompt="x [fail:moderation]",
            images=[data_uri()],
            n=1,
        )
        assert failed.status_code == HTTPStatus.OK
        assert (
            failed.output.task_status == "FAILED" and failed.output.code == "DataInspectionFailed"
        )
        wrong_model = await asyncio.to_thread(
            ImageSynthesis.async_call,
            api_key=KEY,
            model="wan2.5-i2i-preview-x",
            prompt="x",
            images=[data_uri()],
        )
        assert wrong_model.status_code == 400 and wrong_model.message == "Model not exist."


async def test_sdk_aio_client_in_the_same_loop() -> None:
    async with sandbox() as (emu, _api):
        dashscope.base_http_api_url = emu.base_url
        try:
            rsp = await AioImageSynthesis.call(
                api_key=KEY, model=MODEL, prompt=PROMPT, images=[data_uri()], n=1
            )
        finally:
            await close_shared_aio_session()
        assert rsp.status_code == HTTPStatus.OK, rsp
        assert rsp.output.task_status == "SUCCEEDED"
        # Its polls go to `/tasks/{id}/`, with a trailing slash.
        assert any(path.endswith("/") for _, _, path, _ in emu.request_log)
