"""The quota rules, as pure functions over one snapshot, so every backend applies the same ones.

A user's daily allowance is their own limit if an admin set one, else the server default, else the
global default (`WAN_DEFAULT_DAILY_LIMIT`). Extra images granted by admins are spent only after the
daily allowance is gone and never expire. An optional server cap bounds what the whole scope spends
in a day (extra images included: the owner pays for those too). Held images count as spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.store.errors import QuotaRefused
from bot.store.models import LimitSource, QuotaStatus, RefusalReason


def next_reset(day: date) -> datetime:
    """Midnight UTC at the end of `day`: when its allowance resets."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


@dataclass(frozen=True)
class Snapshot:
    """Everything the rules need about one user in one scope on one day."""

    user_limit: int | None  # the admin's override for this user
    server_default: int | None
    global_default: int
    blocked: bool
    extra: int  # extra-image balance (holds already taken out)
    used: int  # charged against today's daily allowance
    held: int  # daily allowance held by open reservations
    cap: int | None  # server cap (None = off)
    server_used: int
    server_held: int

    @property
    def limit(self) -> int:
        return self.limit_and_source[0]

    @property
    def limit_and_source(self) -> tuple[int, LimitSource]:
        if self.user_limit is not None:
            return self.user_limit, "user"
        if self.server_default is not None:
            return self.server_default, "server"
        return self.global_default, "global"

    @property
    def is_blocked(self) -> bool:
        # An admin setting someone's own limit to 0 means "not this person": same as blocking.
        return self.blocked or self.user_limit == 0

    @property
    def daily_left(self) -> int:
        return max(0, self.limit - self.used - self.held)

    @property
    def user_left(self) -> int:
        return 0 if self.is_blocked else self.daily_left + self.extra

    @property
    def cap_left(self) -> int | None:
        if self.cap is None:
            return None
        return max(0, self.cap - self.server_used - self.server_held)

    @property
    def remaining(self) -> int:
        """What a reservation could take right now."""
        cap_left = self.cap_left
        return self.user_left if cap_left is None else min(self.user_left, cap_left)

    def refusal(self, images: int) -> RefusalReason | None:
        """Why `images` cannot be reserved, or None when they can."""
        if self.is_blocked:
            return "blocked"
        cap_left = self.cap_left
        if images > self.user_left and (cap_left is None or self.user_left <= cap_left):
            return "daily_limit"
        if cap_left is not None and images > cap_left:
            return "server_cap"
        return None

    def split(self, images: int) -> tuple[int, int]:
        """(from the daily allowance, from extra images) for an allowed reservation."""
        from_daily = min(images, self.daily_left)
        return from_daily, images - from_daily


def charge_split(images: int, from_extra: int, generated: int) -> tuple[int, int]:
    """(charged to the daily allowance, charged to extra) when settling.

    A reservation's daily part is charged first, so unused images go back to the extra balance,
    which never expires, rather than to a day that may already be over.
    """
    charged = min(max(0, generated), images)
    daily = min(charged, images - from_extra)
    return daily, charged - daily


def grant_or_refuse(
    snap: Snapshot, images: int, *, scope: int, day: date, extra_held: int
) -> tuple[int, int]:
    """(from the daily allowance, from extra images) for `images`, or raise `QuotaRefused`.

    `extra_held` is what open reservations hold of extra images today: the refusal counts it in.
    """
    reason = snap.refusal(images)
    if reason is not None:
        raise QuotaRefused(
            reason,
            remaining=snap.remaining,
            requested=images,
            resets_at=None if reason == "blocked" else next_reset(day),
            limit=snap.limit,
            held=snap.held + extra_held,
            cap=snap.cap,
            scope=scope,
        )
    return snap.split(images)


def status(snap: Snapshot, *, day: date, extra_used: int, extra_held: int) -> QuotaStatus:
    """What `quota_status` reports for the snapshot of `day`."""
    limit, source = snap.limit_and_source
    return QuotaStatus(
        limit=limit,
        limit_source=source,
        used=snap.used + extra_used,
        held=snap.held + extra_held,
        extra=snap.extra,
        remaining=snap.remaining,
        blocked=snap.is_blocked,
        resets_at=next_reset(day),
        used_extra=extra_used,
        day=day,
    )
