"""What the processes on one database share, as the store hands it out for the settings: the queue
of jobs waiting for a Wan slot and DashScope's rate limits. On PostgreSQL they are the database's,
kept by every process together; on sqlite each is None (the process's own)."""

from __future__ import annotations

from typing import Any

from bot.config import Settings
from bot.store import Store

# Creates per second the account takes, for every process together (DashScope's documented limit).
SUBMIT_RPS = 5.0


def shared_parts(
    store: Store, settings: Settings, *, own_jobs: bool = False, **queue_options: Any
) -> tuple[Any, dict[str, Any]]:
    """The job queue (the runner's `queue`) and the Wan client's gates (`query_gate`,
    `submit_gate`). `own_jobs`: for a process that runs only the jobs it queues itself (`python
    -m bot edit`), within the same Wan slots; `queue_options` override the queue's lease timings."""
    options = {"ttl": settings.lease_seconds, **queue_options}
    queue = store.job_queue(max_slots=settings.max_concurrent_tasks, own_jobs=own_jobs, **options)
    gates = {
        "query_gate": store.shared_rate("query", settings.query_qps),
        "submit_gate": store.shared_rate("create", SUBMIT_RPS),
    }
    return queue, gates
