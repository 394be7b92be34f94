"""The bot's memory: quotas, reservations, admin changes with their audit, jobs, and what several
bot processes share (the job queue, DashScope's limits).

Callers use `open_store(DATABASE_URL)` and the `Store` it returns, never an engine directly:
`sqlite:///PATH` or `postgresql://...`; `transfer.migrate_db` copies the first into the second.
"""

from bot.store.errors import (
    ActiveJobLimit,
    CeilingExceeded,
    LeaseLost,
    NotFound,
    QuotaRefused,
    StoreError,
)
from bot.store.models import (
    AuditEntry,
    BotState,
    Job,
    JobState,
    Lease,
    Limits,
    QuotaStatus,
    Reservation,
    ServerTotals,
    UsageReport,
)
from bot.store.store import Store, open_store

__all__ = [
    "ActiveJobLimit",
    "AuditEntry",
    "BotState",
    "CeilingExceeded",
    "Job",
    "JobState",
    "Lease",
    "LeaseLost",
    "Limits",
    "NotFound",
    "QuotaRefused",
    "QuotaStatus",
    "Reservation",
    "ServerTotals",
    "Store",
    "StoreError",
    "UsageReport",
    "open_store",
]
