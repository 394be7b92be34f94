"""The words a user sees when the quota says no."""

from __future__ import annotations

from datetime import datetime

from bot.store.models import RefusalReason


def discord_timestamp(moment: datetime, style: str = "R") -> str:
    """Discord's timestamp markup (`<t:UNIX:R>` renders as "in 5 hours" in the reader's locale)."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def images(n: int) -> str:
    """'1 image', '4 images'."""
    return f"{n} image" if n == 1 else f"{n} images"


def refusal_text(
    reason: RefusalReason,
    *,
    remaining: int,
    requested: int,
    resets_at: datetime | None,
    limit: int | None = None,
    held: int = 0,
    cap: int | None = None,
    scope: int = 0,
) -> str:
    """One or two sentences: why the request was refused, what is left, and when that changes."""
    where = "in DMs" if scope == 0 else "in this server"
    if reason == "blocked":
        return f"You're blocked from using Wan {where}."
    in_flight = f" ({held} held by jobs in progress)" if held else ""
    if reason == "server_cap":
        owner = "DMs" if scope == 0 else "this server"
        capped = f" ({images(cap)})" if cap is not None else ""
        if remaining == 0:
            head = f"The daily limit for {owner}{capped} is used up."
        else:
            head = (
                f"The daily limit for {owner}{capped} has {images(remaining)} left and this "
                f"needs {requested}."
            )
        return head if resets_at is None else f"{head} It resets {discord_timestamp(resets_at)}."
    if remaining == 0:
        if limit == 0:
            head = f"You have no daily images {where}{in_flight}."
        else:
            allowance = f"your {images(limit)}" if limit is not None else "your images"
            head = f"You've used {allowance} for today{in_flight}."
    else:
        head = f"You have {images(remaining)} left today{in_flight} and this needs {requested}."
    if resets_at is None:
        return head
    return f"{head} Your allowance resets {discord_timestamp(resets_at)}."
