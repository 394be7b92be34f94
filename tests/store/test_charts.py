"""The usage charts, drawn from a store with known rows (sqlite and PostgreSQL) and read back as
pixels: each series' height follows its images, the cap line sits at the cap, today is marked, an
empty history is drawn as one, and the Chinese labels are in the font (not boxes)."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fontTools.ttLib import TTCollection
from PIL import Image

from bot.charts import OUTCOMES, Bar, Plot, draw, owner_chart, render, server_chart
from bot.charts.draw import (
    BACKGROUND,
    CAP_LINE,
    GAP,
    SMALL_HEIGHT,
    TODAY_BAND,
    WIDTH,
)
from bot.charts.fonts import FACE, font_path, printable
from bot.charts.gather import chart_title
from bot.charts.model import DELIVERED, UNDELIVERED, Panel, UsageChart, outcome
from bot.i18n import _
from bot.i18n import render as words
from bot.store import JobState, Limits, QuotaRefused, Store
from tests.support.store import Clock, Database, open_url

G, H = 111, 222
U, V = 501, 502
ADMIN = 9
COLOURS = {o.colour: o.key for o in OUTCOMES}


@pytest.fixture
async def history(database: Database) -> AsyncIterator[tuple[Store, Clock]]:
    """Four days in server G, the first three in the past (its cap: 10 images a day, each
    member's limit 8):
    day 0: 2 delivered; day 1: 4 delivered and 1 billed but lost; day 2: nothing;
    today: 6 delivered, 3 refused by the member's limit. Server H: 1 delivered today."""
    clock = Clock()
    store = await open_url(
        database.url, clock, default_daily_limit=8, limits=Limits(global_daily=40)
    )
    try:
        await store.set_server_cap(G, ADMIN, 10)
        await job(store, G, U, 2, billed=2, delivered=2)
        clock.advance(days=1)
        await job(store, G, U, 3, billed=3, delivered=2)  # one image lost after Wan made it
        await job(store, G, V, 2, billed=2, delivered=2)
        clock.advance(days=2)
        await job(store, G, U, 6, billed=6, delivered=6)
        with pytest.raises(QuotaRefused):
            await store.reserve(G, U, 3)  # 6 of 8 used: refused by the member's limit
        await job(store, H, V, 1, billed=1, delivered=1)
        yield store, clock
    finally:
        await store.close()


async def job(
    store: Store, scope: int, user: int, images: int, *, billed: int, delivered: int
) -> None:
    reservation = await store.reserve(scope, user, images)
    row = await store.create_job(
        scope=scope,
        channel_id=1,
        user_id=user,
        source="slash",
        prompt="p",
        reservation_id=reservation.id,
        state=JobState.QUEUED,
    )
    await store.finish_job(row.id, JobState.DONE, generated=delivered, billed=billed)


def pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def bars(image: Image.Image, plot: Plot) -> list[tuple[int, Counter[str]]]:
    """Each bar standing on the zero line, left to right: its middle column and the pixel height
    of each series in that column (found by colour, not from the chart's own arithmetic)."""
    row = plot.base - 1
    runs: list[list[int]] = []
    for x in range(plot.left, plot.right):
        if image.getpixel((x, row)) in COLOURS:
            if runs and runs[-1][-1] == x - 1:
                runs[-1].append(x)
            else:
                runs.append([x])
    found = []
    for run in runs:
        middle = run[len(run) // 2]
        heights: Counter[str] = Counter()
        for y in range(plot.top, plot.base):
            colour = image.getpixel((middle, y))
            if colour in COLOURS:
                heights[COLOURS[colour]] += 1
        found.append((middle, heights))
    return found


def cap_row(image: Image.Image, plot: Plot) -> int:
    """The middle of the rows the dashed cap line fills (at least half their width)."""
    width = plot.right - plot.left
    rows = [
        y
        for y in range(plot.top - 2, plot.base + 1)
        if sum(image.getpixel((x, y)) == CAP_LINE for x in range(plot.left, plot.right)) > width / 2
    ]
    assert rows, "no cap line"
    return (rows[0] + rows[-1]) // 2


def per_image(found: list[tuple[int, Counter[str]]], images: list[dict[str, int]]) -> float:
    """Pixels per image, checked to be the same for every series of every bar (within the one
    pixel each stacked edge may round)."""
    ratios = [
        heights[key] / n
        for (_x, heights), counts in zip(found, images, strict=True)
        for key, n in counts.items()
    ]
    scale = sum(ratios) / len(ratios)
    for (_x, heights), counts in zip(found, images, strict=True):
        assert set(heights) == set(counts), (heights, counts)
        for key, n in counts.items():
            assert abs(heights[key] - n * scale) <= 1.5, (key, heights[key], n, scale)
    return scale


async def test_a_servers_bars_follow_its_numbers_and_the_cap_line_its_cap(
    history: tuple[Store, Clock],
) -> None:
    store, _clock = history
    chart = await server_chart(store, G, "Test server", days=7)
    png = render(chart, "en")
    image = pixels(png)
    drawing = draw(chart, "en")
    assert image.size == drawing.image.size and image.width == WIDTH
    (plot,) = drawing.plots

    found = bars(image, plot)
    expected = [
        {DELIVERED: 2},
        {DELIVERED: 4, UNDELIVERED: 1},
        {DELIVERED: 6, "daily_limit": 3},
    ]
    scale = per_image(found, expected)
    assert scale > 10  # a readable chart: 9 images stand well over a hundred pixels
    xs = [x for x, _heights in found]
    assert xs == sorted(xs) and len(found) == 3
    # Seven days, the fourth from the right (day 2) empty: the gaps between bars say so.
    slot = (plot.right - plot.left) / 7
    assert [round((x - plot.left) / slot - 0.5) for x in xs] == [3, 4, 6]

    # The cap line: 10 images above the zero line, at the bars' own scale.
    assert abs((plot.base - cap_row(image, plot)) - 10 * scale) <= 2
    # Today (the last bar) stands on the marked band; the other days do not.
    above = plot.top + 2
    assert image.getpixel((xs[-1], above)) == TODAY_BAND
    assert all(image.getpixel((x, above)) == BACKGROUND for x in xs[:-1])


async def test_the_owners_chart_has_the_whole_bot_then_its_busiest_servers(
    history: tuple[Store, Clock],
) -> None:
    store, _clock = history
    chart = await owner_chart(store, {G: "Test server", H: "Other"}, days=7)
    assert [p.title for p in chart.panels] == ["The whole bot", "Test server", "Other"]
    drawing = draw(chart, "en")
    image = pixels(render(chart, "en"))
    single = draw(await server_chart(store, G, "Test server"), "en").image
    # One row of two small panels below the same main panel.
    assert image.size == (WIDTH, single.height + GAP + SMALL_HEIGHT)

    main, g, h = drawing.plots
    everything = [{DELIVERED: 2}, {DELIVERED: 4, UNDELIVERED: 1}, {DELIVERED: 7, "daily_limit": 3}]
    scale = per_image(bars(image, main), everything)
    assert abs((main.base - cap_row(image, main)) - 40 * scale) <= 2  # the bot-wide cap
    g_scale = per_image(
        bars(image, g),
        [{DELIVERED: 2}, {DELIVERED: 4, UNDELIVERED: 1}, {DELIVERED: 6, "daily_limit": 3}],
    )
    assert abs((g.base - cap_row(image, g)) - 10 * g_scale) <= 2
    per_image(bars(image, h), [{DELIVERED: 1}])


async def test_thirty_days_are_thirty_slots(history: tuple[Store, Clock]) -> None:
    store, _clock = history
    chart = await server_chart(store, G, None, days=30)
    assert len(chart.panels[0].bars) == 30 and chart.panels[0].title == f"server {G}"
    (plot,) = draw(chart, "en").plots
    found = bars(pixels(render(chart, "en")), plot)
    slot = (plot.right - plot.left) / 30
    assert [round((x - plot.left) / slot - 0.5) for x, _h in found] == [26, 27, 29]


async def test_an_empty_history_is_drawn_as_empty(database: Database) -> None:
    """No bars at all (not a bar of height 0 pretending otherwise), the axis from 0, the cap where
    it is, and a line saying there was nothing."""
    store = await open_url(database.url, Clock())
    try:
        await store.set_server_cap(G, ADMIN, 4)
        chart = await server_chart(store, G, "Quiet", days=7)
    finally:
        await store.close()
    assert chart.panels[0].empty
    image = pixels(render(chart, "en"))
    (plot,) = draw(chart, "en").plots
    inside = [
        image.getpixel((x, y))
        for x in range(plot.left, plot.right)
        for y in range(plot.top, plot.base)
    ]
    assert not set(inside) & set(COLOURS)
    # The axis runs to 5 (the lowest round one over the cap): the cap line at 4/5 of its height.
    assert abs((plot.base - cap_row(image, plot)) - 4 / 5 * (plot.base - plot.top)) <= 2
    middle = (plot.top + plot.base) // 2
    note = [
        image.getpixel((x, y))
        for x in range(plot.left, plot.right)
        for y in range(middle - 8, middle + 8)
    ]
    assert sum(1 for c in note if max(c) < 160) > 50  # the words of the note, in grey ink


def test_every_chinese_label_is_in_the_font() -> None:
    """Every character of every zh-CN label is in the SC face's character map (fontTools reads
    it independently of Pillow), and each label really is translated."""
    collection = TTCollection(font_path(), lazy=True)
    (face,) = [f for f in collection.fonts if f["name"].getDebugName(1) == FACE]
    cmap = face.getBestCmap()
    chart = UsageChart(chart_title(30), (Panel(_("The whole bot"), ()),), Clock().now.date())
    labels = [
        chart.title,
        chart_title(7),
        chart.panels[0].title,
        _("today"),
        _("Cap: {cap}", cap="1"),
        _("No images asked for in these days."),
        _("DMs"),
        _("server {id}", id=1),
        *(o.label for o in OUTCOMES),
    ]
    for label in labels:
        chinese = words("zh-CN", label)
        assert chinese != str(label), f"not translated: {label}"
        missing = {c for c in chinese if not c.isspace() and ord(c) not in cmap}
        assert not missing, (label, chinese, missing)


def test_a_name_keeps_what_the_font_can_draw() -> None:
    assert printable("Café 服务器 😀 Жук") == "Café 服务器 Жук"
    assert printable("🎉🎉") == ""
    assert outcome("new_reason").label == "Refused: new_reason"


def test_the_chinese_chart_is_drawn_in_chinese() -> None:
    """The same chart in two languages differs where the words are, and only there."""
    today = Clock().now.date()
    empty = tuple(Bar(today - timedelta(days=n), {}) for n in range(6, -1, -1))
    chart = UsageChart(chart_title(7), (Panel(_("The whole bot"), empty, cap=3),), today)
    english, chinese = pixels(render(chart, "en")), pixels(render(chart, "zh-CN"))
    assert english.size == chinese.size
    assert english.tobytes() != chinese.tobytes()
