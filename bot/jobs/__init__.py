"""The job runner: from a request to a delivered (or explained) result. `JobRunner` is the facade."""

from bot.jobs.models import (
    EDIT,
    IMAGINE,
    NOTHING_CHARGED,
    TERMINAL_SOURCE,
    Delivery,
    JobRefused,
    JobSpec,
    Posted,
    Progress,
    ResultFile,
    from_text,
    kind_of,
)
from bot.jobs.queue import JobQueue, MemoryQueue
from bot.jobs.runner import JobRunner
from bot.jobs.surface import Surface

__all__ = [
    "EDIT",
    "IMAGINE",
    "NOTHING_CHARGED",
    "TERMINAL_SOURCE",
    "Delivery",
    "JobQueue",
    "JobRefused",
    "JobRunner",
    "JobSpec",
    "MemoryQueue",
    "Posted",
    "Progress",
    "ResultFile",
    "Surface",
    "from_text",
    "kind_of",
]
