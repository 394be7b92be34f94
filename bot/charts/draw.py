"""Drawing a `UsageChart` with Pillow. CPU work: callers off the event loop use `render_png`.

Bars are plain rectangles (no anti-aliasing), so each series is exactly its colour in the image,
and a bar's height is its images times the panel's pixels per image, rounded once per stack edge.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import date

from babel import dates
from PIL import Image, ImageDraw, ImageFont

from bot.charts.fonts import font, printable
from bot.charts.model import Outcome, Panel, UsageChart
from bot.i18n import _, format_number, language_of
from bot.i18n import render as words
from bot.i18n.formatting import babel_locale
from bot.reports import cap_text

WIDTH = 960
MAIN_HEIGHT = 400
SMALL_HEIGHT = 250
COLUMNS = 2
PAD = 16
GAP = 16

BACKGROUND = (255, 255, 255)
INK = (33, 33, 33)
MUTED = (110, 110, 110)
GRID = (228, 228, 228)
AXIS = (150, 150, 150)
TODAY_BAND = (255, 243, 196)
CAP_LINE = (214, 0, 110)

TITLE_SIZE = 22
TEXT_SIZE = 15
SMALL_SIZE = 13
SWATCH = 14
DASH = (9, 5)  # the cap line: pixels drawn, pixels skipped


@dataclass(frozen=True)
class Plot:
    """Where a panel's bars stand: columns `left`..`right`, rows `top`..`base` (the zero line),
    `ymax` images at `top`; `slot` pixels per day."""

    left: int
    top: int
    right: int
    base: int
    ymax: int
    days: int

    @property
    def slot(self) -> float:
        return (self.right - self.left) / self.days

    def y(self, images: float) -> int:
        return self.base - round(images * (self.base - self.top) / self.ymax)

    def x_range(self, index: int) -> tuple[int, int]:
        """The columns of bar `index`: most of its day's slot, at least one pixel."""
        width = max(1, round(self.slot * 0.7))
        start = self.left + round(index * self.slot + (self.slot - width) / 2)
        return start, start + width - 1


@dataclass(frozen=True)
class Drawing:
    image: Image.Image
    plots: tuple[Plot, ...]


def axis(top_value: int) -> tuple[int, int]:
    """(axis maximum, tick step): the lowest round axis (steps of 1, 2 or 5 times a power of ten,
    at most five of them) that holds `top_value`. An empty chart still gets 0-5."""
    top_value = max(top_value, 5)
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * 5 >= top_value:
                return step * math.ceil(top_value / step), step
        magnitude *= 10


def render(chart: UsageChart, language: str) -> bytes:
    """The chart as a PNG, its words in `language`."""
    buffer = io.BytesIO()
    draw(chart, language).image.save(buffer, "PNG")
    return buffer.getvalue()


def draw(chart: UsageChart, language: str) -> Drawing:
    lang = language_of(language)
    title_font, text_font, small_font = font(TITLE_SIZE), font(TEXT_SIZE), font(SMALL_SIZE)
    outcomes = chart.outcomes()
    legend = _legend_rows(outcomes, lang, text_font, WIDTH - 2 * PAD)
    line = _line_height(text_font)
    top = PAD + _line_height(title_font) + 10
    main_top = top + len(legend) * line + 10
    small_panels = chart.panels[1:]
    rows = math.ceil(len(small_panels) / COLUMNS)
    height = main_top + MAIN_HEIGHT + rows * (GAP + SMALL_HEIGHT) + PAD
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    canvas = ImageDraw.Draw(image)
    canvas.text(
        (PAD, PAD), _fit(words(lang, chart.title), title_font, WIDTH - 2 * PAD), INK, title_font
    )
    y = top
    for row in legend:
        x = PAD
        for item, label in row:
            middle = y + line // 2
            canvas.rectangle(
                (x, middle - SWATCH // 2, x + SWATCH - 1, middle + SWATCH // 2 - 1), item.colour
            )
            canvas.text((x + SWATCH + 6, middle), label, INK, text_font, anchor="lm")
            x += SWATCH + 6 + round(text_font.getlength(label)) + 18
        y += line
    plots = [
        _panel(
            canvas,
            (PAD, main_top, WIDTH - PAD, main_top + MAIN_HEIGHT),
            chart.panels[0],
            outcomes,
            chart.today,
            lang,
            (text_font, small_font),
        )
    ]
    width = (WIDTH - 2 * PAD - (COLUMNS - 1) * GAP) // COLUMNS
    for index, panel in enumerate(small_panels):
        row, column = divmod(index, COLUMNS)
        left = PAD + column * (width + GAP)
        box_top = main_top + MAIN_HEIGHT + GAP + row * (SMALL_HEIGHT + GAP)
        box = (left, box_top, left + width, box_top + SMALL_HEIGHT)
        plots.append(
            _panel(canvas, box, panel, outcomes, chart.today, lang, (small_font, small_font))
        )
    return Drawing(image, tuple(plots))


def _panel(
    canvas: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    panel: Panel,
    outcomes: list[Outcome],
    today: date,
    lang: str,
    fonts: tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont],
) -> Plot:
    head, small = fonts
    left, top, right, bottom = box
    title = printable(words(lang, panel.title), head.size)
    canvas.text((left, top), _fit(title, head, right - left), INK, head)
    ymax, step = axis(max([bar.total for bar in panel.bars] + [panel.cap or 0]))
    ticks = list(range(0, ymax + 1, step))
    tick_width = max(round(small.getlength(format_number(lang, t))) for t in ticks)
    plot = Plot(
        left=left + tick_width + 8,
        # Room for the title, then for the "today" label above the bars.
        top=top + _line_height(head) + _line_height(small) + 8,
        right=right - 4,
        base=bottom - _line_height(small) - 8,
        ymax=ymax,
        days=len(panel.bars),
    )
    marked = [i for i, bar in enumerate(panel.bars) if bar.day == today]
    for index in marked:
        start, end = plot.x_range(index)
        canvas.rectangle((start - 2, plot.top, end + 2, plot.base - 1), TODAY_BAND)
        canvas.text(
            (_clamp((start + end) / 2, small, words(lang, _("today")), left, right), plot.top - 3),
            words(lang, _("today")),
            INK,
            small,
            anchor="ms",
        )
    for tick in ticks:
        y = plot.y(tick)
        if tick:
            canvas.line((plot.left, y, plot.right, y), GRID)
        canvas.text((plot.left - 6, y), format_number(lang, tick), MUTED, small, anchor="rm")
    for index, bar in enumerate(panel.bars):
        start, end = plot.x_range(index)
        stacked = 0
        for series in outcomes:
            count = bar.counts.get(series.key, 0)
            if count <= 0:
                continue
            upper, lower = plot.y(stacked + count), plot.y(stacked)
            if lower > upper:
                canvas.rectangle((start, upper, end, lower - 1), series.colour)
            stacked += count
    canvas.line((plot.left, plot.base, plot.right, plot.base), AXIS)
    _day_labels(canvas, plot, panel, today, lang, small, (left, right))
    if panel.cap is not None:
        _cap_line(canvas, plot, panel.cap, lang, small)
    if panel.empty:
        canvas.text(
            ((plot.left + plot.right) / 2, (plot.top + plot.base) / 2),
            words(lang, _("No images asked for in these days.")),
            MUTED,
            head,
            anchor="mm",
        )
    return plot


