"""The usage chart where people get it: `/wanquota usage` (a server's admins) and `/wanowner usage`
(the owner) answer with the embed and the chart as a PNG attachment, through the fake Discord;
`python -m bot usage --chart` writes the same chart from a second process."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from PIL import Image

from bot.charts import owner_chart, render, server_chart
from bot.store import Store
from tests.support.fake_discord import Channel, Guild, User
from tests.support.first_run import base_env, run_cli
from tests.support.harness import World, wait_until


async def usage(
    w: World,
    user: User,
    name: str,
    *,
    guild: Guild | None = None,
    channel: Channel | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`/name usage`, privately answered: the answer's message."""
    ix = await w.fd.slash(
        guild, channel or w.fd.dm_channel(user), user, name, options, subcommand="usage"
    )
    await ix.wait_response()
    original = await ix.wait_original(lambda m: bool(m.get("embeds")))
    assert ix.ephemeral
    return original


async def attached_png(message: dict[str, Any]) -> bytes:
    """The answer's one attachment, downloaded from the (fake) CDN as the member's client does."""
    (attachment,) = message["attachments"]
    assert attachment["filename"] == "usage.png"
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as response:
        assert response.status == 200
        data = await response.read()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.width == 960
    return data


async def one_image_delivered(w: World, store: Store) -> None:
    """Alice's edit, delivered and settled (the charge is written just after the result is
    posted): the numbers every chart below is drawn from."""
    since = w.fd.mark()
    await w.wanedit(w.alice, "make it blue")
    await w.result_message(w.alice, since=since)

    async def settled() -> bool:
        return (await store.usage_report(None, days=1)).today.charged == 1

    await wait_until(settled)


async def test_admins_and_the_owner_get_the_chart_beside_the_embed(world: World) -> None:
    w = world
    bot = await w.start_bot(WAN_GLOBAL_DAILY_LIMIT="20")
    await one_image_delivered(w, bot.store)

    week = await usage(w, w.admin, "wanquota", guild=w.guild, channel=w.channel)
    assert "Wan usage in this server" in week["embeds"][0]["title"]
    # The chart of this server's numbers, as the store has them: the very image drawn here.
    chart = await server_chart(bot.store, w.guild.id, w.guild.name, days=7)
    assert chart.panels[0].bars[-1].counts["delivered"] == 1
    assert await attached_png(week) == render(chart, "en")

    month = await usage(w, w.admin, "wanquota", guild=w.guild, channel=w.channel, days=30)
    month_chart = await server_chart(bot.store, w.guild.id, w.guild.name, days=30)
    assert await attached_png(month) == render(month_chart, "en")
    assert month_chart != chart

    owner = await usage(w, w.fd.world.owner, "wanowner")
    assert "Wan usage across the bot" in owner["embeds"][0]["title"]
    names = {w.guild.id: w.guild.name}
    whole = await owner_chart(bot.store, names, days=7)
    assert [p.title for p in whole.panels] == ["The whole bot", w.guild.name]
    assert await attached_png(owner) == render(whole, "en")

    refused = await w.fd.slash(w.guild, w.channel, w.alice, "wanquota", {}, subcommand="usage")
    await refused.wait_response()
    assert "Manage Server" in str(refused.response_data) and not (refused.original or {}).get(
        "attachments"
    )


async def test_the_cli_writes_the_owners_chart(world: World) -> None:
    w = world
    bot = await w.start_bot()
    await one_image_delivered(w, bot.store)
    path = w.db_path.parent / "usage.png"
    cli = await run_cli(
        "usage",
        "--chart",
        "usage.png",
        "--days",
        "30",
        "--language",
        "zh-CN",
        env=base_env(DATABASE_URL=w.settings().database_url),
        cwd=path.parent,
    )
    assert cli.returncode == 0, cli.stderr
    assert "written to usage.png" in cli.stdout
    # No Discord here: the server is named by its id.
    assert path.read_bytes() == render(await owner_chart(bot.store, days=30), "zh-CN")
