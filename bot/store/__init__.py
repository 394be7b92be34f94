"""The bot's memory: quotas, reservations, admin changes with their audit, and jobs.

Callers use `open_store(DATABASE_URL)` and the `Store` interface only, never a backend directly.
`sqlite:///PATH` opens sqlite (`sqlite*.py`), `postgresql://...` PostgreSQL (`postgres*.py`);
`transfer.migrate_db` copies the first into the second.
"""

from bot.store.base import Store
from bot.store.errors import (
    ActiveJobLimit,
    CeilingExceeded,
    LeaseLost,
    NotFound,
    QuotaRefused,
    StoreError,
)
from bot.store.factory import open_store
from bot.store.models import (
    FINISHED,
    UNFINISHED,
    AuditEntry,
    BotState,
    DayUsage,
    Job,
    JobState,
    Lease,
    Limits,
    QuotaStatus,
    Reservation,
    ServerTotals,
    UsageReport,
)
from bot.store.quota_text import discord_timestamp

__all__ = [
    "FINISHED",
    "UNFINISHED",
    "ActiveJobLimit",
    "AuditEntry",
    "BotState",
    "CeilingExceeded",
    "DayUsage",
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
    "discord_timestamp",
    "open_store",
]
