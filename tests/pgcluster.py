"""A throwaway PostgreSQL server for the tests: Debian's `initdb`/`pg_ctl` in a temporary folder.

    eval "$(python tests/pgcluster.py start)"    # exports WANBOT_TEST_PG_DSN and WANBOT_TEST_PG_DIR
    python tests/pgcluster.py stop "$WANBOT_TEST_PG_DIR"

The server listens on 127.0.0.1 on a free port, with a random password for the `postgres` role
(password logins over TCP, so the tests see real authentication), and with fsync, full-page writes
and synchronous commit off: its data is thrown away, so durability would only cost time. `initdb`
and `pg_ctl` refuse to run as root, so as root they run as the `postgres` user, which owns the folder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    # Several stores per test, each a pool, and three worker processes in one test.
    "max_connections": "300",
    "shared_buffers": "32MB",
}


class ClusterError(Exception):
    """The server could not be started or stopped; `str()` says why, with the server's log tail."""


def _binary(name: str) -> str:
    for folder in BIN_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise ClusterError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return found


def _as_owner(argv: list[str]) -> list[str]:
    """Root runs the command as `postgres` (initdb and pg_ctl refuse root); others run it as is."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], folder: Path) -> None:
    result = subprocess.run(_as_owner(argv), capture_output=True, text=True, cwd=folder)
    if result.returncode != 0:
        log = folder / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise ClusterError(f"{argv[0]} failed: {result.stderr.strip()} {tail}".strip())


def start(folder: Path | None = None) -> tuple[str, Path]:
    """Create and start a server; return (its DSN, its folder). The DSN names the `postgres` db.

    On failure nothing is left behind: the server is stopped and the folder deleted.
    """
    folder = Path(folder or tempfile.mkdtemp(prefix="wanbot-pg-"))
    try:
        return _start(folder)
    except BaseException:
        stop(folder)
        raise


def _start(folder: Path) -> tuple[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    password = secrets.token_urlsafe(16)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    os.chmod(folder, 0o700)
    _run(
        [
            _binary("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # its data is thrown away: no need to wait for the disk
        ],
        folder,
    )
    pwfile.unlink()
    port = _free_port()
    options = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
    # The Unix socket goes in our own folder: /var/run/postgresql may not exist or be shared.
    options += f" -p {port} -c unix_socket_directories={folder}"
    _run(
        [
            _binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        folder,
    )
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", folder


def stop(folder: Path) -> None:
    """Stop the server (immediate shutdown: its data is thrown away) and delete its folder."""
    data = folder / "data"
    try:
        if (data / "postmaster.pid").exists():
            _run([_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="start a server; print `export` lines for the shell")
    stopper = sub.add_parser("stop", help="stop the server in FOLDER and delete it")
    stopper.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            dsn, folder = start()
            sys.stdout.write(
                f"export WANBOT_TEST_PG_DSN={shlex.quote(dsn)}\n"
                f"export WANBOT_TEST_PG_DIR={shlex.quote(str(folder))}\n"
            )
        else:
            stop(args.folder)
    except ClusterError as err:
        sys.stderr.write(f"pgcluster: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
