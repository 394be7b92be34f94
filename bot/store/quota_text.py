"""The words a user sees when the quota says no."""

from __future__ import annotations

from datetime import datetime

from bot.store.models import LimitSource, RefusalReason


def discord_timestamp(moment: datetime, style: str = "R") -> str:
    """Discord's timestamp markup (`<t:UNIX:R>` renders as "in 5 hours" in the reader's locale)."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def images(n: int) -> str:
    """'1 image', '4 images'."""
    return f"{n} image" if n == 1 else f"{n} images"


# What the member's daily limit is, named by where it comes from.
_SOURCE = {
    "user": "",
    "role": " (your role's limit)",
    "server": "",
    "global": "",
    "dm": " (the limit for DMs with the bot)",
}


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
    source: LimitSource | None = None,
    cap_by_owner: bool = False,
) -> str:
    """One or two sentences: which limit refused the request, what is left, and when that changes."""
    where = "in DMs" if scope == 0 else "in this server"
    if reason == "paused":
        return "The bot's owner has paused new Wan edits for now; try again later."
    if reason == "dm_off":
        return (
            "The bot's owner has turned off image edits in DMs with the bot; use `/wanedit` in a "
            "server instead."
        )
    if reason == "blocked":
        return f"You're blocked from using Wan {where}."
    in_flight = f" ({held} held by jobs in progress)" if held else ""
    if reason in ("server_cap", "global_cap"):
        if reason == "global_cap":
            subject = "The bot's daily limit for everyone"
        else:
            subject = "The daily limit for DMs" if scope == 0 else "The daily limit for this server"
        if cap is not None:
            by = ", set by the bot's owner" if cap_by_owner else ""
            subject += f" ({images(cap)}{by})"
        if remaining == 0:
            head = f"{subject} is used up."
        else:
            head = f"{subject} has {images(remaining)} left and this needs {requested}."
        return head if resets_at is None else f"{head} It resets {discord_timestamp(resets_at)}."
    named = _SOURCE.get(source or "user", "")
    if remaining == 0:
        if limit == 0:
            head = f"You have no daily images {where}{named}{in_flight}."
        else:
            allowance = f"your {images(limit)}" if limit is not None else "your images"
            head = f"You've used {allowance}{named} for today{in_flight}."
    else:
        head = f"You have {images(remaining)} left today{in_flight} and this needs {requested}."
    if resets_at is None:
        return head
    return f"{head} Your allowance resets {discord_timestamp(resets_at)}."
