"""A job's temporary folder: the big bytes a job holds while it waits (its input images until the
create is answered, its results until they are posted) live there instead of in memory.

Fifty requests of three 4 MB images, five creates and five deliveries at once kept ~100 MB of
images in the bot's memory (bench/e2e.py); on disk (the page cache) they cost the bot nothing.
The folder is in the system's temp folder (`TMPDIR`) and is removed when the job's step ends. Its
name carries a token drawn at each start, not the process id (in a container the bot is always PID 1,
so a pid would say a killed run's folders are this run's): a process holds an exclusive lock on its
token's lock file while it runs, so a start removes what a killed one left behind (`remove_stale`)
and never a folder another running process still uses, on this machine or in a container beside it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

# This run's token, in the name of every folder it makes.
TOKEN = secrets.token_hex(6)
_held: dict[str, int] = {}  # temp folder -> the descriptor holding this run's lock file there


class JobFolder:
    """`async with JobFolder(job_id, "inputs") as folder:` a fresh folder, removed at the end.

    A call that must run to its end through a shutdown (`InFlight.critical`) may still read the
    folder after the `async with` was left by a cancellation: `keep_for(task)` postpones the
    removal until that task is done.
    """

    def __init__(self, job_id: int, what: str) -> None:
        self.prefix = f"wanbot-{TOKEN}-job{job_id}-{what}-"
        self.path: Path | None = None
        self._users: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> Path:
        self.path = Path(await asyncio.to_thread(_make, self.prefix))
        return self.path

    def keep_for(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._users.append(task)
        return task

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        path = self.path
        if path is None:
            return
        pending = [task for task in self._users if not task.done()]
        if pending:
            last = pending[-1]
            last.add_done_callback(lambda _: _remove_soon(path))
        else:
            await asyncio.to_thread(shutil.rmtree, path, True)


def _remove_soon(path: Path) -> None:
    """Remove `path` in a worker thread, from a done callback (nothing awaits it)."""
    asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, path, True)


def _make(prefix: str) -> str:
    claim_token()
    return tempfile.mkdtemp(prefix=prefix)


def _lock_path(root: Path, token: str) -> Path:
    return root / f"wanbot-{token}.lock"


def claim_token(root: Path | None = None) -> None:
    """Lock this run's token in the temp folder (once): folders named by it are then known to be
    in use for as long as this process lives. Blocking."""
    folder = Path(root or tempfile.gettempdir())
    if str(folder) in _held:
        return
    final = _lock_path(folder, TOKEN)
    draft = final.with_name(f"{final.name}.{os.getpid()}")
    fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    # Released by the kernel when the process ends, however it ends (kill -9 too). Locked before
    # it takes its name: another start never finds it unlocked and takes this run for dead.
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.replace(draft, final)
    _held[str(folder)] = fd


def remove_stale(root: Path | None = None) -> int:
    """Remove the job folders of bot runs that are gone (killed mid-job); how many. Blocking."""
    folder = Path(root or tempfile.gettempdir())
    claim_token(folder)
    removed = 0
    gone: dict[str, bool] = {}
    for path in folder.glob("wanbot-*-job*"):
        token = path.name.split("-")[1]
        if token not in gone:
            gone[token] = token != TOKEN and _gone(folder, token)
        if gone[token]:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    for token, dead in gone.items():
        if dead:
            _lock_path(folder, token).unlink(missing_ok=True)
    if removed:
        log.info("removed %d temporary job folder(s) left by a stopped process", removed)
    return removed


def _gone(folder: Path, token: str) -> bool:
    """Whether the run that drew `token` has ended: its lock file is free (or was never made)."""
    try:
        fd = os.open(_lock_path(folder, token), os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # not ours to look at: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: that run is alive
    finally:
        os.close(fd)  # (closing drops a lock taken just now)
    return True
