"""The queue of jobs waiting for a Wan slot, and their positions.

`JobQueue` is the seam the dispatcher uses. Where several processes share the database the store
has one (`Store.job_queue`: on PostgreSQL the jobs table, `bot.store.queue.PostgresQueue`: claims
with leases, slots counted in the database, takeovers of a dead process's jobs); else the runner
keeps `MemoryQueue`, this process's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from bot.store import Lease

Claim = tuple[int, Lease | None]


class JobQueue(Protocol):
    """FIFO of job ids waiting to start."""

    # True when several processes share the queue: the Wan slots are counted by `pop` (in the
    # database), not by this process's running jobs, and writes after a claim carry its lease.
    shared: bool
    # Seconds between looks at a shared queue when no notification came (None: wait to be woken).
    poll_interval: float | None

    async def start(self, wake: Callable[[], None], lost: Callable[[int], None]) -> None:
        """Begin: `wake` when another process queued a job or freed a slot; `lost(job_id)` when
        this process's lease on a job was taken by another."""
        ...

    async def close(self) -> None:
        """Stop; hand this process's unfinished jobs over to the others at once."""
        ...

    async def push(self, job_id: int) -> int | None:
        """Add a stored QUEUED job at the back; return its 1-based position (None: it waits for a
        free slot outside any order: `PostgresQueue` with `own_jobs`)."""
        ...

    async def pop(self) -> Claim | None:
        """Claim the job at the front (with a free Wan slot, when shared), or None."""
        ...

    async def take_over(self) -> list[Claim]:
        """Claim the started jobs whose process died (their leases ran out)."""
        ...

    async def remove(self, job_id: int) -> bool:
        """Take a waiting job out (a cancel); True if it was waiting and is now ours to finish."""
        ...

    async def position(self, job_id: int) -> int | None:
        """1-based place, or None when the job is not waiting."""
        ...

    async def positions(self) -> list[tuple[int, int]]:
        """(job id, place) of the waiting jobs this process shows, front first."""
        ...

    def lease(self, job_id: int) -> Lease | None:
        """The lease this process holds on a job (None on an unshared queue)."""
        ...

    def release(self, job_id: int) -> None:
        """Forget the lease of a job that finished here."""
        ...

    def __len__(self) -> int:
        """Waiting jobs, as far as this process knows (for the metrics gauge)."""
        ...

    def __contains__(self, job_id: object) -> bool:
        """Whether the job waits in this process's view of the queue (`JobRunner.resume`)."""
        ...


class MemoryQueue:
    """`JobQueue` in this process's memory (one bot process on sqlite)."""

    shared = False
    poll_interval = None

    def __init__(self) -> None:
        self._ids: deque[int] = deque()

    async def start(self, wake: Callable[[], None], lost: Callable[[int], None]) -> None:
        return None

    async def close(self) -> None:
        return None

    async def push(self, job_id: int) -> int:
        self._ids.append(job_id)
        return len(self._ids)

    async def pop(self) -> Claim | None:
        return (self._ids.popleft(), None) if self._ids else None

    async def take_over(self) -> list[Claim]:
        return []  # one process: `JobRunner.resume` picks up everything at start

    async def remove(self, job_id: int) -> bool:
        try:
            self._ids.remove(job_id)
        except ValueError:
            return False
        return True

    async def position(self, job_id: int) -> int | None:
        try:
            return self._ids.index(job_id) + 1
        except ValueError:
            return None

    async def positions(self) -> list[tuple[int, int]]:
        # A copy: the queue moves while callers await between items.
        return [(job_id, index) for index, job_id in enumerate(self._ids, start=1)]

    def lease(self, job_id: int) -> Lease | None:
        return None

    def release(self, job_id: int) -> None:
        return None

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
