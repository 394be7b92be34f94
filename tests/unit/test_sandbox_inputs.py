"""Emulator inputs: http(s) fetching, data URIs, the temp-file upload flow and per-image checks."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.sandbox.inputs import InputError, _decode_data_uri
from tests.support.sandbox_fixtures import (
    SEED_FAILED_OUTPUT_KEYS,
    SEED_POLICY_DATA_KEYS,
    Api,
    create_body,
    data_uri,
    image_bytes,
    png_size,
    sandbox,
)

DOWNLOAD_FAILED = "Unable to download the media resource"


@asynccontextmanager
async def image_host(files: dict[str, bytes]) -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback web server serving `files` by name; yields its origin and the list of requested paths."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        data = files.get(request.match_info["name"])
        return (
            web.Response(body=data, content_type="image/png") if data else web.Response(status=404)
        )

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_fetches_http_inputs_like_the_service() -> None:
    async with (
        image_host({"wide.png": image_bytes(1000, 500)}) as (origin, hits),
        sandbox() as (_emu, api),
    ):
        data = await api.finished(await api.create_id(create_body(images=[f"{origin}/wide.png"])))
        assert data["output"]["task_status"] == "SUCCEEDED"
        assert hits == ["/wide.png"]
        _, png = await api.download(data["output"]["results"][0]["url"])
        width, height = png_size(png)
        assert abs(width / height - 2.0) < 0.05  # made from the fetched image


@pytest.mark.parametrize("missing", ["404", "refused"])
async def test_unreachable_input_fails_the_task(missing: str) -> None:
    async with image_host({}) as (origin, _hits), sandbox() as (_emu, api):
        url = (
            f"{origin}/nothing.png"
            if missing == "404"
            else f"http://127.0.0.1:{closed_port()}/x.png"
        )
        data = await api.finished(await api.create_id(create_body(images=[url])))
        out = data["output"]
        assert out["task_status"] == "FAILED"
        assert out["code"] == "InvalidParameter.DataInspection"
        assert DOWNLOAD_FAILED in out["message"]
        assert SEED_FAILED_OUTPUT_KEYS <= out.keys()
        assert out["task_metrics"] == {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 1}
        assert "usage" not in data


async def test_fetch_inputs_off_never_downloads() -> None:
    async with (
        image_host({"a.png": image_bytes()}) as (origin, hits),
        sandbox(fetch_inputs=False) as (_e, api),
    ):
        data = await api.finished(await api.create_id(create_body(images=[f"{origin}/a.png"])))
        assert data["output"]["task_status"] == "SUCCEEDED"
        assert hits == []


BAD_IMAGES: dict[str, tuple[Callable[[], str], str, str]] = {
    "too-small": (
        lambda: data_uri(image_bytes(200, 600)),
        "InvalidParameter",
        "between 384 and 5000",
    ),
    "too-wide": (lambda: data_uri(image_bytes(2000, 400)), "InvalidParameter", "aspect ratio"),
    "gif": (lambda: data_uri(image_bytes(500, 500, "GIF"), "image/gif"), "InvalidParameter", "GIF"),
    "garbage": (lambda: data_uri(b"this is not an image"), "InvalidParameter", "cannot be decoded"),
    "over-10mb": (
        lambda: data_uri(image_bytes() + b"\0" * (10 * 1024 * 1024)),
        "InvalidParameter",
        "10 MB",
    ),
    "bad-base64": (
        lambda: "data:image/png;base64,@@@notbase64",
        "InvalidParameter.DataInspection",
        "base64",
    ),
    "not-image-mime": (
        lambda: "data:text/plain;base64,aGVsbG8=",
        "InvalidParameter.DataInspection",
        "data URI",
    ),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
async def test_bad_input_images_fail_the_task(case: str) -> None:
    make, code, text = BAD_IMAGES[case]
    async with sandbox() as (_emu, api):
        data = await api.finished(await api.create_id(create_body(images=[data_uri(), make()])))
        out = data["output"]
        assert (out["task_status"], out["code"]) == ("FAILED", code)
        assert text in out["message"]
        if code == "InvalidParameter":
            assert "Input image 2" in out["message"]


async def test_accepted_formats() -> None:
    async with sandbox() as (_emu, api):
        images = [
            data_uri(image_bytes(fmt="JPEG"), "image/jpeg"),
            data_uri(image_bytes(fmt="WEBP"), "image/webp"),
        ]
        images.append(data_uri(image_bytes(fmt="BMP"), "image/bmp"))
        data = await api.finished(await api.create_id(create_body(images=images)))
        assert data["output"]["task_status"] == "SUCCEEDED"


async def get_policy(api: Api, model: str = "wan2.5-i2i-preview") -> tuple[int, Any]:
    params = {"action": "getPolicy", "model": model}
    async with api.session.get(
        api.emu.base_url + "/uploads", params=params, headers=api.headers()
    ) as resp:
        return resp.status, await resp.json()


async def upload(
    api: Api,
    policy: dict[str, Any],
    name: str = "cat.png",
    data: bytes | None = None,
    file_last: bool = True,
) -> tuple[int, str, str]:
    """The OSS form post of wan-api.md §7; returns (status, body text, oss:// url)."""
    key = f"{policy['upload_dir']}/{name}"
    fields = [
        ("OSSAccessKeyId", policy["oss_access_key_id"]),
        ("Signature", policy["signature"]),
        ("policy", policy["policy"]),
        ("key", key),
        ("x-oss-object-acl", policy["x_oss_object_acl"]),
        ("x-oss-forbid-overwrite", policy["x_oss_forbid_overwrite"]),
        ("success_action_status", "200"),
    ]
    form = aiohttp.FormData()
    if not file_last:
        form.add_field("file", data or image_bytes(), filename=name, content_type="image/png")
    for field_name, value in fields:
        form.add_field(field_name, value)
    if file_last:
        form.add_field("file", data or image_bytes(), filename=name, content_type="image/png")
    async with api.session.post(policy["upload_host"], data=form) as resp:
        return resp.status, await resp.text(), f"oss://{key}"


async def test_upload_flow_and_oss_urls() -> None:
    async with sandbox() as (emu, api):
        status, answer = await get_policy(api)
        assert status == 200 and answer.keys() == {"request_id", "data"}
        policy = answer["data"]
        assert policy.keys() == SEED_POLICY_DATA_KEYS
        assert policy["upload_host"].startswith(emu.origin)
        assert policy["expire_in_seconds"] == 300

        status, text, oss_url = await upload(api, policy)
        assert (status, text) == (200, "")
        assert oss_url.startswith("oss://dashscope-instant/")

        # Without the resolve header the create is refused; with it, the task runs on the uploaded image.
        status, body = await api.create(create_body(images=[oss_url]))
        assert (status, body["code"]) == (400, "InvalidParameter.DataInspection")
        data = await api.finished(await api.create_id(create_body(images=[oss_url]), oss=True))
        assert data["output"]["task_status"] == "SUCCEEDED"

        # Overwrite is forbidden; unknown keys fail the task.
        assert (await upload(api, policy))[0] == 409
        missing = oss_url.replace("cat.png", "dog.png")
        data = await api.finished(await api.create_id(create_body(images=[missing]), oss=True))
        assert (data["output"]["task_status"], data["output"]["code"]) == (
            "FAILED",
            "InvalidParameter.DataInspection",
        )


async def test_oss_object_is_tied_to_the_model_named_at_upload() -> None:
    async with sandbox() as (_emu, api):
        _, answer = await get_policy(api, model="qwen-vl-max")
        status, _, oss_url = await upload(api, answer["data"])
        assert status == 200
        data = await api.finished(await api.create_id(create_body(images=[oss_url]), oss=True))
        assert data["output"]["task_status"] == "FAILED"


async def test_upload_rejections() -> None:
    async with sandbox() as (emu, api):
        _, answer = await get_policy(api)
        policy = answer["data"]
        status, text, _ = await upload(api, policy, file_last=False)
        assert status == 400 and "last" in text
        status, text, _ = await upload(api, {**policy, "signature": "forged"})
        assert status == 403 and "SignatureDoesNotMatch" in text
        status, text, _ = await upload(api, {**policy, "upload_dir": "dashscope-instant/elsewhere"})
        assert status == 403 and "AccessDenied" in text
        assert emu.uploads.objects == {}

        async with api.session.get(
            api.emu.base_url + "/uploads", params={"model": "x"}, headers=api.headers()
        ) as r:
            assert r.status == 400
        api.key = "sk-wrong"
        assert (await get_policy(api))[0] == 401


async def test_expired_policy_is_access_denied() -> None:
    async with sandbox(policy_ttl_seconds=0.0) as (_emu, api):
        _, answer = await get_policy(api)
        status, text, _ = await upload(api, answer["data"])
        assert status == 403
        assert "<Code>AccessDenied</Code>" in text and "Policy expired." in text


def test_a_data_uri_may_wrap_its_base64_but_not_carry_other_characters() -> None:
    """Like the service: base64 wrapped in lines (or spaced) decodes to the same bytes; a character
    outside base64's alphabet makes the input invalid."""
    image = image_bytes(400, 400)
    text = base64.b64encode(image).decode()
    wrapped = "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert _decode_data_uri(f"data:image/png;base64,{wrapped} \t\n", 1) == image
    with pytest.raises(InputError, match="base64 data is invalid"):
        _decode_data_uri(f"data:image/png;base64,{text[:100]}*{text[100:]}", 2)
