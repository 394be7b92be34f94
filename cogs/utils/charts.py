"""The usage chart as a Discord attachment, for `/wanquota usage` and `/wanowner usage`."""

from __future__ import annotations

import io
import logging

import discord
from discord import app_commands

from bot.charts import UsageChart, render_png

log = logging.getLogger(__name__)

FILENAME = "usage.png"

# The `days` option of both usage commands: the last week (the default) or the last month.
DAY_CHOICES = [
    app_commands.Choice(name="Last 7 days", value=7),
    app_commands.Choice(name="Last 30 days", value=30),
]


def days_of(choice: app_commands.Choice[int] | None) -> int:
    return choice.value if choice is not None else 7


async def chart_files(chart: UsageChart, language: str) -> list[discord.File]:
    """The chart as the one attachment of the answer, drawn in a thread; none when it cannot be
    drawn (the embed beside it still says everything in words)."""
    try:
        png = await render_png(chart, language)
    except Exception:
        log.exception("the usage chart could not be drawn")
        return []
    return [discord.File(io.BytesIO(png), filename=FILENAME)]
