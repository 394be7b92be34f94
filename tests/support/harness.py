"""End-to-end harness: a real WanBot (discord.py) against the loopback fake Discord and the Wan emulator.

`World` holds both fakes, a server with a channel, an admin and members, and starts/stops bots on one
sqlite file, so a test can stop a bot mid-job and start a new one on the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
from PIL import Image

from bot.config import Settings, load_settings
from bot.sandbox import Emulator
from bot.wan import PollConfig
from cogs.launcher import Tuning, assembled
from cogs.wanbot import WanBot
from tests.support.fake_discord import CdnFile, Channel, FakeDiscord, FakeInteraction, Guild, User
from tests.support.fake_discord.client import pointed_at

API_KEY = "sk-test-e2e-key"
MANAGE_GUILD = 1 << 5

# Fast timings for tests: small retry delays, short polls.
# The production poll prior expects 30-120 s tasks; the emulator's take a fraction of a second.
# The request timeout stays generous: on a busy machine a create's body can take seconds to send,
# and a create given up mid-body is a lost answer (reconciled), not the path most tests are about;
# the tests of that path set their own short timeout.
FAST_WAN = {
    "retry_base": 0.01,
    "retry_cap": 0.05,
    "request_timeout": 15.0,
    "poll_config": PollConfig(prior=(0.1, 0.6), running_max_interval=0.5, pending_max_interval=2.0),
}
FAST_RUNNER = {"retry_delay": 0.01}
# A postponed delivery is tried again this soon (300 s in the bot), still long after the job's run
# has ended: a retry that comes while the run is winding up is dropped (`Deliverer._retry_later`).
REDELIVER_SOON = {"redeliver_after": 1.0}
# How long a bot's close may take in a test before its tasks' stacks are shown (under mutmut's
# 30 s per-test timeout, so a mutation run shows them too).
CLOSE_WITHIN = 25.0


def _stack_of(task: asyncio.Task[Any]) -> str:
    out = io.StringIO()
    task.print_stack(file=out)
    return out.getvalue()


def png(
    width: int = 512, height: int = 512, colour: tuple[int, int, int] = (40, 120, 200)
) -> bytes:
    """A real PNG of the given size."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


async def run_in_task(
    settings: Settings, tuning: Tuning, **options: Any
) -> tuple[WanBot, asyncio.Task[None]]:
    """Assemble a bot as the launcher does and start it in a task; the task closes its parts (Wan
    client, store) once the bot is closed."""
    built: asyncio.Future[WanBot] = asyncio.get_running_loop().create_future()

    async def run() -> None:
        async with assembled(settings, tuning=tuning, **options) as bot:
            built.set_result(bot)
            await bot.start(settings.discord_token or "")

    task = asyncio.create_task(run())
    await asyncio.wait({task, built}, return_when=asyncio.FIRST_COMPLETED)
    if not built.done():
        built.cancel()
        task.result()
        raise RuntimeError("the bot was never assembled")
    return built.result(), task


