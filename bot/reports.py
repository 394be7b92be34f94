"""Usage and cost in words: shared by `/wanowner usage`, `/wanquota usage` and `python -m bot usage`.

Cost is always images Wan billed (`usage.image_count`, kept per job as `Job.billed`) times the price
per image of the job's model (an edit's, or an image made from text, which may be priced apart with
WAN_PRICE_PER_IMAGE_T2I), never images requested or reserved. Each helper returns a `Text` (bot.i18n): English where
it is used as a str (the CLI, logs), the reader's language where a cog renders it.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Settings
from bot.i18n import N_, Number, Text, When, _, _n
from bot.store import UsageReport

# How each refusal reason is named in a report.
REASON_NAMES: dict[str, str] = {
    "daily_limit": N_("member limits"),
    "server_cap": N_("server caps"),
    "global_cap": N_("the bot-wide cap"),
    "dm_off": N_("DMs off"),
    "paused": N_("the pause"),
    "blocked": N_("blocked members"),
}


def number(value: float) -> Text:
    """A bare number as the reader's language writes it (`1,200`); not a message to translate."""
    return Text("{n}", {"n": Number(value)})


def images(n: int) -> Text:
    """`1 image`, `1,200 images`."""
    return _n("{count} image", "{count} images", n, count=Number(n))


def undelivered_line(report: UsageReport) -> Text | None:
    """Today's images Wan billed that reached no one (they count against the caps, no member
    paid for them), on a line of their own; None when there are none."""
    if not report.today.undelivered:
        return None
    return _(
        "Billed by Wan but delivered to no one today: {images}",
        images=images(report.today.undelivered),
    )


def money(amount: float, currency: str) -> Text:
    """`22.02 CNY`, `0.00 CNY`; amounts under 1 keep their digits (`0.220177 CNY`)."""
    if amount == 0 or amount >= 1:
        decimals = 2
    else:
        fraction = f"{amount:.6f}".rstrip("0").split(".")[1]
        decimals = max(2, len(fraction))
    return _("{amount} {currency}", amount=Number(amount, decimals), currency=currency)


def amount(images: int, settings: Settings, kinds: Mapping[str, int] | None = None) -> float | None:
    """What `images` billed images cost, `kinds` of them (kind -> images) priced by their kind and
    the rest as edits; None when a price needed is unknown."""
    others = dict(kinds or {})
    edits = images - sum(others.values())
    total = 0.0
    for kind, count in [("edit", edits), *others.items()]:
        if count <= 0:
            continue
        price = settings.price_for(kind)
        if price is None:
            return None
        total += count * price
    return total


def cost(images: int, settings: Settings, kinds: Mapping[str, int] | None = None) -> Text:
    """What `images` billed images cost (`kinds`: see `amount`), or a note that the price is unknown."""
    spent = amount(images, settings, kinds)
    if spent is None:
        return _("price unknown (set WAN_PRICE_PER_IMAGE)")
    return money(spent, settings.price_currency)


def kinds_of(report: UsageReport) -> dict[str, int]:
    """The images of every day of `report` billed for jobs other than edits, by kind."""
    total: dict[str, int] = {}
    for day in report.days:
        for kind, count in day.billed_by_kind.items():
            total[kind] = total.get(kind, 0) + count
    return total


def day_lines(report: UsageReport, settings: Settings) -> list[Text]:
    """One line per day of a usage report: the day, the images billed and what they cost."""
    return [
        _(
            "{day}: {billed} ({cost})",
            day=When(d.day),
            billed=Number(d.billed),
            cost=cost(d.billed, settings, d.billed_by_kind),
        )
        for d in report.days
    ]


def price_text(settings: Settings) -> Text:
    price = settings.price
    if price is None:
        return _("unknown (set WAN_PRICE_PER_IMAGE)")
    money_text = money(price, settings.price_currency)
    if settings.price_per_image is not None:
        text = _("{price} per image (WAN_PRICE_PER_IMAGE)", price=money_text)
    else:
        text = _("{price} per image (list price)", price=money_text)
    if settings.prices_differ:
        assert settings.price_per_image_t2i is not None
        text = _(
            "{price}; {t2i} per image made from text (WAN_PRICE_PER_IMAGE_T2I)",
            price=text,
            t2i=money(settings.price_per_image_t2i, settings.price_currency),
        )
    return text


