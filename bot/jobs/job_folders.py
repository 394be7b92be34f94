"""A job's temporary folder: the big bytes a job holds while it waits (its input images until the
create is answered, its results until they are posted) live there instead of in memory.

Fifty requests of three 4 MB images, five creates and five deliveries at once kept ~100 MB of
images in the bot's memory (bench/e2e.py); on disk (the page cache) they cost the bot nothing.
The folder is in the system's temp folder (`TMPDIR`) and is removed when the job's step ends. Its
name carries the process id, so a process starting up removes what a killed one left behind
(`remove_stale`) and never a folder another running process still uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class JobFolder:
    """`async with JobFolder(job_id, "inputs") as folder:` a fresh folder, removed at the end.

    A call that must run to its end through a shutdown (`InFlight.critical`) may still read the
    folder after the `async with` was left by a cancellation: `keep_for(task)` postpones the
    removal until that task is done.
    """

    def __init__(self, job_id: int, what: str) -> None:
        self.prefix = f"wanbot-{os.getpid()}-job{job_id}-{what}-"
        self.path: Path | None = None
        self._users: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> Path:
        self.path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=self.prefix))
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


def remove_stale(root: Path | None = None) -> int:
    """Remove the job folders of bot processes that are gone (killed mid-job); how many. Blocking."""
    removed = 0
    for path in Path(root or tempfile.gettempdir()).glob("wanbot-*-job*"):
        pid = path.name.split("-")[1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    if removed:
        log.info("removed %d temporary job folder(s) left by a stopped process", removed)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (not ours to signal), or we cannot tell: leave it
    return True
