"""What the store raises."""

from __future__ import annotations

from datetime import datetime

from bot.i18n import N_, Number, _, _n
from bot.store.models import LimitSource, RefusalReason
from bot.store.quota_text import refusal_text


class StoreError(Exception):
    """The database cannot be used (bad URL, unwritable, locked, newer schema, I/O error).

    `str()` is one line for a human: what is wrong and what to do.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class QuotaRefused(Exception):
    """`reserve` said no. Nothing was held. `str()` is the text to show the user."""

    def __init__(
        self,
        reason: RefusalReason,
        *,
        remaining: int,
        requested: int,
        resets_at: datetime | None,
        limit: int | None = None,
        held: int = 0,
        cap: int | None = None,
        scope: int = 0,
        source: LimitSource | None = None,
        cap_by_owner: bool = False,
    ) -> None:
        self.reason: RefusalReason = reason
        self.remaining = remaining
        self.requested = requested
        self.resets_at = resets_at
        self.limit = limit
        self.held = held
        self.cap = cap
        self.scope = scope
        self.source = source
        self.cap_by_owner = cap_by_owner
        super().__init__(
            refusal_text(
                reason,
                remaining=remaining,
                requested=requested,
                resets_at=resets_at,
                limit=limit,
                held=held,
                cap=cap,
                scope=scope,
                source=source,
                cap_by_owner=cap_by_owner,
            )
        )


# What `CeilingExceeded.what` may be (both engines pass these), marked here for the catalogue.
CEILING_SUBJECTS = (
    N_("a member's daily limit"),
    N_("the server default limit"),
    N_("the server's daily cap"),
    N_("a member's extra images"),
    N_("a role's daily limit"),
)


class CeilingExceeded(ValueError):
    """An admin change that would let someone use more than the owner's WAN_SERVER_DAILY_LIMIT.

    Nothing was changed. `str()` says so, with the ceiling; the argument is a `Text`, so the admin
    is told in their own language.
    """

    def __init__(self, what: str, value: int, ceiling: int) -> None:
        self.what = what
        self.value = value
        self.ceiling = ceiling
        super().__init__(
            _n(
                "The bot's owner allows at most {count} image per server per day "
                "(WAN_SERVER_DAILY_LIMIT), so {what} can't be {value}. Nothing was changed.",
                "The bot's owner allows at most {count} images per server per day "
                "(WAN_SERVER_DAILY_LIMIT), so {what} can't be {value}. Nothing was changed.",
                ceiling,
                count=Number(ceiling),
                what=_(what),
                value=Number(value),
            )
        )


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
