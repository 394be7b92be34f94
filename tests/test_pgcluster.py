"""`tests/pgcluster.py`, the throwaway PostgreSQL `.ci/run` and the README use: it starts a server
that takes password logins on 127.0.0.1 with durability off, and `stop` leaves nothing behind."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.test_store_support import in_ci

ROOT = Path(__file__).resolve().parent.parent


async def run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "tests/pgcluster.py",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def installed() -> bool:
    return shutil.which("initdb") is not None or Path("/usr/lib/postgresql").is_dir()


def gone(folder: Path) -> bool:
    return not folder.exists()


async def test_start_and_stop() -> None:
    if not installed():
        if in_ci():
            pytest.fail("CI needs PostgreSQL's initdb (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed")
    code, out = await run("start")
    assert code == 0, out
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.strip()
    )
    dsn, folder = exports["WANBOT_TEST_PG_DSN"], Path(exports["WANBOT_TEST_PG_DIR"])
    try:
        parts = urlsplit(dsn)
        assert parts.hostname == "127.0.0.1" and parts.password
        con = await asyncpg.connect(dsn)
        try:
            settings = {
                name: await con.fetchval(f"SHOW {name}")
                for name in ("fsync", "full_page_writes", "synchronous_commit")
            }
            assert settings == dict.fromkeys(settings, "off")
        finally:
            await con.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(dsn.replace(parts.password, "wrong"))
    finally:
        code, out = await run("stop", str(folder))
    assert code == 0, out
    assert gone(folder)
    with pytest.raises(OSError):
        await asyncpg.connect(dsn, timeout=5)
