"""`tests/support/pgcluster.py`, the throwaway PostgreSQL `.ci/run` and the README use: it starts a server
that takes password logins on 127.0.0.1 with durability off, and `stop` leaves nothing behind."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.support.pgcluster import ClusterError, choose, pgserver_bin
from tests.support.store import in_ci

ROOT = Path(__file__).resolve().parents[2]


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "tests/support/pgcluster.py",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def installed() -> bool:
    return shutil.which("initdb") is not None or Path("/usr/lib/postgresql").is_dir()


def gone(folder: Path) -> bool:
    return not folder.exists()


def programs(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
    return folder


def test_debian_first_then_the_path_then_pgserver(tmp_path: Path) -> None:
    """Which server programs start the test server: Debian's package folder when it has both
    initdb and pg_ctl, else both found on the PATH (in one folder), else the pgserver wheel's;
    `prefer` (WANBOT_TEST_PG_BINARIES) allows only one kind; none at all says how to get one."""
    debian = programs(tmp_path / "usr/lib/postgresql/16/bin", "initdb", "pg_ctl")
    half = programs(tmp_path / "usr/lib/postgresql/15/bin", "pg_ctl")  # initdb missing
    wheel = programs(tmp_path / "pgserver/pginstall/bin", "initdb", "pg_ctl")
    on_path = programs(tmp_path / "usr/local/bin", "initdb", "pg_ctl")

    def which(name: str) -> str | None:
        return str(on_path / name)

    def nowhere(name: str) -> str | None:
        return None

    both = (str(half), str(debian))
    assert choose(bin_dirs=both, which=which, pgserver=lambda: wheel).folder == debian
    assert choose(bin_dirs=both, which=which, pgserver=lambda: wheel).source == "debian"
    found = choose(bin_dirs=(str(half),), which=which, pgserver=lambda: wheel)
    assert (found.folder, found.source) == (on_path, "system")
    found = choose(bin_dirs=(str(half),), which=nowhere, pgserver=lambda: wheel)
    assert (found.folder, found.source) == (wheel, "pgserver")
    assert found["pg_ctl"] == str(wheel / "pg_ctl")
    found = choose(bin_dirs=both, which=which, pgserver=lambda: wheel, prefer="pgserver")
    assert found.source == "pgserver"
    with pytest.raises(ClusterError, match=r"apt-get install postgresql.*pip install pgserver"):
        choose(bin_dirs=(str(half),), which=nowhere, pgserver=lambda: None)
    with pytest.raises(ClusterError):
        choose(bin_dirs=both, which=which, pgserver=lambda: None, prefer="pgserver")
    with pytest.raises(ClusterError, match="debian or pgserver"):
        choose(bin_dirs=both, which=which, pgserver=lambda: wheel, prefer="brew")


def test_the_installed_pgserver_wheel_is_found_without_importing_it() -> None:
    """`pgserver_bin` finds the wheel's programs where pip put them (a dev dependency)."""
    if importlib.util.find_spec("pgserver") is None:
        pytest.skip("the pgserver wheel is not installed (pip install -e '.[dev]')")
    folder = pgserver_bin()
    assert folder is not None and (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()
    assert "pgserver" not in sys.modules


@pytest.mark.parametrize("binaries", ["debian", "pgserver"])
async def test_start_and_stop(binaries: str) -> None:
    """Both kinds of server programs give the same server: password logins on 127.0.0.1,
    durability off; `stop` leaves nothing behind."""
    if binaries == "debian" and not installed():
        if in_ci():
            pytest.fail("CI needs PostgreSQL's initdb (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed")
    if binaries == "pgserver" and pgserver_bin() is None:
        if in_ci():
            pytest.fail("CI installs the pgserver wheel (a dev dependency)")
        pytest.skip("the pgserver wheel is not installed")
    code, out = await run("start", env={"WANBOT_TEST_PG_BINARIES": binaries})
    assert code == 0, out
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.strip()
    )
    dsn, folder = exports["WANBOT_TEST_PG_DSN"], Path(exports["WANBOT_TEST_PG_DIR"])
    try:
        # The server was started by the programs asked for.
        started_by = (folder / "bin-folder").read_text()
        assert ("pgserver" in started_by) == (binaries == "pgserver"), started_by
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