def worst_case_text(global_cap: int | None, settings: Settings) -> Text:
    """The most one UTC day can cost, in words (every image at the highest price)."""
    if global_cap is None:
        return _("unbounded: there is no bot-wide daily cap (WAN_GLOBAL_DAILY_LIMIT=0)")
    prices = [settings.price_for(kind) for kind in ("edit", "imagine")]
    price = None if None in prices else max(p for p in prices if p is not None)
    if price is None:
        return _("{images} (price unknown: set WAN_PRICE_PER_IMAGE)", images=images(global_cap))
    return _(
        "{worst} ({images} × {price})",
        worst=money(global_cap * price, settings.price_currency),
        images=images(global_cap),
        price=money(price, settings.price_currency),
    )


def refused_text(refused: dict[str, int]) -> Text:
    """`3 by member limits, 1 by the pause`, or `none`."""
    parts = [
        _("{count} by {reason}", count=Number(count), reason=_(REASON_NAMES.get(reason, reason)))
        for reason, count in sorted(refused.items(), key=lambda item: -item[1])
        if count
    ]
    return join(parts) if parts else _("none")


def join(parts: list[Text]) -> Text:
    """Items in a list, with the language's separator (`, ` / `，`)."""
    joined = parts[0]
    for part in parts[1:]:
        joined = _("{list}, {item}", list=joined, item=part)
    return joined


def cap_text(cap: int | None) -> Text:
    if cap is None:
        return _("no cap")
    return _n("{count} image/day", "{count} images/day", cap, count=Number(cap))


def place(scope: int, names: dict[int, str] | None = None) -> Text | str:
    """Where usage happened, for a reader: `DMs`, the server's name, or `server 123`."""
    if scope == 0:
        return _("DMs")
    return (names or {}).get(scope) or _("server {id}", id=scope)


def scope_name(scope: int, names: dict[int, str] | None = None) -> str:
    if scope == 0:
        return "DMs"
    name = (names or {}).get(scope)
    return f"{name} ({scope})" if name else f"server {scope}"


def report_lines(
    report: UsageReport, settings: Settings, names: dict[int, str] | None = None
) -> list[str]:
    """The bot-wide report as plain lines (the CLI prints them)."""
    today = report.today
    from_text = today.billed_by_kind.get("imagine", 0)
    lines = [
        f"Today (UTC {today.day.isoformat()}): {today.billed} image(s) billed by Wan"
        + (f" ({from_text} made from text)" if from_text else "")
        + f", cost {cost(today.billed, settings, today.billed_by_kind)}",
        *([str(line)] if (line := undelivered_line(report)) else []),
        f"Bot-wide cap: {cap_text(report.global_cap)}; counted today {report.global_used} "
        f"(+{report.global_held} held by jobs in progress)",
        f"Paused: {'yes, new jobs are refused' if report.paused else 'no'}",
        f"Refused today (images): {refused_text(today.refused)}",
        f"Price: {price_text(settings)}; worst case per day: "
        f"{worst_case_text(report.global_cap, settings)}",
        "",
        "Servers today:",
    ]
    if not report.servers:
        lines.append("  none")
    for scope, charged, billed in report.servers:
        refused = report.refused_by_scope.get(scope)
        spent = cost(billed, settings, report.billed_by_kind_today.get(scope))
        lines.append(
            f"  {scope_name(scope, names)}: {billed} billed ({spent}), "
            f"{charged} charged to quotas"
            + (f"; refused {refused_text(refused)}" if refused else "")
        )
    listed = {scope for scope, _, _ in report.servers}
    for scope, refused in sorted(report.refused_by_scope.items()):
        if scope not in listed:
            lines.append(f"  {scope_name(scope, names)}: refused {refused_text(refused)}")
    lines += ["", "Top members today:"]
    if not report.top_members:
        lines.append("  none")
    for scope, user, images in report.top_members:
        lines.append(f"  user {user} in {scope_name(scope, names)}: {images}")
    lines += ["", "Last days (billed / cost / refused):"]
    for day in report.days:
        lines.append(
            f"  {day.day.isoformat()}: {day.billed} / "
            f"{cost(day.billed, settings, day.billed_by_kind)} / "
            f"{refused_text(day.refused)}"
        )
    return lines
