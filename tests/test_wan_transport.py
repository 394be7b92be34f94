"""The three image transports, end to end through the emulator (which really reads the inputs)."""

from __future__ import annotations

import base64

import pytest
from aiohttp import web

from bot.sandbox import Emulator, FaultRule
from bot.wan import EditRequest, InputImage, TaskStatus, WanError
from bot.wan.transport import upload_form
from tests.test_wan_fixtures import (
    emu_fixture,  # noqa: F401 (the `emu` fixture)
    emulator_config,
    loopback_server,
    make_client,
    png_bytes,
    requests_to,
)


async def test_url_mode_passes_the_url_and_the_service_fetches_it() -> None:
    picture = png_bytes(450, 420)
    fetched: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=picture, content_type="image/png")

    async with loopback_server({("GET", "/cdn/{name}"): serve}) as origin:
        async with Emulator(emulator_config(fetch_inputs=True)) as emu:
            async with make_client(emu.base_url, transport="url") as client:
                url = origin + "/cdn/cat.png?ex=1"
                request = EditRequest(
                    "a hat", [InputImage(data=picture, mime="image/png", url=url)]
                )
                created = await client.create_task(request)
                result = await client.wait(created.task_id)
                assert emu.tasks[created.task_id].request["input"]["images"] == [url]
                # A URL the service cannot fetch fails the task, as on the real service.
                broken = EditRequest(
                    "a hat", [InputImage(data=None, mime="image/png", url=origin + "/gone.png")]
                )
                failed = await client.wait((await client.create_task(broken)).task_id)
    assert result.status is TaskStatus.SUCCEEDED and fetched == ["/cdn/cat.png"]
    assert failed.status is TaskStatus.FAILED
    assert failed.code == "InvalidParameter.DataInspection"


async def test_base64_mode_inlines_the_bytes(emu: Emulator) -> None:
    picture = png_bytes(400, 500)
    async with make_client(emu.base_url, transport="base64") as client:
        created = await client.create_task(
            EditRequest("x", [InputImage(data=picture, mime="image/png", url="https://cdn/x.png")])
        )
        result = await client.wait(created.task_id)
    sent = emu.tasks[created.task_id].request["input"]["images"][0]
    prefix = "data:image/png;base64,"
    assert sent.startswith(prefix) and base64.b64decode(sent[len(prefix) :]) == picture
    assert result.status is TaskStatus.SUCCEEDED


async def test_upload_mode_uses_one_policy_and_oss_urls(emu: Emulator) -> None:
    images = [
        InputImage(data=png_bytes(400, 400, (200, 10, 10)), mime="image/png", filename="a.png"),
        InputImage(data=png_bytes(600, 400, (10, 200, 10)), mime="image/png", filename="a.png"),
    ]
    emu.add_fault(FaultRule(op="upload", status=503, code="ServiceUnavailable"))
    async with make_client(emu.base_url, transport="upload") as client:
        created = await client.create_task(EditRequest("merge", images))
        result = await client.wait(created.task_id)
    sent = emu.tasks[created.task_id].request["input"]["images"]
    assert all(s.startswith("oss://dashscope-instant/") for s in sent)
    assert sent[0] != sent[1]  # same filename, distinct keys
    assert len(requests_to(emu, "GET", "/uploads")) == 1  # one policy for the whole call
    uploads = [r[3] for r in requests_to(emu, "POST", "/oss-upload")]
    assert uploads == [503, 200, 200]  # the failed upload was retried
    # The emulator resolves oss:// only with X-DashScope-OssResourceResolve: the task ran.
    assert result.status is TaskStatus.SUCCEEDED
    assert result.image_count == 1


async def test_upload_policy_failure_creates_nothing(emu: Emulator) -> None:
    emu.add_fault(FaultRule(op="policy", status=403, code="AccessDenied", message="denied"))
    async with make_client(emu.base_url, transport="upload") as client:
        with pytest.raises(WanError) as info:
            await client.create_task(EditRequest("x", [InputImage(png_bytes(), "image/png")]))
    assert info.value.code == "AccessDenied" and emu.created_count == 0


def test_upload_form_puts_the_file_last() -> None:
    policy = {
        "policy": "p",
        "signature": "s",
        "upload_dir": "d",
        "upload_host": "h",
        "oss_access_key_id": "ak",
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }
    form = upload_form(policy, "d/1-x.png", InputImage(b"data", "image/png"))
    names = [field[0]["name"] for field in form._fields]
    assert names[0] == "OSSAccessKeyId" and names[-1] == "file"
    assert {"Signature", "policy", "key", "x-oss-object-acl", "x-oss-forbid-overwrite"} <= set(
        names
    )
    assert "success_action_status" in names


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image transport"):
        make_client("http://127.0.0.1:9/api/v1", transport="carrier-pigeon")
