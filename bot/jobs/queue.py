"""The queue of jobs waiting for a Wan slot, and their positions.

`JobQueue` is the seam: the runner uses only these methods, so a store-backed queue shared by several
processes can stand in for `MemoryQueue`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Protocol


class JobQueue(Protocol):
    """FIFO of job ids waiting to start."""

    def push(self, job_id: int) -> int:
        """Add a job at the back; return its 1-based position."""
        ...

    def pop(self) -> int | None:
        """Take the job at the front, or None when empty."""
        ...

    def remove(self, job_id: int) -> bool:
        """Take a job out wherever it is; True if it was waiting."""
        ...

    def position(self, job_id: int) -> int | None:
        """1-based place, or None when the job is not waiting."""
        ...

    def __contains__(self, job_id: object) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[int]: ...


class MemoryQueue:
    """`JobQueue` in this process's memory (one bot process on sqlite)."""

    def __init__(self) -> None:
        self._ids: deque[int] = deque()

    def push(self, job_id: int) -> int:
        self._ids.append(job_id)
        return len(self._ids)

    def pop(self) -> int | None:
        return self._ids.popleft() if self._ids else None

    def remove(self, job_id: int) -> bool:
        try:
            self._ids.remove(job_id)
        except ValueError:
            return False
        return True

    def position(self, job_id: int) -> int | None:
        try:
            return self._ids.index(job_id) + 1
        except ValueError:
            return None

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        # A copy: the queue moves while callers await between items.
        return iter(list(self._ids))
