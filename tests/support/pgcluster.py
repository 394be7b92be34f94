"""A throwaway PostgreSQL server for the tests: `initdb`/`pg_ctl` in a temporary folder.

    eval "$(python tests/support/pgcluster.py start)"    # exports WANBOT_TEST_PG_DSN and WANBOT_TEST_PG_DIR
    python tests/support/pgcluster.py restart "$WANBOT_TEST_PG_DIR" [--down-for SECONDS]
    python tests/support/pgcluster.py stop "$WANBOT_TEST_PG_DIR"

The server programs are Debian's (the `postgresql` package, `/usr/lib/postgresql/N/bin`, or on the
PATH) when installed, else those the `pgserver` wheel from PyPI ships (`pip install pgserver`, for
machines without apt). `WANBOT_TEST_PG_BINARIES=debian` or `=pgserver` insists on one of them.

The server listens on 127.0.0.1 on a free port, with a random password for the `postgres` role
(password logins over TCP, so the tests see real authentication), and with fsync, full-page writes
and synchronous commit off: its data is thrown away, so durability would only cost time. `initdb`
and `pg_ctl` refuse to run as root, so as root they run as the `postgres` user (the `pgserver` user,
made if need be, when Debian's package, which makes `postgres`, is not installed), which owns the
folder; pgserver's programs are then copied into the folder, as the wheel sits where only root may
look (under /root).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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


PROGRAMS = ("initdb", "pg_ctl")
CHOICE = "WANBOT_TEST_PG_BINARIES"
_BIN_RECORD = "bin-folder"  # in the server's folder: where the programs that started it are
_OPTIONS_RECORD = "server-options"  # ...and the options it runs with (port, settings)


@dataclass(frozen=True)
class Binaries:
    """Where the server programs are, and whose they are: `debian` (the package's folder),
    `system` (found on the PATH) or `pgserver` (the wheel)."""

    folder: Path
    source: str

    def __getitem__(self, name: str) -> str:
        return str(self.folder / name)


def pgserver_bin() -> Path | None:
    """The `bin` folder of the installed pgserver wheel, without importing it, or None."""
    spec = importlib.util.find_spec("pgserver")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "pginstall" / "bin"
        if all((folder / p).is_file() for p in PROGRAMS):
            return folder
    return None


def choose(
    *,
    bin_dirs: tuple[str, ...] = BIN_DIRS,
    which: Callable[[str], str | None] = shutil.which,
    pgserver: Callable[[], Path | None] = pgserver_bin,
    prefer: str | None = None,
) -> Binaries:
    """Debian's programs when they are installed (or others on the PATH), else pgserver's;
    `prefer` ("debian": the system's, "pgserver") allows only that one. Raises ClusterError
    saying how to get either."""
    if prefer not in (None, "", "debian", "pgserver"):
        raise ClusterError(f"{CHOICE} must be debian or pgserver, not {prefer!r}")
    if prefer in (None, "", "debian"):
        for name in bin_dirs:
            if all((Path(name) / p).is_file() for p in PROGRAMS):
                return Binaries(Path(name), "debian")
        found = [which(p) for p in PROGRAMS]
        if all(found) and len({Path(f).parent for f in found if f}) == 1:
            return Binaries(Path(str(found[0])).parent, "system")
    if prefer in (None, "", "pgserver"):
        folder = pgserver()
        if folder is not None:
            return Binaries(folder, "pgserver")
    raise ClusterError(
        "PostgreSQL's initdb and pg_ctl not found: install Debian's package "
        "(apt-get install postgresql) or, without apt, the pgserver wheel (pip install pgserver)"
    )


def _owner() -> str:
    """The user root runs the server as: `postgres` if it exists, else `pgserver` (made now, as
    the wheel itself does)."""
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgserver"],
        check=True,
        capture_output=True,
    )
    return "pgserver"


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    """Root runs the command as `owner` (initdb and pg_ctl refuse root); others run it as is."""
    if os.geteuid() != 0 or owner is None:
        return argv
    return ["runuser", "-u", owner, "--", *argv]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _folder_owner(folder: Path) -> str | None:
    try:
        return pwd.getpwuid(folder.stat().st_uid).pw_name
    except (KeyError, OSError):
        return None


def _run(argv: list[str], folder: Path) -> None:
    owner = _folder_owner(folder)
    result = subprocess.run(_as_owner(argv, owner), capture_output=True, text=True, cwd=folder)
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
    binaries = choose(prefer=os.environ.get(CHOICE))
    data = folder / "data"
    password = secrets.token_urlsafe(16)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        owner = _owner()
        if binaries.source == "pgserver":
            # The wheel's folder may be out of the server user's reach (under /root): a copy
            # (programs, libraries, share, and the wheel's bundled libraries, found by the
            # programs at ../../../pgserver.libs) in the server's own folder, deleted with it.
            package = binaries.folder.parent.parent
            shutil.copytree(package / "pginstall", folder / "pgserver" / "pginstall", symlinks=True)
            bundled = package.parent / "pgserver.libs"
            if bundled.is_dir():
                shutil.copytree(bundled, folder / "pgserver.libs", symlinks=True)
            binaries = Binaries(folder / "pgserver" / "pginstall" / "bin", "pgserver")
        shutil.chown(folder, owner, owner)
        shutil.chown(pwfile, owner, owner)
    os.chmod(folder, 0o700)
    (folder / _BIN_RECORD).write_text(str(binaries.folder))
    _run(
        [
            binaries["initdb"],
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
    (folder / _OPTIONS_RECORD).write_text(options)
    _serve(folder, binaries["pg_ctl"])
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", folder


def _serve(folder: Path, pg_ctl: str) -> None:
    options = (folder / _OPTIONS_RECORD).read_text()
    _run(
        [
            pg_ctl,
            "-D",
            str(folder / "data"),
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


def _pg_ctl(folder: Path) -> str:
    record = folder / _BIN_RECORD
    if record.exists():
        return str(Path(record.read_text().strip()) / "pg_ctl")
    return choose(prefer=os.environ.get(CHOICE))["pg_ctl"]


def halt(folder: Path, *, mode: str = "fast") -> None:
    """Stop the server, keeping its data: every connection is cut, as in a restart or a failover
    (`fast`: sessions ended by the server; `immediate`: as a crash). `resume` starts it again."""
    _run([_pg_ctl(folder), "-D", str(folder / "data"), "-m", mode, "-w", "stop"], folder)


def resume(folder: Path) -> None:
    """Start a server `halt` stopped, on the same port and settings."""
    _serve(folder, _pg_ctl(folder))


def restart(folder: Path, *, down_for: float = 0.0, mode: str = "fast") -> None:
    """Stop the server and start it again `down_for` seconds later (blocking: run it in a thread
    from a test)."""
    halt(folder, mode=mode)
    if down_for > 0:
        time.sleep(down_for)
    resume(folder)


def stop(folder: Path) -> None:
    """Stop the server (immediate shutdown: its data is thrown away) and delete its folder."""
    data = folder / "data"
    try:
        if (data / "postmaster.pid").exists():
            _run([_pg_ctl(folder), "-D", str(data), "-m", "immediate", "-w", "stop"], folder)
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
    restarter = sub.add_parser("restart", help="stop the server in FOLDER and start it again")
    restarter.add_argument("folder", type=Path)
    restarter.add_argument("--down-for", type=float, default=0.0, help="seconds between")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            dsn, folder = start()
            sys.stdout.write(
                f"export WANBOT_TEST_PG_DSN={shlex.quote(dsn)}\n"
                f"export WANBOT_TEST_PG_DIR={shlex.quote(str(folder))}\n"
            )
        elif args.command == "restart":
            restart(args.folder, down_for=args.down_for)
        else:
            stop(args.folder)
    except ClusterError as err:
        sys.stderr.write(f"pgcluster: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