@dataclass
class World:
    """Both fakes, one server, and the bots started on them."""

    fd: FakeDiscord
    emu: Emulator
    db_path: Path
    guild: Guild
    channel: Channel
    admin: User
    users: list[User]
    env: dict[str, str] = field(default_factory=dict)
    bots: list[WanBot] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def alice(self) -> User:
        return self.users[0]

    @property
    def bob(self) -> User:
        return self.users[1]

    def settings(self, **env: str) -> Settings:
        values = {
            "DISCORD_TOKEN": self.fd.token,
            "DASHSCOPE_API_KEY": API_KEY,
            "DASHSCOPE_BASE_URL": self.emu.base_url,
            "DISCORD_API_BASE": self.fd.api_base,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            **self.env,
            **env,
        }
        return load_settings(values, dotenv_path=None)

    async def start_bot(
        self,
        *,
        sandbox: bool = False,
        wait_ready: bool = True,
        runner_options: dict[str, Any] | None = None,
        **env: str,
    ) -> WanBot:
        """Start a WanBot in this process and wait until it is connected and ready."""
        tuning = Tuning(wan=dict(FAST_WAN), runner={**FAST_RUNNER, **(runner_options or {})})
        bot, task = await run_in_task(
            self.settings(**env), tuning, sandbox=sandbox, guild_ready_timeout=0.1
        )
        self.bots.append(bot)
        self._tasks.append(task)
        if wait_ready:
            ready = asyncio.create_task(bot.wait_until_ready())
            done, _ = await asyncio.wait(
                {task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                ready.cancel()
                task.result()
                raise RuntimeError("bot stopped before it was ready")
            if ready not in done:
                ready.cancel()
                raise TimeoutError("bot not ready within 15 s")
        return bot

    async def stop_bot(self, bot: WanBot) -> None:
        """Stop `bot` as Ctrl-C would: jobs in flight stay in the store.

        A stop that hangs fails with what every task was waiting on (pytest-timeout would only
        show the test's own frame)."""
        closing = asyncio.ensure_future(bot.close())
        try:
            done, _ = await asyncio.wait({closing}, timeout=CLOSE_WITHIN)
        except asyncio.CancelledError:
            closing.cancel()
            raise
        if not done:
            stacks = "\n".join(_stack_of(t) for t in asyncio.all_tasks() if not t.done())
            closing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await closing
            raise AssertionError(f"bot.close() still running after {CLOSE_WITHIN} s:\n{stacks}")
        closing.result()
        index = self.bots.index(bot)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._tasks[index], 10)

    async def close(self) -> None:
        hung: list[AssertionError] = []
        try:
            for bot in list(self.bots):
                if not bot.is_closed():
                    try:
                        await self.stop_bot(bot)
                    except AssertionError as err:
                        hung.append(err)  # the others are still stopped
        finally:
            self._stack.close()
        if hung:
            raise hung[0]

    # ---- acting as users ----------------------------------------------------------------------

    def add_member(self, name: str, *, admin: bool = False, guild: Guild | None = None) -> User:
        user = self.fd.add_user(name)
        self.fd.add_member(guild or self.guild, user, permissions=MANAGE_GUILD if admin else 0)
        return user

    def upload(
        self,
        data: bytes | None = None,
        filename: str = "input.png",
        content_type: str = "image/png",
    ) -> CdnFile:
        return self.fd.add_cdn_file(data if data is not None else png(), filename, content_type)

    async def wanedit(
        self,
        user: User,
        prompt: str = "make it blue",
        images: list[bytes | CdnFile] | None = None,
        *,
        channel: Channel | None = None,
        guild: Guild | None = None,
        **options: Any,
    ) -> FakeInteraction:
        """Dispatch /wanedit as `user` with the given images (PNG bytes or uploaded files)."""
        files = [i if isinstance(i, CdnFile) else self.upload(i) for i in (images or [png()])]
        names = ["image", "image2", "image3"]
        opts: dict[str, Any] = {"prompt": prompt, **options}
        for name, f in zip(names, files, strict=False):
            opts[name] = f
        return await self.fd.slash(
            guild or self.guild, channel or self.channel, user, "wanedit", opts
        )

    async def result_message(
        self, user: User, *, timeout: float = 10.0, since: int | None = None
    ) -> dict[str, Any]:
        """The next message of the bot that mentions `user` and carries files (a delivered result)."""

        def is_result(m: dict[str, Any]) -> bool:
            return bool(m.get("attachments")) and f"<@{user.id}>" in (m.get("content") or "")

        return await self.fd.wait_for_message(None, is_result, timeout, since=since)

    def results_for(self, user: User) -> list[dict[str, Any]]:
        """Every delivered result message for `user`, in every channel and thread."""
        found = []
        for channel in [self.channel, *self.fd.threads]:
            for m in self.fd.messages(channel):
                if m.get("attachments") and f"<@{user.id}>" in (m.get("content") or ""):
                    found.append(m)
        return found


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01
) -> Any:
    """Poll `predicate` until it returns something truthy (an awaited condition, not a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def embed_text(message: dict[str, Any] | discord.Message | None) -> str:
    """All the text of a message's embeds, for assertions."""
    if message is None:
        return ""
    embeds = (
        message.get("embeds", [])
        if isinstance(message, dict)
        else [e.to_dict() for e in message.embeds]
    )
    parts: list[str] = []
    for e in embeds:
        parts += [e.get("title") or "", e.get("description") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in e.get("fields", [])]
        parts.append((e.get("footer") or {}).get("text") or "")
    return "\n".join(parts)


async def make_world(tmp_path: Path, *, emulator: Emulator, application_flags: int = 0) -> World:
    fd = FakeDiscord(application_flags=application_flags)
    await fd.start()
    admin = fd.add_user("admin")
    guild = fd.add_guild("Test server", owner=admin)
    channel = fd.add_text_channel(guild, "general")
    fd.add_member(guild, admin, permissions=MANAGE_GUILD)
    users = []
    for name in ("alice", "bob", "carol"):
        user = fd.add_user(name)
        fd.add_member(guild, user, permissions=0)
        users.append(user)
    world = World(fd, emulator, tmp_path / "wanbot.db", guild, channel, admin, users)
    world._stack.enter_context(pointed_at(fd))
    return world
