"""The quota rules (docs/quotas.md), as pure functions over one snapshot, so both engines apply the
same ones. Held images count as spent; extra images count against every cap (the owner pays for
those too); while the owner has paused the bot nothing new is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.store.errors import CeilingExceeded, QuotaRefused
from bot.store.models import Limits, LimitSource, QuotaStatus, RefusalReason

# What the owner's own jobs (scope BOT_SCOPE: `python -m bot edit`) may use in a day: no member
# limit, so as much as the bot-wide cap lets through.
OWNER_ALLOWANCE = 1_000_000


# Meta keys of the owner's run-time switches (both engines keep them in `meta`).
PAUSED = "paused"
GLOBAL_CAP = "global_daily_limit"
# Both, as columns of a SELECT.
SWITCHES = (
    f"(SELECT value FROM meta WHERE key = '{PAUSED}') AS paused,"
    f" (SELECT value FROM meta WHERE key = '{GLOBAL_CAP}') AS global_cap"
)


def global_cap_in_force(stored: str | None, limits: Limits) -> int | None:
    """The owner's run-time bot-wide cap when set ("0": none), else WAN_GLOBAL_DAILY_LIMIT."""
    if stored is None:
        return limits.global_daily
    return int(stored) or None


def next_reset(day: date) -> datetime:
    """Midnight UTC at the end of `day`: when its allowance resets."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def check_ceiling(what: str, value: int | None, ceiling: int | None) -> None:
    """Raise `CeilingExceeded` when an admin's `value` for `what` is over the owner's ceiling."""
    if ceiling is not None and value is not None and value > ceiling:
        raise CeilingExceeded(what, value, ceiling)


@dataclass(frozen=True)
class Snapshot:
    """Everything the rules need about one user in one scope on one day."""

    user_limit: int | None  # the admin's override for this user
    server_default: int | None
    global_default: int  # WAN_DEFAULT_DAILY_LIMIT; in DMs WAN_DM_DAILY_LIMIT
    blocked: bool
    extra: int  # extra-image balance (holds already taken out)
    used: int  # charged against today's daily allowance
    held: int  # daily allowance held by open reservations
    cap: int | None  # server cap (None = off)
    server_used: int
    server_held: int
    role_limit: int | None = None  # the highest limit among the member's roles
    role_id: int | None = None  # the role it belongs to
    ceiling: int | None = None  # WAN_SERVER_DAILY_LIMIT (servers only)
    bot_cap: int | None = None  # the bot-wide cap in force
    bot_used: int = 0
    bot_held: int = 0
    paused: bool = False
    dm: bool = False  # scope 0: DMs with the bot

    @property
    def limit_and_source(self) -> tuple[int, LimitSource]:
        if self.user_limit is not None:
            return self.user_limit, "user"
        if self.role_limit is not None:
            return self.role_limit, "role"
        if self.server_default is not None:
            return self.server_default, "server"
        return self.global_default, "dm" if self.dm else "global"

    @property
    def is_blocked(self) -> bool:
        # An admin setting someone's own limit to 0 means "not this person": same as blocking.
        return self.blocked or self.user_limit == 0

    @property
    def daily_left(self) -> int:
        return max(0, self.limit_and_source[0] - self.used - self.held)

    @property
    def cap_in_force(self) -> int | None:
        """The lower of the server's cap and the owner's ceiling (none in DMs)."""
        caps = [c for c in (self.cap, None if self.dm else self.ceiling) if c]
        return min(caps) if caps else None

    @property
    def cap_left(self) -> int | None:
        cap = self.cap_in_force
        return None if cap is None else max(0, cap - self.server_used - self.server_held)

    @property
    def bot_left(self) -> int | None:
        cap = self.bot_cap
        return None if cap is None else max(0, cap - self.bot_used - self.bot_held)

    def _bounds(self) -> list[tuple[RefusalReason, int]]:
        """Each bound with what it still allows, the member's own first (they win ties). Asked
        only of a member not `stopped`: never blocked."""
        bounds: list[tuple[RefusalReason, int]] = [("daily_limit", self.daily_left + self.extra)]
        if self.cap_left is not None:
            bounds.append(("server_cap", self.cap_left))
        if self.bot_left is not None:
            bounds.append(("global_cap", self.bot_left))
        return bounds

    @property
    def stopped(self) -> RefusalReason | None:
        """A refusal whatever the size of the request: paused, DMs off, or blocked."""
        if self.paused:
            return "paused"
        if self.dm and self.global_default == 0:  # WAN_DM_DAILY_LIMIT=0: DMs off
            return "dm_off"
        if self.is_blocked:
            return "blocked"
        return None

    @property
    def remaining(self) -> int:
        """What a reservation could take right now."""
        if self.stopped is not None:
            return 0
        return min(left for _, left in self._bounds())

    @property
    def limited_by(self) -> RefusalReason | None:
        """What bounds `remaining`: None when it is the member's own allowance."""
        stopped = self.stopped
        if stopped is not None:
            return None if stopped == "blocked" else stopped
        reason, _ = min(self._bounds(), key=lambda bound: bound[1])
        return None if reason == "daily_limit" else reason

    def refusal(self, images: int) -> RefusalReason | None:
        """Why `images` cannot be reserved, or None when they can."""
        stopped = self.stopped
        if stopped is not None:
            return stopped
        short = [(reason, left) for reason, left in self._bounds() if left < images]
        if not short:
            return None
        # The tightest bound is the one to name; `min` keeps the first of equals.
        return min(short, key=lambda bound: bound[1])[0]

    def split(self, images: int) -> tuple[int, int]:
        """(from the daily allowance, from extra images) for an allowed reservation."""
        from_daily = min(images, self.daily_left)
        return from_daily, images - from_daily


def charge_split(images: int, from_extra: int, generated: int) -> tuple[int, int]:
    """(charged to the daily allowance, charged to extra) when settling. The daily part is charged
    first, so unused images go back to the extra balance, which never expires, not to a past day."""
    charged = min(max(0, generated), images)
    daily = min(charged, images - from_extra)
    return daily, charged - daily


def refused(
    snap: Snapshot, reason: RefusalReason, *, images: int, scope: int, day: date, extra_held: int
) -> QuotaRefused:
    """What `reserve` raises for `reason`: which limit, what is left, when it resets. `extra_held`:
    what open reservations hold of extra images today, counted in."""
    limit, source = snap.limit_and_source
    cap = {"server_cap": snap.cap_in_force, "global_cap": snap.bot_cap}.get(reason)
    return QuotaRefused(
        reason,
        remaining=snap.remaining,
        requested=images,
        resets_at=None if reason in ("blocked", "paused", "dm_off") else next_reset(day),
        limit=limit,
        held=snap.held + extra_held,
        cap=cap,
        scope=scope,
        source=source,
        cap_by_owner=reason == "server_cap" and cap is not None and cap != snap.cap,
    )


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
        limit_role=snap.role_id if source == "role" else None,
        limited_by=snap.limited_by,
        paused=snap.paused,
    )
