"""The charts' numbers, read from the store: a server's own chart, and the owner's chart of the
whole bot with its busiest servers."""

from __future__ import annotations

from bot.charts.fonts import printable
from bot.charts.model import Panel, UsageChart, bars_of
from bot.i18n import Text, _, _n
from bot.reports import place
from bot.store import Store

# The owner's chart: the whole bot, then this many of the servers charged the most in the period.
SERVER_PANELS = 4


def chart_title(days: int) -> Text:
    return _n(
        "Images per day, last {count} day (UTC)", "Images per day, last {count} days (UTC)", days
    )


async def server_chart(store: Store, scope: int, name: str | None, *, days: int = 7) -> UsageChart:
    """One server's days, with the cap in force for it (its own cap or the owner's ceiling)."""
    report = await store.usage_report(scope, days=days, top=1)
    totals = await store.server_totals(scope)
    panel = Panel(
        _title(scope, {scope: name} if name else None), bars_of(report), totals.cap_in_force
    )
    return UsageChart(chart_title(days), (panel,), report.today.day)


async def owner_chart(
    store: Store,
    names: dict[int, str] | None = None,
    *,
    days: int = 7,
    servers: int = SERVER_PANELS,
) -> UsageChart:
    """The whole bot against the bot-wide cap, then a panel for each of the busiest servers."""
    report = await store.usage_report(None, days=days, top=1)
    panels = [Panel(_("The whole bot"), bars_of(report), report.global_cap)]
    for scope, _images in await store.busiest_scopes(days=days, top=servers):
        scope_report = await store.usage_report(scope, days=days, top=1)
        cap = (await store.server_totals(scope)).cap_in_force if scope else None
        panels.append(Panel(_title(scope, names), bars_of(scope_report), cap))
    return UsageChart(chart_title(days), tuple(panels), report.today.day)


def _title(scope: int, names: dict[int, str] | None) -> Text | str:
    # A server's name may be all emoji, which the font cannot draw: then its id stands instead.
    name = printable((names or {}).get(scope) or "")
    return place(scope, {scope: name} if name else None)
