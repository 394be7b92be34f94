"""Helpers to connect a real discord.py client to FakeDiscord."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)


@contextlib.contextmanager
def pointed_at(fd: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fd``; restore them afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = fd.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fd.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@contextlib.asynccontextmanager
async def running(
    client: ClientT, fd: FakeDiscord, *, timeout: float = 10.0
) -> AsyncIterator[ClientT]:
    """Start ``client`` against ``fd`` (already pointed at it), wait for on_ready, and close
    it afterwards. Login/gateway errors surface here instead of hanging."""
    task = asyncio.create_task(client.start(fd.token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait(
            {task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # raises the client's error
            raise RuntimeError("client stopped before it was ready")
        if ready not in done:
            raise TimeoutError(f"client not ready within {timeout}s")
        yield client
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
