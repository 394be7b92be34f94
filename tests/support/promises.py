"""Helpers for the promise tests (tests/test_promises_*.py): a bot started with chosen runner settings,
a DashScope gate that holds chosen requests on the test's cue, and small readers of the store.

No tests here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from bot.store import Job, open_store
from cogs.launcher import Tuning
from cogs.wanbot import WanBot
from tests.support.fake_discord import FakeInteraction
from tests.support.fake_discord.holds import Hold
from tests.support.harness import FAST_RUNNER, FAST_WAN, World, run_in_task, wait_until

CREATE_PATH = r"/image-synthesis$"
# The bot's own new messages (thread, channel, DMs), and its interactions' follow-ups.
POSTS = r"^/channels/\d+/messages$"
FOLLOWUPS = r"^/webhooks/\d+/[^/]+$"
MISSING_PERMISSIONS = {"message": "Missing Permissions", "code": 50013}
INVALID_TOKEN = {"message": "Invalid Webhook Token", "code": 50027}
POLL_PATH = r"/tasks/[^/]+$"
EPHEMERAL = 1 << 6


async def start_bot(
    w: World, runner: dict[str, Any] | None = None, wan: dict[str, Any] | None = None, **env: str
) -> WanBot:
    """`World.start_bot`, with job runner (and Wan client) settings on top of the fast test ones
    (e.g. a shutdown that gives up on calls under way at once: ``{"shutdown_grace": 0.0}``, the
    crash of a process)."""
    tuning = Tuning(wan={**FAST_WAN, **(wan or {})}, runner={**FAST_RUNNER, **(runner or {})})
    bot, task = await run_in_task(w.settings(**env), tuning, guild_ready_timeout=0.1)
    w.bots.append(bot)
    w._tasks.append(task)
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        if task in done:
            task.result()
        raise RuntimeError("bot not ready within 15 s")
    return bot


def refuse_posts(w: World, times: int) -> None:
    """Discord refuses the bot's next `times` new messages wherever they go: the thread, the
    channel and DMs refuse the bot (403, 50013), and the interaction's follow-up answers as once
    its token has died (401, 50027), which no missing permission would make it do."""
    w.fd.inject_failure("POST", POSTS, 403, MISSING_PERMISSIONS, times=times)
    w.fd.inject_failure("POST", FOLLOWUPS, 401, INVALID_TOKEN, times=times)


class WanGate:
    """DashScope in front of the emulator: every request is passed on as it came, except those a
    test holds (`hold`), which wait until released, like a slow network would make them.

    A hold released with ``fail=(0, {})`` is never passed on: the connection is cut with no answer
    (the request never reached Wan, and the client can't know it).
    """

    def __init__(self, w: World) -> None:
        self.upstream = w.emu.base_url.rsplit("/api/v1", 1)[0]
        self.holds: list[Hold] = []
        self.passed: list[tuple[str, str]] = []  # (method, path) of every request passed on
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def hold(self, method: str, path_pattern: str, *, times: int = 1) -> Hold:
        h = Hold(method.upper(), re.compile(path_pattern), times)
        self.holds.append(h)
        return h

    def creates_passed(self) -> int:
        return sum(1 for m, p in self.passed if m == "POST" and re.search(CREATE_PATH, p))

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for h in self.holds:
            h.release(fail=(0, {}))
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        for h in self.holds:
            if h.wants(request.method, request.path):
                failure = await h.park()
                if failure is not None:
                    status, payload = failure
                    if status == 0:
                        if request.transport is not None:
                            request.transport.close()
                        return web.Response()  # never sent: the connection is closed
                    return web.json_response(payload, status=status)
                break
        self.passed.append((request.method, request.path))
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            return web.Response(
                status=upstream.status, body=payload, content_type=upstream.content_type
            )


@asynccontextmanager
async def gate(w: World) -> AsyncIterator[WanGate]:
    g = WanGate(w)
    await g.start()
    try:
        yield g
    finally:
        # Bots first: a held request must not outlive the bot that sent it.
        await w.close()
        await g.close()


async def stored_job(w: World, job_id: int) -> Job:
    """The job row as it is on disk now (read with a store of its own: no bot needs to be running)."""
    store = await open_store(f"sqlite:///{w.db_path}")
    try:
        job = await store.get_job(job_id)
    finally:
        await store.close()
    assert job is not None
    return job


async def job_ends(w: World, job_id: int, state: str, timeout: float = 10.0) -> Job:
    """Wait until the running bot's store says the job ended in `state`; return it."""

    async def ended() -> Job | None:
        job = await w.bots[-1].store.get_job(job_id)
        return job if job is not None and job.state == state else None

    return await wait_until(ended, timeout=timeout)


async def usage(w: World, user_id: int, scope: int | None = None) -> tuple[int, int]:
    """(used, held) images of `user_id` today in the test server (or `scope`)."""
    status = await w.bots[-1].store.quota_status(w.guild.id if scope is None else scope, user_id)
    return status.used, status.held


async def settled_to(w: World, user_id: int, used: int) -> None:
    async def check() -> bool:
        return await usage(w, user_id) == (used, 0)

    await wait_until(check)


def private_text(ix: FakeInteraction) -> str:
    """What the user was told privately (ephemeral response, messages or follow-ups)."""
    parts = []
    if ix.ephemeral and ix.response_type == 4 and ix.response_data:
        parts.append(ix.response_data.get("content") or "")
    parts += [(m.get("content") or "") for m in ix.messages if m.get("flags", 0) & EPHEMERAL]
    parts += [(f.get("content") or "") for f in ix.followups if f.get("flags", 0) & EPHEMERAL]
    return "\n".join(dict.fromkeys(p for p in parts if p))


async def told_privately(ix: FakeInteraction) -> str:
    await ix.wait_for(private_text)
    return private_text(ix)


def job_messages(w: World, channel_id: int, job_id: int) -> list[dict[str, Any]]:
    """The bot's result messages for `job_id` in a channel or thread (by the embed footer)."""
    footer = f"Job #{job_id}"
    return [
        m
        for m in w.fd.messages(channel_id)
        if m.get("attachments")
        and any(((e.get("footer") or {}).get("text") or "").endswith(footer) for e in m["embeds"])
    ]
