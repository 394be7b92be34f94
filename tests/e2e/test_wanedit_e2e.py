"""/wanedit end to end: the real discord.py bot, the fake Discord, the Wan emulator, a real sqlite file."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import discord
from aiohttp import web
from PIL import Image

from bot.sandbox import FaultRule
from bot.store import open_store
from bot.store.store import ORPHAN_MARGIN
from tests.support.fake_discord import GATEWAY_MESSAGE_CONTENT_LIMITED
from tests.support.harness import API_KEY, World, embed_text, make_world, png, wait_until


async def usage(w: World, user_id: int, scope: int | None = None) -> tuple[int, int]:
    status = await w.bots[-1].store.quota_status(w.guild.id if scope is None else scope, user_id)
    return status.used, status.held


async def settled_to(w: World, user_id: int, used: int, scope: int | None = None) -> None:
    async def check() -> bool:
        return await usage(w, user_id, scope) == (used, 0)

    await wait_until(check)


def private_text(ix) -> str:
    """What the user was told privately (ephemeral messages only)."""
    parts = [m.get("content") or "" for m in ix.messages if m.get("flags", 0) & 64]
    if ix.response_type == 4 and ix.ephemeral and ix.response_data:
        parts.append(ix.response_data.get("content") or "")
    return "\n".join(parts)


async def test_one_image_round_trip(bot_world: World) -> None:
    w = bot_world
    ix = await w.wanedit(w.alice, "make the sky stormy")
    await ix.wait_response()
    assert ix.response_type == 5  # deferred at once
    result = await w.result_message(w.alice)
    files = w.fd.files(result)
    assert len(files) == 1 and files[0][1][:8] == b"\x89PNG\r\n\x1a\n"
    text = embed_text(result)
    assert "make the sky stormy" in text and "Seed" in text and "images left today: 9" in text
    # Delivered in a thread made from the response message, named from the prompt.
    thread = next(t for t in w.fd.threads if t.id == int(result["channel_id"]))
    assert thread.name.startswith("make the sky stormy")
    await settled_to(w, w.alice.id, 1)
    done = await ix.wait_original(lambda m: "Done" in embed_text(m))
    assert "Done" in embed_text(done)


async def test_three_images_keep_their_order(bot_world: World) -> None:
    w = bot_world
    inputs = [png(400, 400, (255, 0, 0)), png(500, 400, (0, 255, 0)), png(600, 400, (0, 0, 255))]
    await w.wanedit(w.alice, "put the clock from image 1 next to the vase in image 2", inputs)
    await w.result_message(w.alice)
    (task,) = w.emu.tasks.values()
    sent = task.request["input"]["images"]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in sent] == inputs
    assert task.request["parameters"]["n"] == 1


async def test_count_four_gives_four_files_and_charges_four(bot_world: World) -> None:
    w = bot_world
    await w.wanedit(w.alice, "four variations", count=4, seed=42)
    result = await w.result_message(w.alice)
    assert len(w.fd.files(result)) == 4
    (task,) = w.emu.tasks.values()
    assert task.request["parameters"]["n"] == 4 and task.request["parameters"]["seed"] == 42
    await settled_to(w, w.alice.id, 4)
    assert "Seed: 42" in embed_text(result)


async def test_partial_failure_is_charged_for_what_was_generated(bot_world: World) -> None:
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", partial_failures=1))
    await w.wanedit(w.alice, "two please", count=2)
    result = await w.result_message(w.alice)
    assert len(w.fd.files(result)) == 1
    assert "1 of 2" in embed_text(result)
    await settled_to(w, w.alice.id, 1)


async def test_quota_refusal_creates_no_task_and_says_why(bot_world: World) -> None:
    w = bot_world
    await w.bots[0].store.set_user_limit(w.guild.id, w.admin.id, w.alice.id, 2)
    ix = await w.wanedit(w.alice, "too many", count=3)
    await ix.wait_for(private_text)
    text = private_text(ix)
    assert "You have 2 images left today and this needs 3." in text
    assert re.search(r"Your allowance resets <t:\d+:R>\.", text) and "Nothing was charged" in text
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)


async def test_bad_inputs_are_refused_before_anything_is_spent(bot_world: World) -> None:
    w = bot_world
    gif = io.BytesIO()
    Image.new("RGB", (500, 500)).save(gif, "GIF")
    cases = [
        (w.upload(b"\x89PNG\r\n\x1a\nbroken", "broken.png"), "corrupt"),
        (w.upload(gif.getvalue(), "anim.gif", "image/gif"), "GIF"),
        (w.upload(png(100, 100), "tiny.png"), "384"),
        (w.upload(b"<svg></svg>", "logo.svg", "image/svg+xml"), "SVG"),
        (w.upload(b"\0" * (10 * 1024 * 1024 + 1), "huge.png"), "10 MB"),
    ]
    for upload, needle in cases:
        ix = await w.wanedit(w.alice, "edit this", [upload])
        await ix.wait_for(private_text)
        text = private_text(ix)
        assert needle in text and "Nothing was charged" in text, text
    ix = await w.wanedit(w.alice, "   ")
    await ix.wait_for(private_text)
    assert "prompt" in private_text(ix)
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)


async def test_failed_task_is_refunded_with_a_plain_message(bot_world: World) -> None:
    w = bot_world
    w.emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed"))
    ix = await w.wanedit(w.alice, "something Wan refuses")
    original = await ix.wait_original(lambda m: "No result" in embed_text(m))
    text = embed_text(original)
    assert "Nothing was charged" in text and "content filter" in text
    await settled_to(w, w.alice.id, 0)


async def test_cancel_while_waiting_in_our_queue(world: World) -> None:
    w = world
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.emu.hold("running")  # bob's job keeps the bot's only slot until the test is done
    await w.wanedit(w.bob, "slow one")
    await w.emu.wait_for_task_count(1, timeout=5)
    second = await w.wanedit(w.alice, "queued one")
    queued = await second.wait_original(lambda m: "Queued" in embed_text(m))
    assert "position #1" in embed_text(queued)
    button = queued["components"][0]["components"][0]
    assert button["custom_id"].startswith("wan:cancel:")
    click = await w.fd.click(w.channel, w.alice, queued, button["custom_id"])
    await click.wait_for(private_text)
    assert "Cancelled" in private_text(click)
    await settled_to(w, w.alice.id, 0)
    assert w.emu.created_count == 1  # the cancelled job never reached Wan
    w.emu.release("running")
    await w.result_message(w.bob)  # the job ahead is untouched by the cancel
    await settled_to(w, w.bob.id, 1)
    assert w.emu.created_count == 1 and w.results_for(w.alice) == []


async def test_cancel_while_pending_at_wan(world: World) -> None:
    w = world
    w.emu.config.max_running = 1
    await w.start_bot()
    w.emu.hold("running")  # bob's task keeps Wan's only slot, so alice's stays PENDING
    await w.wanedit(w.bob, "occupies the only slot")
    ix = await w.wanedit(w.alice, "waits pending")
    pending = await ix.wait_original(lambda m: "waiting for a free slot" in embed_text(m))
    button = pending["components"][0]["components"][0]
    # Someone else may not cancel it.
    stranger = await w.fd.click(w.channel, w.users[2], pending, button["custom_id"])
    await stranger.wait_for(private_text)
    assert "Only the member" in private_text(stranger)
    click = await w.fd.click(w.channel, w.alice, pending, button["custom_id"])
    await click.wait_for(private_text)
    await ix.wait_original(lambda m: "Cancelled" in embed_text(m))
    await settled_to(w, w.alice.id, 0)
    assert [t.status.value for t in w.emu.tasks.values()].count("CANCELED") == 1
    w.emu.release("running")
    await w.result_message(w.bob)
    await settled_to(w, w.bob.id, 1)
    assert w.results_for(w.alice) == []


async def test_throttled_create_is_retried_and_makes_one_task(bot_world: World) -> None:
    w = bot_world
    w.emu.add_fault(FaultRule(op="create", status=429, code="Throttling.RateQuota", times=2))
    await w.wanedit(w.alice, "after two 429s")
    await w.result_message(w.alice)
    assert w.emu.created_count == 1
    await settled_to(w, w.alice.id, 1)


async def test_restart_while_the_task_runs_delivers_and_charges_once(world: World) -> None:
    w = world
    first = await w.start_bot()
    w.emu.hold("running")  # the task is still running when the bot stops and starts again
    await w.wanedit(w.alice, "survive a restart")
    await wait_until(lambda: any(t.status.value == "RUNNING" for t in w.emu.tasks.values()))
    await w.stop_bot(first)
    assert w.results_for(w.alice) == []
    await w.start_bot()
    w.emu.release("running")
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    assert len(w.results_for(w.alice)) == 1
    assert w.emu.created_count == 1


async def test_twenty_users_at_once(bot_world: World) -> None:
    w = bot_world
    users = [w.add_member(f"user{i}") for i in range(20)]
    await asyncio.gather(*(w.wanedit(u, f"edit number {i}") for i, u in enumerate(users)))
    await wait_until(lambda: all(w.results_for(u) for u in users), timeout=60)
    for user in users:
        await settled_to(w, user.id, 1)
        assert len(w.results_for(user)) == 1
    assert w.emu.created_count == 20
    # Creates are paced to the account's 5 per second, so none was throttled.
    assert not [r for r in w.emu.request_log if r[3] == 429]


async def test_per_user_job_cap(world: World) -> None:
    w = world
    await w.start_bot(WAN_MAX_JOBS_PER_USER="1")
    w.emu.hold("running")  # the first job is surely in flight when the second arrives
    await w.wanedit(w.alice, "first")
    await w.emu.wait_for_task_count(1, timeout=5)
    ix = await w.wanedit(w.alice, "second")
    await ix.wait_for(private_text)
    assert "limit is 1" in private_text(ix)
    assert w.emu.created_count == 1
    w.emu.release("running")
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    assert w.emu.created_count == 1


async def test_no_thread_permission_falls_back_to_the_channel(bot_world: World) -> None:
    w = bot_world
    w.fd.set_bot_permissions(w.guild, deny=1 << 35)  # CREATE_PUBLIC_THREADS
    await w.wanedit(w.alice, "no threads here")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == w.channel.id


async def test_used_in_a_thread_delivers_in_that_thread(bot_world: World) -> None:
    w = bot_world
    thread = w.fd.add_thread(w.channel, "my thread", owner=w.alice)
    await w.wanedit(w.alice, "in a thread", channel=thread)
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == thread.id


async def test_used_in_a_dm(bot_world: World) -> None:
    w = bot_world
    dm = w.fd.dm_channel(w.alice)
    files = [w.upload()]
    ix = await w.fd.slash(None, dm, w.alice, "wanedit", {"prompt": "in private", "image": files[0]})
    await ix.wait_response()
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == dm.id
    await settled_to(w, w.alice.id, 1, scope=0)


async def test_big_result_is_reencoded_to_fit_the_upload_limit(world: World) -> None:
    w = world
    guild = w.fd.add_guild("Small uploads", owner=w.admin, upload_limit=30_000)
    channel = w.fd.add_text_channel(guild, "general")
    w.fd.add_member(guild, w.alice, permissions=0)
    await w.start_bot()
    noisy = Image.effect_noise((800, 800), 100).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "PNG")
    await w.wanedit(w.alice, "keep it", [out.getvalue()], channel=channel, guild=guild)
    result = await w.result_message(w.alice)
    ((name, data),) = w.fd.files(result)
    assert len(data) <= 30_000 and name.endswith(".webp")


async def test_delivery_after_the_interaction_token_expired(bot_world: World) -> None:
    """A job that outlives its interaction token is still delivered and charged once, and the bot
    never calls the webhook with the dead token (Discord answers those with 401 / 50027)."""
    w = bot_world
    w.fd.interaction_token_ttl = 3.0  # Discord's 15 minutes, shortened; the id is dated to match
    w.emu.hold("running")
    ix = await w.wanedit(w.alice, "long job")
    await w.emu.wait_for_task_count(1, timeout=5)
    await w.fd.wait_until(lambda: not ix.token_alive, timeout=10)
    w.emu.release("running")
    result = await w.result_message(w.alice)
    assert len(w.fd.files(result)) == 1
    await settled_to(w, w.alice.id, 1)
    assert ix.dead_token_calls == 0


async def test_commands_sync_only_when_changed(world: World) -> None:
    w = world
    first = await w.start_bot()
    assert w.fd.command_sync_count == 1
    names = {c["name"] for c in w.fd.commands()}
    assert "wanedit" in names
    options = next(c for c in w.fd.commands() if c["name"] == "wanedit")["options"]
    assert [o["name"] for o in options] == [
        "prompt",
        "image",
        "image2",
        "image3",
        "negative_prompt",
        "count",
        "seed",
        "watermark",
        "prompt_extend",
        "aspect",
        "spoiler",
    ]
    await w.stop_bot(first)
    await w.start_bot()
    assert w.fd.command_sync_count == 1


async def test_intents_are_minimal_without_message_content(bot_world: World) -> None:
    w = bot_world
    intents = w.fd.identify_payloads[-1]["d"]["intents"]
    assert intents & (1 << 15) == 0  # no MESSAGE_CONTENT
    assert intents & (1 << 1) == 0  # no GUILD_MEMBERS
    assert w.bots[0].invite_url and "applications.commands" in w.bots[0].invite_url


async def test_task_expired_during_a_restart_is_refunded_with_a_message(world: World) -> None:
    w = world
    first = await w.start_bot()
    w.emu.hold("running")
    ix = await w.wanedit(w.alice, "outlives its task id")
    await wait_until(lambda: any(t.status.value == "RUNNING" for t in w.emu.tasks.values()))
    await w.stop_bot(first)
    w.emu.config.task_ttl_seconds = 0.0  # every task id is now past its 24 hours
    await w.start_bot()
    original = await ix.wait_original(lambda m: "No result" in embed_text(m))
    assert "24 hours" in embed_text(original) and "Nothing was charged" in embed_text(original)
    await settled_to(w, w.alice.id, 0)
    assert w.results_for(w.alice) == []


async def test_unexpected_error_is_logged_with_a_reference_and_told_privately(
    bot_world: World, caplog
) -> None:
    w = bot_world
    # The bot cannot read back its own deferred response: an error nobody planned for.
    w.fd.inject_failure(
        "GET",
        r"/webhooks/\d+/[^/]+/messages/@original",
        403,
        {"message": "Missing Access", "code": 50001},
    )
    ix = await w.wanedit(w.alice, "meets a bug")
    await ix.wait_for(private_text)
    text = private_text(ix)
    assert "Something went wrong on our side (ref " in text and "Nothing was charged" in text
    reference = text.split("(ref ")[1].split(")")[0]
    logged = [r for r in caplog.records if r.levelname == "ERROR" and reference in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert w.emu.created_count == 0
    assert await usage(w, w.alice.id) == (0, 0)


async def test_token_and_key_never_reach_logs_or_messages(bot_world: World, caplog) -> None:
    w = bot_world
    caplog.set_level("DEBUG")
    await w.wanedit(w.alice, "one that works")
    await w.result_message(w.alice)
    w.emu.add_fault(FaultRule(op="task", task_code="InvalidApiKey"))
    ix = await w.wanedit(w.bob, "one that fails")
    await ix.wait_original(lambda m: "No result" in embed_text(m))
    secrets = [w.fd.token, API_KEY]
    for record in caplog.records:
        rendered = record.getMessage()
        assert not any(s in rendered for s in secrets), rendered
    assert not any(s in caplog.text for s in secrets)
    everything = [m for c in [w.channel, *w.fd.threads] for m in w.fd.messages(c)]
    assert everything and not any(s in str(m) for m in everything for s in secrets)


async def test_message_content_intent_is_asked_for_only_when_enabled(tmp_path, emulator) -> None:
    w = await make_world(
        tmp_path, emulator=emulator, application_flags=GATEWAY_MESSAGE_CONTENT_LIMITED
    )
    try:
        bot = await w.start_bot()
        assert bot.message_content
        assert w.fd.identify_payloads[-1]["d"]["intents"] & (1 << 15)
    finally:
        await w.close()
        await w.fd.close()


async def test_holds_left_without_a_job_are_returned_at_start(world: World) -> None:
    w = world
    # A crash between reserving and writing the job row leaves a hold with no job; a start
    # returns it once it is older than a live process's reserve-then-store could be.
    reserved_at = datetime.now(UTC) - ORPHAN_MARGIN - timedelta(minutes=1)
    store = await open_store(f"sqlite:///{w.db_path}", clock=lambda: reserved_at)
    await store.reserve(w.guild.id, w.alice.id, 3)
    await store.close()
    await w.start_bot()
    assert await usage(w, w.alice.id) == (0, 0)


async def test_deleted_response_message_still_gets_the_result_in_the_channel(
    bot_world: World,
) -> None:
    w = bot_world
    w.emu.hold("running")  # the message is deleted while the task runs
    ix = await w.wanedit(w.alice, "someone deletes my message")
    original = await ix.wait_original(lambda m: "Queued" in embed_text(m) or "Wan" in embed_text(m))
    await w.fd.delete_user_message(original["id"])
    w.emu.release("running")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == w.channel.id
    await settled_to(w, w.alice.id, 1)


async def test_thread_closed_to_the_bot_falls_back_to_its_channel(bot_world: World) -> None:
    w = bot_world
    thread = w.fd.add_thread(w.channel, "locked soon", owner=w.alice)
    w.emu.hold("running")  # the thread closes while the task runs
    await w.wanedit(w.alice, "in a thread that closes", channel=thread)
    await w.emu.wait_for_task_count(1, timeout=5)
    w.fd.set_bot_permissions(w.guild, thread, deny=1 << 38)  # SEND_MESSAGES_IN_THREADS
    w.emu.release("running")
    result = await w.result_message(w.alice)
    assert int(result["channel_id"]) == w.channel.id
    await settled_to(w, w.alice.id, 1)


async def test_create_answer_lost_is_found_and_never_sent_again(world: World) -> None:
    """A create whose answer is lost is not sent again: the task it made is found in Wan's task
    list and delivered (tests/e2e/test_promises_reconcile.py has the ambiguous and refunded cases)."""
    w = world
    await w.start_bot(runner_options={"reconcile_margin": 0.5})
    w.emu.add_fault(FaultRule(op="create", drop=True))
    await w.wanedit(w.alice, "the answer gets lost")
    await w.result_message(w.alice)
    await settled_to(w, w.alice.id, 1)
    assert w.emu.created_count == 1  # Wan made it once; the bot did not try again


async def cut_short_delivery(w: World, count: int, images_posted: int) -> tuple[int, int]:
    """A job whose result was (partly) posted, but the bot died before recording it, later than
    Discord's nonce window: its row still says DELIVERING. Restart; return (job id, thread id)."""
    first = await w.start_bot()
    await w.wanedit(w.alice, "first, to get a thread and a finished task", count=count)
    posted = await w.result_message(w.alice)
    await settled_to(w, w.alice.id, count)
    store = first.store
    done = await store.job_for_message(int(posted["id"]))
    assert done is not None and done.task_id is not None
    reservation = await store.reserve(w.guild.id, w.alice.id, count)
    job = await store.create_job(
        scope=w.guild.id,
        guild_id=w.guild.id,
        channel_id=w.channel.id,
        thread_id=int(posted["channel_id"]),
        user_id=w.alice.id,
        source="slash",
        prompt="cut short",
        options={"count": count, "seed": 7},
        inputs=[],
        state="queued",
        reservation_id=reservation.id,
    )
    await store.set_task_id(job.id, done.task_id)
    await store.update_job(job.id, state="delivering")
    thread = first.get_channel(int(posted["channel_id"]))
    embed = discord.Embed(description="cut short").set_footer(text=f"Job #{job.id}")
    files = [discord.File(io.BytesIO(png()), f"r{i}.png") for i in range(images_posted)]
    await thread.send(f"<@{w.alice.id}>", embed=embed, files=files)
    await w.stop_bot(first)
    second = await w.start_bot()

    async def finished() -> bool:
        fresh = await second.store.get_job(job.id)
        return fresh is not None and fresh.state == "done"

    await wait_until(finished)
    return job.id, thread.id


