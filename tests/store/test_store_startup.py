"""Opening a sqlite database: migrations, persistence, and start-up failures as one line, never a
hang. (PostgreSQL's are in test_store_postgres.py.)"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from bot.store import StoreError, open_store
from bot.store.schema import latest
from tests.support.store import Clock, open_at, rows

SCHEMA_VERSION = latest()

G, U = 111, 501


async def start_error(url: str, **kwargs: object) -> str:
    with pytest.raises(StoreError) as info:
        await open_store(url, **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text and text.strip() == text and text
    return text


async def test_creates_migrates_and_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    store = await open_at(db, Clock())
    await store.reserve(G, U, 3)
    await store.set_meta("k", "v")
    await store.close()
    await store.close()  # twice is fine
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    store = await open_at(db, Clock())  # reopening runs no migration again
    try:
        assert (await store.quota_status(G, U)).held == 3
        assert await store.get_meta("k") == "v"
    finally:
        await store.close()


async def test_relative_path_is_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///wanbot.db")
    await store.close()
    assert (tmp_path / "wanbot.db").is_file()


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = await open_at(tmp_path / "wanbot.db", Clock())
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.reserve(G, U, 1)


@pytest.mark.parametrize(
    "url", ["", "wanbot.db", "sqlite:///", "mysql://bot:hunter2@db.example/wanbot"]
)
async def test_bad_url(url: str) -> None:
    text = await start_error(url)
    assert "DATABASE_URL" in text and "sqlite:///PATH" in text and "postgresql://" in text
    assert "hunter2" not in text  # a URL may carry a password: never echoed


async def test_in_memory_is_refused() -> None:
    assert "database file" in await start_error("sqlite:///:memory:")


async def test_missing_folder(tmp_path: Path) -> None:
    text = await start_error(f"sqlite:///{tmp_path}/nowhere/wanbot.db")
    assert "nowhere" in text and "does not exist" in text


async def test_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    assert "does not exist" in await start_error(f"sqlite:///{tmp_path}/plain/wanbot.db")


async def test_path_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "wanbot.db").mkdir()
    assert "Cannot write the database" in await start_error(f"sqlite:///{tmp_path}/wanbot.db")


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder the user running the tests cannot create files in. Root may write anywhere a
    mode allows nothing, so for root it is /proc, where nobody may create a file."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.skipif(
    os.geteuid() == 0 and not Path("/proc/self").is_dir(), reason="root, and no Linux /proc"
)
async def test_unwritable_folder(tmp_path: Path) -> None:
    folder = unwritable_folder(tmp_path)
    path = folder / f"wanbot-{os.getpid()}.db"
    try:
        text = await start_error(f"sqlite:///{path}")
        assert text.startswith(f"Cannot write the database {path} (")
        assert not path.exists()
    finally:
        if folder != Path("/proc"):
            folder.chmod(0o700)


async def test_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    db.write_bytes(b"this is not sqlite, just some text that is long enough" * 50)
    assert "not a usable sqlite database" in await start_error(f"sqlite:///{db}")


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    text = await start_error(f"sqlite:///{db}")
    assert f"schema version {SCHEMA_VERSION + 5}" in text and "newer wanbot" in text
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION + 5,)]  # left untouched


@pytest.mark.parametrize("existing", [False, True])
async def test_locked_file_fails_within_the_busy_timeout(tmp_path: Path, existing: bool) -> None:
    db = tmp_path / "wanbot.db"
    if existing:  # a wanbot database in WAL mode, another writer holding it
        await (await open_at(db, Clock())).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        text = await asyncio.wait_for(start_error(f"sqlite:///{db}", busy_timeout=0.3), timeout=10)
        assert time.monotonic() - started < 5
        assert "is locked by another program (waited 0.3 s)" in text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await (await open_store(f"sqlite:///{db}")).close()  # fine once the lock is gone


async def test_a_lock_held_at_run_time_is_a_bounded_store_error(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    store = await open_at(db, Clock(), busy_timeout=0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            await asyncio.wait_for(store.reserve(G, U, 1), timeout=10)
        holder.execute("ROLLBACK")
        assert (await store.reserve(G, U, 1)).images == 1  # recovers once released
        assert (await store.quota_status(G, U)).held == 1
    finally:
        holder.close()
        await store.close()