def _day_labels(
    canvas: ImageDraw.ImageDraw,
    plot: Plot,
    panel: Panel,
    today: date,
    lang: str,
    small: ImageFont.FreeTypeFont,
    bounds: tuple[int, int],
) -> None:
    labels = [dates.format_skeleton("Md", bar.day, locale=babel_locale(lang)) for bar in panel.bars]
    widest = max((small.getlength(label) for label in labels), default=0) + 10
    every = max(1, math.ceil(widest / plot.slot))
    last = len(labels) - 1
    for index, label in enumerate(labels):
        # Counted back from the last day, so today's date is always among the labels shown.
        if (last - index) % every:
            continue
        start, end = plot.x_range(index)
        colour = INK if panel.bars[index].day == today else MUTED
        x = _clamp((start + end) / 2, small, label, *bounds)
        canvas.text((x, plot.base + 5), label, colour, small, anchor="ma")


def _cap_line(
    canvas: ImageDraw.ImageDraw, plot: Plot, cap: int, lang: str, small: ImageFont.FreeTypeFont
) -> None:
    y = plot.y(cap)
    on, off = DASH
    for x in range(plot.left, plot.right, on + off):
        canvas.rectangle((x, y - 1, min(x + on, plot.right) - 1, y), CAP_LINE)
    label = words(lang, _("Cap: {cap}", cap=cap_text(cap)))
    # At the left end (today's bar is the last one, on the right), above the line, or under it
    # when the line runs along the top of the plot; a white halo keeps it legible over a bar.
    above = y - plot.top > _line_height(small)
    canvas.text(
        (plot.left + 4, y - 4 if above else y + 4),
        label,
        CAP_LINE,
        small,
        anchor="ls" if above else "la",
        stroke_width=2,
        stroke_fill=BACKGROUND,
    )


def _legend_rows(
    outcomes: list[Outcome], lang: str, text_font: ImageFont.FreeTypeFont, width: int
) -> list[list[tuple[Outcome, str]]]:
    rows: list[list[tuple[Outcome, str]]] = [[]]
    used = 0
    for item in outcomes:
        label = words(lang, item.label)
        need = SWATCH + 6 + round(text_font.getlength(label)) + 18
        if rows[-1] and used + need > width:
            rows.append([])
            used = 0
        rows[-1].append((item, label))
        used += need
    return rows


def _line_height(face: ImageFont.FreeTypeFont) -> int:
    ascent, descent = face.getmetrics()
    return ascent + descent


def _fit(text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """`text`, cut short with an ellipsis when it would be wider than `width` pixels."""
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _clamp(x: float, face: ImageFont.FreeTypeFont, text: str, left: int, right: int) -> float:
    """A centred label's middle, moved in so the label stays between `left` and `right`."""
    half = face.getlength(text) / 2
    return min(max(x, left + half), right - half)
