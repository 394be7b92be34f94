"""A sqlite file is for one bot process: `open_store(..., exclusive=True)` locks `PATH.lock` for the
process's life, a second bot process is refused with one line, and read-only opens still work."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store import StoreError, open_store
from tests.support.store import url

ROOT = Path(__file__).resolve().parents[2]

# A bot process: opens the store exclusively, says so, then runs until killed.
HOLDER = """
import asyncio, sys
from bot.store import open_store

async def main(url):
    store = await open_store(url, exclusive=True)
    await store.reserve(111, 501, 2)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""

# A second bot process: prints the refusal and exits 3, or exits 0 if it got the database.
SECOND = """
import asyncio, sys
from bot.store import StoreError, open_store

async def main(url):
    try:
        store = await open_store(url, exclusive=True)
    except StoreError as err:
        print(err)
        sys.exit(3)
    await store.close()

asyncio.run(main(sys.argv[1]))
"""


async def start_holder(db: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, url(db), cwd=ROOT, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line == b"ready\n"
    return proc


async def second_bot(db: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SECOND, url(db), cwd=ROOT, stdout=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip()


async def test_a_second_bot_process_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    holder = await start_holder(db)
    try:
        code, text = await second_bot(db)
        assert code == 3
        assert "\n" not in text
        assert text.startswith(f"Another wanbot process (pid {holder.pid}) is using the database")
        assert "PostgreSQL" in text and f"{db}.lock" in text
        # CLI commands (`python -m bot check`) don't take the lock: they keep working.
        reader = await open_store(url(db))
        try:
            assert (await reader.quota_status(111, 501)).held == 2
        finally:
            await reader.close()
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: nothing released by us
        await holder.wait()
    code, text = await second_bot(db)
    assert (code, text) == (0, "")  # the kernel dropped the lock with the process


async def test_close_releases_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    first = await open_store(url(db), exclusive=True)
    with pytest.raises(StoreError, match="Another wanbot process"):
        await open_store(url(db), exclusive=True)  # also within one process
    await first.close()
    again = await open_store(url(db), exclusive=True)
    await again.close()
    assert (tmp_path / "wanbot.db.lock").read_text().strip() == str(os.getpid())


async def test_a_failed_open_does_not_keep_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    db.write_bytes(b"this is not sqlite, just some text that is long enough" * 50)
    with pytest.raises(StoreError, match="not a usable sqlite database"):
        await open_store(url(db), exclusive=True)
    db.unlink()
    store = await open_store(url(db), exclusive=True)
    await store.close()


async def test_no_lock_file_without_exclusive(tmp_path: Path) -> None:
    store = await open_store(url(tmp_path / "wanbot.db"))
    await store.close()
    assert not (tmp_path / "wanbot.db.lock").exists()
