"""The usage chart drawn with matplotlib (Agg) instead of Pillow: the comparison in bench/charts.py,
not used by the bot. The same panels, stacked series, cap line, today's band and labels."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager
from matplotlib.figure import Figure

from bot.charts.fonts import FACE, font_path
from bot.charts.model import UsageChart
from bot.i18n import _, render

font_manager.fontManager.addfont(font_path())
matplotlib.rcParams["font.family"] = FACE


def render_matplotlib(chart: UsageChart, language: str) -> bytes:
    small = len(chart.panels) - 1
    rows = (small + 1) // 2
    fig = Figure(figsize=(9.6, 4.8 + 2.6 * rows), dpi=100)
    grid = fig.add_gridspec(1 + rows, 2, height_ratios=[1.6] + [1] * rows)
    axes = [fig.add_subplot(grid[0, :])]
    axes += [fig.add_subplot(grid[1 + i // 2, i % 2]) for i in range(small)]
    outcomes = chart.outcomes()
    for ax, panel in zip(axes, chart.panels, strict=True):
        xs = range(len(panel.bars))
        bottom = [0] * len(panel.bars)
        for series in outcomes:
            values = [bar.counts.get(series.key, 0) for bar in panel.bars]
            ax.bar(
                xs,
                values,
                bottom=bottom,
                width=0.7,
                color=[c / 255 for c in series.colour],
                label=render(language, series.label),
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        for i, bar in enumerate(panel.bars):
            if bar.day == chart.today:
                ax.axvspan(i - 0.45, i + 0.45, color="#fff3c4", zorder=0)
        if panel.cap is not None:
            ax.axhline(panel.cap, color="#d6006e", linestyle="--")
        ax.set_title(render(language, panel.title), loc="left")
        ax.set_xticks(list(xs), [f"{bar.day.month}/{bar.day.day}" for bar in panel.bars])
        if panel.empty:
            ax.text(0.5, 0.5, render(language, _("No images asked for in these days.")))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", ncols=4)
    fig.suptitle(render(language, chart.title))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
