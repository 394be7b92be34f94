"""Usage and cost in words: shared by `/wanowner usage`, `/wanquota usage` and `python -m bot usage`.

Cost is always images Wan billed (`usage.image_count`, kept per job as `Job.billed`) times the price
per image, never images requested or reserved.
"""

from __future__ import annotations

from bot.config import Settings
from bot.store import UsageReport
from bot.store.quota import worst_case_daily

# How each refusal reason is named in a report.
REASON_NAMES: dict[str, str] = {
    "daily_limit": "member limits",
    "server_cap": "server caps",
    "global_cap": "the bot-wide cap",
    "dm_off": "DMs off",
    "paused": "the pause",
    "blocked": "blocked members",
}


def money(amount: float, currency: str) -> str:
    """`22.02 CNY`, `0.00 CNY`; amounts under 1 keep their digits (`0.220177 CNY`)."""
    if amount == 0 or amount >= 1:
        return f"{amount:.2f} {currency}"
    whole, fraction = f"{amount:.6f}".rstrip("0").split(".")
    return f"{whole}.{fraction.ljust(2, '0')} {currency}"


def cost(images: int, settings: Settings) -> str:
    """What `images` billed images cost, or a note that the price is unknown."""
    price = settings.price
    if price is None:
        return "price unknown (set WAN_PRICE_PER_IMAGE)"
    return money(images * price, settings.price_currency)


def price_text(settings: Settings) -> str:
    price = settings.price
    if price is None:
        return "unknown (set WAN_PRICE_PER_IMAGE)"
    source = "WAN_PRICE_PER_IMAGE" if settings.price_per_image is not None else "list price"
    return f"{money(price, settings.price_currency)} per image ({source})"


def worst_case_text(global_cap: int | None, settings: Settings) -> str:
    """The most one UTC day can cost, in words."""
    if global_cap is None:
        return "unbounded: there is no bot-wide daily cap (WAN_GLOBAL_DAILY_LIMIT=0)"
    price = settings.price
    if price is None:
        return f"{global_cap} images (price unknown: set WAN_PRICE_PER_IMAGE)"
    worst = worst_case_daily(global_cap, price)
    assert worst is not None
    return f"{money(worst, settings.price_currency)} ({global_cap} images × {money(price, settings.price_currency)})"


def refused_text(refused: dict[str, int]) -> str:
    """`3 by member limits, 1 by the pause`, or `none`."""
    parts = [
        f"{images} by {REASON_NAMES.get(reason, reason)}"
        for reason, images in sorted(refused.items(), key=lambda item: -item[1])
        if images
    ]
    return ", ".join(parts) or "none"


def cap_text(cap: int | None) -> str:
    return "no cap" if cap is None else f"{cap} images/day"


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
    lines = [
        f"Today (UTC {today.day.isoformat()}): {today.billed} image(s) billed by Wan, "
        f"cost {cost(today.billed, settings)}",
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
        lines.append(
            f"  {scope_name(scope, names)}: {billed} billed ({cost(billed, settings)}), "
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
            f"  {day.day.isoformat()}: {day.billed} / {cost(day.billed, settings)} / "
            f"{refused_text(day.refused)}"
        )
    return lines
