"""The words a user sees when the quota says no.

Each sentence is a `Text` (bot.i18n): English as a str, rendered in the member's language by Discord's
side.
"""

from __future__ import annotations

from datetime import datetime

from bot.i18n import N_, Text, _, _n
from bot.store.models import LimitSource, RefusalReason


def discord_timestamp(moment: datetime, style: str = "R") -> str:
    """Discord's timestamp markup (`<t:UNIX:R>` renders as "in 5 hours" in the reader's locale)."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def images(n: int) -> Text:
    """'1 image', '4 images'."""
    return _n("{count} image", "{count} images", n)


# What the member's daily limit is, named by where it comes from.
_SOURCE: dict[str, str] = {
    "role": N_(" (your role's limit)"),
    "dm": N_(" (the limit for DMs with the bot)"),
}


def _named(source: LimitSource | None) -> str:
    marked = _SOURCE.get(source or "user")
    return _(marked) if marked else ""


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
    dms = scope == 0
    if reason == "paused":
        return _("The bot's owner has paused new Wan edits for now; try again later.")
    if reason == "dm_off":
        return _(
            "The bot's owner has turned off image edits in DMs with the bot; use `/wanedit` in a "
            "server instead."
        )
    if reason == "blocked":
        if dms:
            return _("You're blocked from using Wan in DMs.")
        return _("You're blocked from using Wan in this server.")
    in_flight = _(" ({held} held by jobs in progress)", held=held) if held else ""
    if reason in ("server_cap", "global_cap"):
        if reason == "global_cap":
            subject = _("The bot's daily limit for everyone")
        elif dms:
            subject = _("The daily limit for DMs")
        else:
            subject = _("The daily limit for this server")
        if cap is not None and cap_by_owner:
            subject = _(
                "{subject} ({images}, set by the bot's owner)", subject=subject, images=images(cap)
            )
        elif cap is not None:
            subject = _("{subject} ({images})", subject=subject, images=images(cap))
        if remaining == 0:
            head = _("{subject} is used up.", subject=subject)
        else:
            head = _(
                "{subject} has {left} left and this needs {requested}.",
                subject=subject,
                left=images(remaining),
                requested=requested,
            )
        if resets_at is None:
            return head
        return _("{head} It resets {when}.", head=head, when=discord_timestamp(resets_at))
    named = _named(source)
    if remaining == 0:
        if limit == 0 and dms:
            head = _(
                "You have no daily images in DMs{named}{in_flight}.",
                named=named,
                in_flight=in_flight,
            )
        elif limit == 0:
            head = _(
                "You have no daily images in this server{named}{in_flight}.",
                named=named,
                in_flight=in_flight,
            )
        elif limit is not None:
            head = _(
                "You've used your {allowance}{named} for today{in_flight}.",
                allowance=images(limit),
                named=named,
                in_flight=in_flight,
            )
        else:
            head = _(
                "You've used your images{named} for today{in_flight}.",
                named=named,
                in_flight=in_flight,
            )
    else:
        head = _(
            "You have {left} left today{in_flight} and this needs {requested}.",
            left=images(remaining),
            in_flight=in_flight,
            requested=requested,
        )
    if resets_at is None:
        return head
    return _("{head} Your allowance resets {when}.", head=head, when=discord_timestamp(resets_at))
