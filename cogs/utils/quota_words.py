"""The words a member or an admin reads when the quota says no: the store gives facts and codes
(`QuotaRefused`, `CeilingExceeded`), these sentences word them, with Discord's timestamps.

Each sentence is a `Text` (bot.i18n): English as a str, rendered in the reader's language.
"""

from __future__ import annotations

from datetime import datetime

from bot.i18n import N_, Number, Text, _, _n, text_of
from bot.jobs import JobRefused
from bot.jobs.models import uncharged
from bot.store import CeilingExceeded, QuotaRefused
from bot.store.admin import EXTRA, ROLE_LIMIT, SERVER_CAP, SERVER_DEFAULT, USER_LIMIT
from bot.store.models import LimitSource


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


def refused_text(err: JobRefused) -> str:
    """What a member is told of a refused request, nothing having been charged."""
    return uncharged(refusal_text(err.quota)) if err.quota is not None else text_of(err)


def refusal_text(refusal: QuotaRefused) -> str:
    """One or two sentences: which limit refused the request, what is left, and when that changes."""
    reason, remaining, requested = refusal.reason, refusal.remaining, refusal.requested
    resets_at, limit, held, cap = refusal.resets_at, refusal.limit, refusal.held, refusal.cap
    source, cap_by_owner = refusal.source, refusal.cap_by_owner
    dms = refusal.scope == 0
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


# What `CeilingExceeded.what` names, by the store's code.
_SUBJECTS = {
    USER_LIMIT: N_("a member's daily limit"),
    SERVER_DEFAULT: N_("the server default limit"),
    SERVER_CAP: N_("the server's daily cap"),
    EXTRA: N_("a member's extra images"),
    ROLE_LIMIT: N_("a role's daily limit"),
}


def ceiling_text(err: CeilingExceeded) -> str:
    """An admin change over the owner's ceiling: what the ceiling is, and that nothing changed."""
    return _n(
        "The bot's owner allows at most {count} image per server per day "
        "(WAN_SERVER_DAILY_LIMIT), so {what} can't be {value}. Nothing was changed.",
        "The bot's owner allows at most {count} images per server per day "
        "(WAN_SERVER_DAILY_LIMIT), so {what} can't be {value}. Nothing was changed.",
        err.ceiling,
        count=Number(err.ceiling),
        what=_(_SUBJECTS[err.what]),
        value=Number(err.value),
    )
