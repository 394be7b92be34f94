"""The words a user sees when the quota says no."""

from __future__ import annotations

from datetime import datetime

from bot.i18n import Text, _, _n
from bot.store.models import RefusalReason


def discord_timestamp(moment: datetime, style: str = "R") -> str:
    """Discord's timestamp markup (`<t:UNIX:R>` renders as "in 5 hours" in the reader's locale)."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def images(n: int) -> Text:
    """'1 image', '4 images'."""
    return _n("{count} image", "{count} images", n)


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
    """One or two sentences: why the request was refused, what is left, and when that changes.

    A `Text` (bot.i18n): English as a str, rendered in the member's language by Discord's side.
    """
    dms = scope == 0
    if reason == "blocked":
        if dms:
            return _("You're blocked from using Wan in DMs.")
        return _("You're blocked from using Wan in this server.")
    in_flight = _(" ({held} held by jobs in progress)", held=held) if held else ""
    if reason == "server_cap":
        owner = _("DMs") if dms else _("this server")
        capped = _(" ({images})", images=images(cap)) if cap is not None else ""
        if remaining == 0:
            head = _("The daily limit for {owner}{capped} is used up.", owner=owner, capped=capped)
        else:
            head = _(
                "The daily limit for {owner}{capped} has {left} left and this needs {requested}.",
                owner=owner,
                capped=capped,
                left=images(remaining),
                requested=requested,
            )
        if resets_at is None:
            return head
        return _("{head} It resets {when}.", head=head, when=discord_timestamp(resets_at))
    if remaining == 0:
        if limit == 0 and dms:
            head = _("You have no daily images in DMs{in_flight}.", in_flight=in_flight)
        elif limit == 0:
            head = _("You have no daily images in this server{in_flight}.", in_flight=in_flight)
        elif limit is not None:
            head = _(
                "You've used your {allowance} for today{in_flight}.",
                allowance=images(limit),
                in_flight=in_flight,
            )
        else:
            head = _("You've used your images for today{in_flight}.", in_flight=in_flight)
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
