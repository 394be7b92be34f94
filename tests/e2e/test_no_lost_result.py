"""No lost result: whatever Wan made and billed reaches the member or is accounted for. End to end:
the real bot, the fake Discord (thread cap 160006, injected 5xx/413), the Wan emulator, real sqlite."""

from __future__ import annotations

import io
import logging
from typing import Any

import discord

from bot.sandbox import FaultRule
from tests.support.harness import REDELIVER_SOON, World, embed_text, png, wait_until
from tests.support.promises import refuse_posts
from tests.support.results import button_ids, settled_to, usage


def job_of(result: dict[str, Any]) -> int:
    return int(result["embeds"][0]["footer"]["text"].rsplit("#", 1)[1])


async def finished(w: World, job_id: int) -> Any:
    async def done() -> Any:
        job = await w.bots[-1].store.get_job(job_id)
        return job if job is not None and job.finished else None

    return await wait_until(done)


async def test_the_active_thread_cap_sends_the_result_to_the_channel(bot_world: World) -> None:
    """Guards the thread fallback for 160006: the result lands in the channel, charged once."""
    w = bot_world
    w.fd.max_active_threads = 0
    await w.wanedit(w.alice, "no room for threads")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == w.channel.id and not w.fd.threads
    await settled_to(w, w.alice.id, 1)
    job = await finished(w, job_of(result))
    assert (job.generated, job.billed) == (1, 1)


async def test_a_thread_creation_5xx_sends_the_result_to_the_channel(bot_world: World) -> None:
    """Guards the thread fallback for a server error (discord.py gives up at once on 503)."""
    w = bot_world
    w.fd.inject_failure("POST", r"/messages/\d+/threads$", 503, times=10)
    await w.wanedit(w.alice, "threads are down")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == w.channel.id
    await settled_to(w, w.alice.id, 1)


async def test_an_undeliverable_result_is_billed_not_charged_and_logged(
    world: World, caplog
) -> None:
    """Guards "never refunded silently": when no place takes the result, the member is charged
    nothing (charge <= delivered) but the job and the owner's report show what Wan billed, and it
    counts against the server's day."""
    w = world
    await w.start_bot(runner_options=REDELIVER_SOON)
    refuse_posts(w, 1000)
    caplog.set_level(logging.ERROR, logger="bot.jobs.deliverer")
    ix = await w.wanedit(w.alice, "nowhere to post", count=2)
    await ix.wait_original(lambda m: "Job #1" in embed_text(m))
    job = await finished(w, 1)
    assert (job.error_code, job.generated, job.billed) == ("Undeliverable", 0, 2)
    await settled_to(w, w.alice.id, 0)
    totals = await w.bots[-1].store.server_totals(w.guild.id)
    # The server's day counts what Wan billed: the owner's caps bound the bill.
    assert (totals.used, totals.billed, totals.undelivered) == (2, 2, 2)
    assert "billed but undelivered" in caplog.text
    final = await ix.wait_original(lambda m: "No result" in embed_text(m))
    assert "could not be posted" in embed_text(final)


async def test_a_missing_download_posts_the_rest_and_charges_for_them(bot_world: World) -> None:
    """Guards partial downloads: 2 of 3 images reach the member with a note of the missing one;
    the member pays 2, the job records 3 billed by Wan."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="download", status=403, code="AccessDenied", times=1))
    await w.wanedit(w.alice, "three, one lost", count=3)
    result = await w.result_message(w.alice)
    assert len(w.fd.files(result)) == 2
    assert "Missing: 1 image Wan made could not be downloaded" in embed_text(result)
    await settled_to(w, w.alice.id, 2)
    job = await finished(w, job_of(result))
    assert (job.generated, job.billed) == (2, 3)
    totals = await w.bots[-1].store.server_totals(w.guild.id)
    # The member pays the 2 delivered (`settled_to`); the server's day counts the 3 billed.
    assert (totals.used, totals.billed, totals.undelivered) == (3, 3, 1)
    # The owner's report shows both: what members were charged and what Wan billed.
    report = await w.fd.slash(w.guild, w.channel, w.admin, "wanquota", {}, subcommand="show")
    shown = await report.wait_for(lambda ix: "Billed by Wan" in embed_text(ix.original))
    assert "Billed by Wan today: 3 images, 1 of them never delivered" in embed_text(shown.original)


async def test_an_undocumented_task_status_is_polled_on(bot_world: World, caplog) -> None:
    """Guards "only the documented terminal states end a job": a strange status is logged and the
    task followed to its real end."""
    w = bot_world
    caplog.set_level(logging.WARNING, logger="bot.wan.models")
    w.emu.add_fault(FaultRule(op="get", task_status="QUEUEING", times=3))
    await w.wanedit(w.alice, "odd statuses on the way")
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    assert "undocumented task status 'QUEUEING'" in caplog.text


async def test_redelivery_into_a_dm_replaces_a_partial_post(world: World) -> None:
    """Guards re-delivery by DM (the channel gone): the part posted before a restart is replaced
    by the whole result in the member's DM, charged once."""
    w = world
    first = await w.start_bot()
    await w.wanedit(w.alice, "a finished task to deliver again", count=2)
    posted = await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 2)
    store = first.store
    done = await store.job_for_message(int(posted["id"]))
    assert done is not None and done.task_id is not None
    reservation = await store.reserve(w.guild.id, w.alice.id, 2)
    job = await store.create_job(
        scope=w.guild.id,
        guild_id=w.guild.id,
        channel_id=w.fd.world.ids.next(),  # a channel deleted since
        user_id=w.alice.id,
        source="slash",
        prompt="cut short in a DM",
        options={"count": 2, "seed": 7},
        state="queued",
        reservation_id=reservation.id,
    )
    await store.set_task_id(job.id, done.task_id)
    await store.update_job(job.id, state="delivering")
    dm = await (await first.fetch_user(w.alice.id)).create_dm()
    embed = discord.Embed(description="cut short").set_footer(text=f"Job #{job.id}")
    await dm.send(f"<@{w.alice.id}>", embed=embed, file=discord.File(io.BytesIO(png()), "r.png"))
    await w.stop_bot(first)
    await w.start_bot()
    final = await finished(w, job.id)
    assert final.state == "done" and final.generated == 2
    parts = [m for m in w.fd.messages(dm.id) if f"Job #{job.id}" in embed_text(m)]
    assert len(parts) == 1 and len(parts[0]["attachments"]) == 2
    await settled_to(w, w.alice.id, 4)


async def test_a_result_split_by_the_upload_limit_pings_once_with_buttons_once(
    bot_world: World,
) -> None:
    """Guards the one-message-per-image fallback (413 for the whole upload): one ping, one set of
    buttons, every image delivered and charged."""
    w = bot_world
    w.fd.inject_failure(
        "POST",
        r"/channels/\d+/messages$",
        413,
        {"code": 40005, "message": "Request entity too large"},
        times=1,
    )
    await w.wanedit(w.alice, "too big together", count=2)
    result = await w.result_message(w.alice)
    job = await finished(w, job_of(result))
    parts = [w.fd.message(i) for i in job.result_message_ids]
    assert len(parts) == 2 and all(len(p["attachments"]) == 1 for p in parts)
    assert sum(f"<@{w.alice.id}>" in (p["content"] or "") for p in parts) == 1
    assert sum(w.alice.id in [int(u["id"]) for u in p["mentions"]] for p in parts) == 1
    assert sum(bool(button_ids(p)) for p in parts) == 1
    assert await usage(w, w.alice.id) == (2, 0)
