"""One bot process per sqlite file: an exclusive `flock` on `PATH.lock`, next to the database.

Two bot processes on one file would each resume every unfinished job (two Wan tasks, two bills) and
each run its own DashScope limits. sqlite's own locks can't prevent that (they last one transaction),
so the bot takes this lock for its whole life. The kernel drops it when the process exits or dies
(even on kill -9), so a crash never leaves a stale lock behind. The file holds the owner's pid, only
to name it in the refusal. CLI commands such as `python -m bot check` don't take it.
"""

from __future__ import annotations

import fcntl
import os

from bot.store.errors import StoreError


class ProcessLock:
    """The held lock; `release` gives it back (closing the file does too)."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock


def lock_path(database: str) -> str:
    return f"{database}.lock"


def acquire(database: str) -> ProcessLock:
    """Take the lock for `database` without waiting. Raises `StoreError` if another process has it."""
    path = lock_path(database)
    try:
        # Python opens descriptors non-inheritable: a child process (the sandbox, a tool) never
        # keeps the lock alive after us.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise StoreError(
            f"Cannot create the lock file {path} ({err.strerror}). Check DATABASE_URL and the "
            "permissions of the database's folder."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read_owner(fd)
        os.close(fd)
        raise StoreError(
            f"Another wanbot process{owner} is using the database {database} (it holds {path}). "
            "Stop it first: a sqlite database is for one bot process; to run several, use "
            "PostgreSQL (DATABASE_URL=postgresql://...)."
        ) from None
    except OSError as err:
        os.close(fd)
        raise StoreError(f"Cannot lock {path} ({err.strerror}).") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return ProcessLock(fd, path)


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
