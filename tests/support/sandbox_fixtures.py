"""Helpers for the emulator tests: a raw HTTP client of the DashScope protocol, test images, seed examples."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from PIL import Image

from bot.sandbox import Emulator, EmulatorConfig

KEY = "sk-test"
MODEL = "wan2.5-i2i-preview"
CREATE = "/services/aigc/image2image/image-synthesis"
IMAGINE = "/services/aigc/text2image/image-synthesis"
IMAGINE_MODEL = "wan2.5-t2i-preview"
TIME_RE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$"
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# Examples from the seed document (wan2.5-image-edit-api.txt) and the digest (wan-api.md §2-3), as sent on
# the wire (the SDK's own status_code/code/message wrapper removed). Values shortened; only shapes matter.
SEED_CREATE = {
    "request_id": "5dbf9dc5",
    "output": {"task_id": "7277e20e", "task_status": "PENDING"},
}
SEED_SUCCEEDED = {
    "request_id": "8ad45834",
    "output": {
        "task_id": "3aff9ebd",
        "task_status": "SUCCEEDED",
        "results": [
            {"url": "https://x/xxx.png?Expires=xxx", "orig_prompt": "Place the alarm clock"}
        ],
        "submit_time": "2025-10-23 16:18:16.009",
        "scheduled_time": "2025-10-23 16:18:16.040",
        "end_time": "2025-10-23 16:19:09.591",
        "task_metrics": {"TOTAL": 1, "FAILED": 0, "SUCCEEDED": 1},
    },
    "usage": {"image_count": 1},
}
SEED_PARTIAL = {
    "request_id": "85eaba38",
    "output": {
        "task_id": "86ecf553",
        "task_status": "SUCCEEDED",
        "results": [
            {"url": "https://x/a1.png"},
            {
                "code": "InternalError.Timeout",
                "message": "An internal timeout error has occured during execution, please try again later or contact service support.",
            },
        ],
        "task_metrics": {"TOTAL": 2, "SUCCEEDED": 1, "FAILED": 1},
    },
    "usage": {"image_count": 1},
}
SEED_FAILED_OUTPUT_KEYS = {"task_id", "task_status", "code", "message", "task_metrics"}
SEED_UNKNOWN = {"request_id": "x", "output": {"task_id": "x", "task_status": "UNKNOWN"}}
SEED_ERROR = {"code": "InvalidApiKey", "message": "No API-key provided.", "request_id": "x"}
SEED_POLICY_DATA_KEYS = {
    "policy",
    "signature",
    "upload_dir",
    "upload_host",
    "expire_in_seconds",
    "max_file_size_mb",
    "capacity_limit_mb",
    "oss_access_key_id",
    "x_oss_object_acl",
    "x_oss_forbid_overwrite",
}
LIST_ITEM_KEYS = {
    "api_key_id",
    "caller_parent_id",
    "caller_uid",
    "end_time",
    "gmt_create",
    "model_name",
    "region",
    "request_id",
    "start_time",
    "status",
    "task_id",
    "user_api_unique_key",
}


def image_bytes(
    width: int = 640,
    height: int = 480,
    fmt: str = "PNG",
    colour: tuple[int, int, int] = (40, 140, 90),
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, fmt)
    return out.getvalue()


def data_uri(data: bytes | None = None, mime: str = "image/png") -> str:
    return (
        f"data:{mime};base64,"
        + base64.b64encode(data if data is not None else image_bytes()).decode()
    )


def create_body(
    prompt: str = "Make the sky purple",
    images: list[str] | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    params = {"n": 1, "prompt_extend": False, **parameters}
    return {
        "model": MODEL,
        "input": {"prompt": prompt, "images": images or [data_uri()]},
        "parameters": params,
    }


def imagine_body(prompt: str = "A lighthouse at dusk", **parameters: Any) -> dict[str, Any]:
    """A text-to-image create body (no images)."""
    params = {"n": 1, "prompt_extend": False, **parameters}
    return {"model": IMAGINE_MODEL, "input": {"prompt": prompt}, "parameters": params}


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


class Api:
    """Raw DashScope calls over real HTTP; each returns (HTTP status, parsed JSON body)."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator, key: str = KEY) -> None:
        self.session, self.emu, self.key = session, emu, key

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **extra}

    async def _json(self, resp: aiohttp.ClientResponse) -> tuple[int, Any]:
        return resp.status, await resp.json(content_type=None)

    async def create(
        self,
        body: dict[str, Any] | None = None,
        oss: bool = False,
        *,
        route: str = CREATE,
        **headers: str,
    ) -> tuple[int, Any]:
        hdrs = self.headers(**{"X-DashScope-Async": "enable", **headers})
        if oss:
            hdrs["X-DashScope-OssResourceResolve"] = "enable"
        async with self.session.post(
            self.emu.base_url + route, json=body or create_body(), headers=hdrs
        ) as resp:
            return await self._json(resp)

    async def create_id(
        self, body: dict[str, Any] | None = None, oss: bool = False, *, route: str = CREATE
    ) -> str:
        status, data = await self.create(body, oss=oss, route=route)
        assert status == 200, data
        return data["output"]["task_id"]

    async def get(self, task_id: str) -> tuple[int, Any]:
        async with self.session.get(
            f"{self.emu.base_url}/tasks/{task_id}", headers=self.headers()
        ) as resp:
            return await self._json(resp)

    async def cancel(self, task_id: str) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.emu.base_url}/tasks/{task_id}/cancel", headers=self.headers()
        ) as resp:
            return await self._json(resp)

    async def list(self, **query: str | int) -> tuple[int, Any]:
        params = {k: str(v) for k, v in query.items()}
        async with self.session.get(
            f"{self.emu.base_url}/tasks", params=params, headers=self.headers()
        ) as resp:
            return await self._json(resp)

    async def finished(self, task_id: str, within: float = 5.0) -> dict[str, Any]:
        """Wait for a final state, then return the query answer as a client sees it."""
        await self.emu.wait_for_status(task_id, timeout=within)
        status, data = await self.get(task_id)
        assert status == 200, data
        return data

    async def download(self, url: str) -> tuple[int, bytes]:
        async with self.session.get(url) as resp:
            return resp.status, await resp.read()


@asynccontextmanager
async def sandbox(**config: Any) -> AsyncIterator[tuple[Emulator, Api]]:
    """A started emulator with fast timings and no rate limits (unless given), plus a client for it."""
    settings: dict[str, Any] = {
        "api_keys": {KEY},
        "pending_seconds": 0.01,
        "running_seconds": 0.05,
        "submit_rps": None,
        "query_qps": None,
    }
    settings.update(config)
    async with Emulator(EmulatorConfig(**settings)) as emu, aiohttp.ClientSession() as session:
        yield emu, Api(session, emu)


async def eventually(check: Callable[[], Any], within: float = 5.0, interval: float = 0.02) -> Any:
    """Poll an async or sync `check` until it returns a truthy value, with a deadline."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)
