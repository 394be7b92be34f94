"""`python -m bot.sandbox` runs the emulator standalone, for tests that start the bot as a subprocess."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp


async def test_cli_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sandbox",
        "--port",
        "0",
        "--running-seconds",
        "0.05",
        "--pending-seconds",
        "0.01",
        "--api-key",
        "sk-cli",
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1\s*$", line)
        assert match, line
        origin = match.group(1)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                origin + "/sandbox/faults", json={"op": "get", "status": 500}
            ) as resp:
                assert resp.status == 200
            headers = {"Authorization": "Bearer sk-cli"}
            async with session.get(origin + "/api/v1/tasks/x", headers=headers) as resp:
                assert resp.status == 500
            async with session.get(origin + "/api/v1/tasks/x", headers=headers) as resp:
                assert (await resp.json())["output"]["task_status"] == "UNKNOWN"
            async with session.get(origin + "/sandbox/state") as resp:
                assert (await resp.json())["created_count"] == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
