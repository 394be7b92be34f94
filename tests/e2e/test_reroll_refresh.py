"""Reroll at any age: Discord's signed attachment URLs expire (~24 h); the bot gets
fresh ones from `POST /attachments/refresh-urls`, which the fake Discord serves like Discord does, on
the fake CDN's clock. Real bot, fake Discord, emulator."""

from __future__ import annotations

from bot.sandbox import Emulator
from bot.store import JobState
from tests.e2e.test_results import job_id, menu_result
from tests.support.harness import World, png
from tests.support.promises import job_ends
from tests.support.results import (
    first_result,
    settled_to,
    task_inputs,
    told_privately,
    usage,
)

DAYS = 86400


def forget_uploads(w: World, folder: str) -> None:
    """Remove every file of the CDN folder (Discord dropping the files of deleted content)."""
    for f in list(w.fd.world.cdn.files.values()):
        if f.folder.startswith(folder):
            w.fd.forget_cdn_file(f)


async def test_reroll_of_a_wanedit_result_works_days_later(bot_world: World) -> None:
    """Guards: a /wanedit attachment has no message to re-read; three days later its stored URL is
    dead and Reroll still works, with the same input bytes, through refreshed URLs."""
    w = bot_world
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    w.fd.advance_cdn_clock(3 * DAYS)
    since = w.fd.mark()
    click = await w.fd.click(
        int(result["channel_id"]), w.bob, result, f"wan:reroll:{job_id(result)}"
    )
    await click.wait_response()
    await w.result_message(w.bob, since=since)
    assert task_inputs(w.emu, 2) == task_inputs(w.emu, 1)
    assert w.fd.refresh_requests, "the bot never asked Discord for fresh URLs"
    await settled_to(w, w.bob.id, 1)
    # A week on, again: every reroll refreshes what it needs.
    w.fd.advance_cdn_clock(7 * DAYS)
    since = w.fd.mark()
    again = await w.fd.click(
        int(result["channel_id"]), w.alice, result, f"wan:reroll:{job_id(result)}"
    )
    await again.wait_response()
    await w.result_message(w.alice, since=since)
    assert task_inputs(w.emu, 3) == task_inputs(w.emu, 1)


async def test_reroll_whose_files_are_gone_says_why_and_charges_nothing(
    bot_world: World,
) -> None:
    """Guards: when Discord no longer has the file (nothing to refresh), the button says why and
    nothing is reserved or created."""
    w = bot_world
    result = await first_result(w, w.alice)
    await settled_to(w, w.alice.id, 1)
    w.fd.advance_cdn_clock(3 * DAYS)
    forget_uploads(w, "ephemeral-attachments")
    click = await w.fd.click(
        int(result["channel_id"]), w.bob, result, f"wan:reroll:{job_id(result)}"
    )
    text = await told_privately(click)
    assert "no longer available" in text and "Nothing was charged" in text
    assert w.emu.created_count == 1
    assert await usage(w, w.bob.id) == (0, 0)


async def test_reroll_of_someone_elses_expired_image_without_the_intent_works(
    bot_world: World,
) -> None:
    """Guards: without Message Content the bot can't re-read bob's message for a fresh URL, but the
    refresh endpoint needs no message: Reroll works; once the file is gone it explains."""
    w = bot_world
    source = await w.fd.post_user_message(w.channel, w.bob, "", attachments=[("a.png", png())])
    result = await menu_result(w, source)
    w.fd.advance_cdn_clock(3 * DAYS)
    since = w.fd.mark()
    click = await w.fd.click(
        int(result["channel_id"]), w.bob, result, f"wan:reroll:{job_id(result)}"
    )
    await click.wait_response()
    await w.result_message(w.bob, since=since)
    assert task_inputs(w.emu, 2) == task_inputs(w.emu, 1)
    # The reroll's job ends just after its result is posted; a click before that is "already on it".
    await job_ends(w, 2, JobState.DONE)
    forget_uploads(w, "attachments/")
    w.fd.advance_cdn_clock(3 * DAYS)
    gone = await w.fd.click(
        int(result["channel_id"]), w.bob, result, f"wan:reroll:{job_id(result)}"
    )
    text = await told_privately(gone)
    assert "Edit with Wan" in text and "Nothing was charged" in text
    assert w.emu.created_count == 2


async def test_refresh_endpoint_signs_anew_and_keeps_unknown_urls(emulator: Emulator) -> None:
    """Guards the fake: refreshed URLs download after expiry; unknown ones come back unchanged."""
    del emulator
    import aiohttp

    from tests.support.fake_discord import FakeDiscord

    fd = FakeDiscord()
    await fd.start()
    try:
        f = fd.add_cdn_file(png(), "a.png", "image/png")
        old = f.url
        fd.advance_cdn_clock(2 * DAYS)
        bogus = old.replace(str(f.id), "123")
        async with aiohttp.ClientSession() as http:
            async with http.get(old) as resp:
                assert resp.status == 404
            async with http.post(
                fd.api_base + "/attachments/refresh-urls",
                json={"attachment_urls": [old, bogus]},
                headers={"Authorization": f"Bot {fd.token}"},
            ) as resp:
                body = await resp.json()
            fresh, unknown = body["refreshed_urls"]
            assert fresh["original"] == old and fresh["refreshed"] != old
            assert unknown == {"original": bogus, "refreshed": bogus}
            async with http.get(fresh["refreshed"]) as resp:
                assert resp.status == 200 and await resp.read() == f.data
    finally:
        await fd.close()
