"""Usage charts as PNG images: images per UTC day stacked by outcome (delivered, billed but not
delivered, refused by each limit), the daily cap as a line, today's bar marked. Drawn with Pillow
in a thread (matplotlib was measured against it: bench/charts.py, docs/charts.md)."""

from __future__ import annotations

import asyncio

from bot.charts.draw import Drawing, Plot, axis, draw, render
from bot.charts.gather import owner_chart, server_chart
from bot.charts.model import OUTCOMES, Bar, Outcome, Panel, UsageChart, bars_of

__all__ = [
    "OUTCOMES",
    "Bar",
    "Drawing",
    "Outcome",
    "Panel",
    "Plot",
    "UsageChart",
    "axis",
    "bars_of",
    "draw",
    "owner_chart",
    "render",
    "render_png",
    "server_chart",
]


async def render_png(chart: UsageChart, language: str) -> bytes:
    """`render` off the event loop: drawing and PNG encoding take milliseconds of CPU."""
    return await asyncio.to_thread(render, chart, language)
