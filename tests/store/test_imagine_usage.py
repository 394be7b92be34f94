"""Images made from text in the usage report, on both engines, and their own price in the cost.

A text-to-image job keeps `"kind": "imagine"` in its options (no new column); the report counts
what Wan billed for such jobs apart, so the cost can price them with WAN_PRICE_PER_IMAGE_T2I."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.reports import amount, cost, report_lines, worst_case_text
from bot.store import JobState, Limits, Store
from tests.support.store import Clock, Database, open_url

G, H = 111, 222
U, V = 501, 502
BASE = {"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEY": "k", "DASHSCOPE_BASE_URL": "singapore"}


async def finished_job(store: Store, scope: int, user: int, billed: int, kind: str | None) -> None:
    reservation = await store.reserve(scope, user, billed)
    options = {"count": billed} | ({"kind": kind} if kind else {})
    row = await store.create_job(
        scope=scope,
        channel_id=1,
        user_id=user,
        source="slash",
        prompt="p",
        options=options,
        reservation_id=reservation.id,
        state=JobState.QUEUED,
    )
    await store.update_job(row.id, billed=billed)
    await store.finish_job(row.id, JobState.DONE, generated=billed)


async def test_the_report_counts_images_made_from_text_apart(database: Database) -> None:
    clock = Clock()
    store = await open_url(database.url, clock, default_daily_limit=20, limits=Limits())
    try:
        await finished_job(store, G, U, 2, "imagine")
        clock.advance(days=1)
        await finished_job(store, G, U, 3, None)  # an edit from before jobs had a kind
        await finished_job(store, G, V, 1, "edit")
        await finished_job(store, G, V, 4, "imagine")
        await finished_job(store, H, U, 2, "imagine")
        report = await store.usage_report(None, days=2)
        assert [(d.billed, d.billed_by_kind) for d in report.days] == [
            (2, {"imagine": 2}),
            (10, {"imagine": 6}),
        ]
        assert report.billed_by_kind_today == {G: {"imagine": 4}, H: {"imagine": 2}}
        server = await store.usage_report(H, days=1)
        assert server.today.billed_by_kind == {"imagine": 2}
        assert server.billed_by_kind_today == {H: {"imagine": 2}}
    finally:
        await store.close()


def test_an_image_made_from_text_costs_its_own_price_when_one_is_set() -> None:
    both = load_settings({**BASE, "WAN_PRICE_PER_IMAGE": "0.20"}, dotenv_path=None)
    apart = load_settings(
        {**BASE, "WAN_PRICE_PER_IMAGE": "0.20", "WAN_PRICE_PER_IMAGE_T2I": "0.5"},
        dotenv_path=None,
    )
    # WAN_PRICE_PER_IMAGE alone prices both kinds.
    assert amount(10, both, {"imagine": 6}) == pytest.approx(2.0)
    assert amount(10, apart, {"imagine": 6}) == pytest.approx(4 * 0.2 + 6 * 0.5)
    assert str(cost(10, apart, {"imagine": 6})) == "3.80 CNY"
    # The worst case of a day prices every image at the dearer of the two.
    assert "25.00 CNY (50 images × 0.50 CNY)" in str(worst_case_text(50, apart))
    list_price = load_settings(BASE, dotenv_path=None)
    assert list_price.price_for("imagine") == list_price.price_for("edit") == 0.220177


def test_the_text_to_image_price_must_be_in_the_same_currency() -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(
            {**BASE, "WAN_PRICE_PER_IMAGE": "0.03 USD", "WAN_PRICE_PER_IMAGE_T2I": "0.2 CNY"},
            dotenv_path=None,
        )
    assert bad.value.variable == "WAN_PRICE_PER_IMAGE_T2I" and "USD" in str(bad.value)
    same = load_settings(
        {**BASE, "WAN_PRICE_PER_IMAGE": "0.03 USD", "WAN_PRICE_PER_IMAGE_T2I": "0.04"},
        dotenv_path=None,
    )
    assert (same.price_currency, same.price_for("imagine")) == ("USD", 0.04)


async def test_the_owner_s_report_prices_each_server_by_kind(database: Database) -> None:
    clock = Clock()
    store = await open_url(database.url, clock, default_daily_limit=20, limits=Limits())
    settings = load_settings(
        {**BASE, "WAN_PRICE_PER_IMAGE": "0.2", "WAN_PRICE_PER_IMAGE_T2I": "1"}, dotenv_path=None
    )
    try:
        await finished_job(store, G, U, 2, "imagine")
        await finished_job(store, H, U, 2, "edit")
        lines = report_lines(await store.usage_report(None, days=1), settings)
    finally:
        await store.close()
    assert lines[0].endswith("4 image(s) billed by Wan (2 made from text), cost 2.40 CNY")
    assert "server 111: 2 billed (2.00 CNY)" in "\n".join(lines)
    assert "server 222: 2 billed (0.40 CNY)" in "\n".join(lines)
