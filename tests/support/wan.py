"""Shared fixtures and helpers for the Wan client tests (imported by the other test_wan_* files).

Everything runs over loopback HTTP against the in-process DashScope emulator (`bot.sandbox`), with
short timings: tasks run for fractions of a second and retries back off for milliseconds.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from bot.sandbox import Emulator, EmulatorConfig
from bot.wan import EditRequest, InputImage, PollConfig, WanClient

KEY = "sk-test-0123456789abcdef"
# Test tasks run 0.2 s; tell the scheduler so, as the real 30-120 s prior would poll them slowly.
FAST_POLL = PollConfig(prior=(0.1, 0.6), running_max_interval=0.5, pending_max_interval=2.0)


def png_bytes(
    width: int = 400, height: int = 400, color: tuple[int, int, int] = (40, 90, 160)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def image(**kw: Any) -> InputImage:
    return InputImage(data=png_bytes(), mime="image/png", **kw)


def edit(prompt: str = "make the sky purple", n: int = 1, **kw: Any) -> EditRequest:
    return EditRequest(prompt=prompt, images=[image()], n=n, **kw)


def emulator_config(**kw: Any) -> EmulatorConfig:
    base: dict[str, Any] = dict(api_keys={KEY}, pending_seconds=0.05, running_seconds=0.2)
    base.update(kw)
    return EmulatorConfig(**base)


def make_client(base_url: str, key: str = KEY, **kw: Any) -> WanClient:
    options: dict[str, Any] = dict(
        retry_base=0.01, retry_cap=0.05, request_timeout=5.0, poll_config=FAST_POLL
    )
    options.update(kw)
    return WanClient(key, base_url, **options)


# Imported by the test modules under these names; the fixtures themselves are `emu` and `client`.
@pytest.fixture(name="emu")
async def emu_fixture() -> AsyncIterator[Emulator]:
    async with Emulator(emulator_config()) as emulator:
        yield emulator


@pytest.fixture(name="client")
async def client_fixture(emu: Emulator) -> AsyncIterator[WanClient]:
    async with make_client(emu.base_url) as wan:
        yield wan


def requests_to(emu: Emulator, method: str, path_part: str) -> list[tuple[float, str, str, int]]:
    return [r for r in emu.request_log if r[1] == method and path_part in r[2]]


def peak_rate(times: Sequence[float], window: float = 1.0) -> int:
    """Most events in any half-open window (t - window, t]."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Await a condition (polled every 10 ms) instead of sleeping a fixed time."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def loopback_server(routes: dict[tuple[str, str], Handler]) -> AsyncIterator[str]:
    """A tiny aiohttp server on 127.0.0.1 for one behaviour the emulator has no knob for.
    Yields its origin, `http://127.0.0.1:<port>`."""
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
