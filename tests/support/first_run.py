"""Helpers for the first-run tests: `python -m bot ...` as a real subprocess against the loopback fakes.

The child gets a clean environment (PATH, PYTHONPATH, and the settings a test passes) and runs in the
test's tmp folder, so neither the developer's environment nor a `.env` in the repository leaks in.
Its stderr (the log) is read line by line while it runs, so a test awaits a log line instead of
sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
TOKEN = "first-run-token-0123456789"
API_KEY = "sk-first-run-key-0123456789"
OTHER_REGION_KEY = "sk-beijing-key-0123456789"
TIMEOUT = 30.0
T = TypeVar("T")


def base_env(**settings: str) -> dict[str, str]:
    """The child's whole environment: what it needs to run Python, plus `settings`."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.update(settings)
    return env


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = TIMEOUT) -> Finished:
    """Run `python -m bot ARGS` to completion."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


@dataclass
class BotProcess:
    """A running `python -m bot ...`; `lines` is its stderr so far."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    stdout: str = ""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    async def wait_for_line(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The first stderr line matching `pattern` (a regex), waiting for it with a deadline."""
        regex = re.compile(pattern)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for line in self.lines:
                if regex.search(line):
                    return line
            if self._reader is not None and self._reader.done():
                raise AssertionError(
                    f"exited without logging {pattern!r}; log:\n{self.log[-4000:]}"
                )
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no line matching {pattern!r} in time; log:\n{self.log[-4000:]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def alongside(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` (e.g. a wait on the fake), failing at once if the bot exits first."""
        task = asyncio.ensure_future(awaitable)
        exited = asyncio.ensure_future(self.process.wait())
        try:
            await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if self._reader is not None:
            await self._reader
        raise AssertionError(
            f"the bot exited with status {self.process.returncode}; log:\n{self.log[-4000:]}"
        )

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        """Send `sig` and wait for the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await self.wait(timeout)

    async def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise TimeoutError(
                f"still running after {timeout} s; log:\n{self.log[-4000:]}"
            ) from None
        if self._reader is not None:
            await self._reader
        assert self.process.stdout is not None
        self.stdout = (await self.process.stdout.read()).decode()
        return code


async def start_cli(*args: str, env: dict[str, str], cwd: Path) -> BotProcess:
    """Start `python -m bot ARGS` and keep reading its log."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    bot = BotProcess(process)
    bot._reader = asyncio.create_task(bot._read())
    return bot


@contextlib.asynccontextmanager
async def running_cli(*args: str, env: dict[str, str], cwd: Path) -> AsyncIterator[BotProcess]:
    """`start_cli` that never leaves a child behind, whatever the test does."""
    bot = await start_cli(*args, env=env, cwd=cwd)
    try:
        yield bot
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
        if bot._reader is not None:
            with contextlib.suppress(Exception):
                await bot._reader