async def test_redelivery_after_a_restart_finds_the_posted_result(world: World) -> None:
    w = world
    job_id, thread_id = await cut_short_delivery(w, count=1, images_posted=1)
    again = [m for m in w.fd.messages(thread_id) if f"Job #{job_id}" in embed_text(m)]
    assert len(again) == 1
    await settled_to(w, w.alice.id, 2)


async def test_redelivery_replaces_a_result_posted_only_in_part(world: World) -> None:
    w = world
    job_id, thread_id = await cut_short_delivery(w, count=2, images_posted=1)
    again = [m for m in w.fd.messages(thread_id) if f"Job #{job_id}" in embed_text(m)]
    assert len(again) == 1 and len(again[0]["attachments"]) == 2
    await settled_to(w, w.alice.id, 4)


async def test_shutdown_lets_a_create_under_way_finish(world: World, caplog) -> None:
    w = world
    caplog.set_level("INFO", logger="bot.jobs")
    create_seen = asyncio.Event()
    release = asyncio.Event()

    async def slow_proxy(request: web.Request) -> web.StreamResponse:
        # DashScope in front of the emulator, slow to answer creates: the bot stops meanwhile.
        body = await request.read()
        if request.method == "POST" and request.path.endswith("/image-synthesis"):
            create_seen.set()
            await release.wait()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                w.emu.base_url.rsplit("/api/v1", 1)[0] + request.path_qs,
                headers=headers,
                data=body,
            ) as upstream,
        ):
            payload = await upstream.read()
            return web.Response(
                status=upstream.status, body=payload, content_type=upstream.content_type
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow_proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        w.emu.add_fault(FaultRule(op="task", running_seconds=0.5))
        first = await w.start_bot(DASHSCOPE_BASE_URL=f"http://127.0.0.1:{port}/api/v1")
        await w.wanedit(w.alice, "created while the bot stops")
        await asyncio.wait_for(create_seen.wait(), 10)
        stopping = asyncio.create_task(w.stop_bot(first))
        # The bot is stopping and waits for the create under way: only now does Wan answer.
        await wait_until(
            lambda: "waiting for 1 create or delivery call(s) to finish" in caplog.text
        )
        release.set()
        await stopping
        assert w.emu.created_count == 1
        await w.start_bot()
        await w.result_message(w.alice)
        await settled_to(w, w.alice.id, 1)
        assert len(w.results_for(w.alice)) == 1 and w.emu.created_count == 1
    finally:
        await runner.cleanup()
