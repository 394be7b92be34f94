"""What the store raises. Facts and codes only: the Discord side words them for members."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.store.models import LimitSource, RefusalReason


class StoreError(Exception):
    """The database cannot be used (bad URL, unwritable, locked, newer schema, I/O error); `str()`
    is one line for the person running the bot: what is wrong and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class OutageWatch(Protocol):
    """Told by the store's own background work (the shared queue's lease renewals and LISTEN, the
    shared budget) when the database fails it and when it answers again, so an outage is logged
    once by whoever watches (the job runner's `Outage`), not at every retry."""

    def failed(self, err: BaseException) -> None: ...

    def ok(self) -> None: ...


@dataclass(eq=False)
class QuotaRefused(Exception):
    """`reserve` said no, and nothing was held: which bound (`reason`), what is left, when it resets
    (None for a refusal that doesn't end at midnight), the member's limit and its `source`, what is
    held, and the cap named (`cap_by_owner`: the owner's ceiling, lower than the server's cap)."""

    reason: RefusalReason
    remaining: int
    requested: int
    resets_at: datetime | None
    limit: int | None = None
    held: int = 0
    cap: int | None = None
    scope: int = 0
    source: LimitSource | None = None
    cap_by_owner: bool = False

    def __str__(self) -> str:
        return f"quota refused ({self.reason}): {self.remaining} left, {self.requested} requested"


class CeilingExceeded(ValueError):
    """An admin change that would let someone use more than the owner's WAN_SERVER_DAILY_LIMIT.
    Nothing was changed. `what` is the setting (`bot.store.admin.USER_LIMIT`, ...)."""

    def __init__(self, what: str, value: int, ceiling: int) -> None:
        self.what = what
        self.value = value
        self.ceiling = ceiling
        super().__init__(f"{what} {value} is over the owner's ceiling of {ceiling}")


class NotFound(LookupError):
    """No job or reservation with that id."""


class LeaseLost(Exception):
    """A fenced job write found the job leased to another process (or claimed again): this process
    lost it (it stalled past its lease) and must drop the job silently; its new owner carries on."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} is no longer leased to this process")


class ActiveJobLimit(Exception):
    """`create_job(max_active=N)` found the member already has N unfinished jobs. Nothing written."""

    def __init__(self, active: int) -> None:
        self.active = active
        super().__init__(f"{active} unfinished job(s)")
