"""The Prometheus endpoint, scraped over loopback while the bot works: the numbers are the bot's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import World


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_until(
    port: int, wanted: Callable[[Samples], bool], timeout: float = 10.0
) -> Samples:
    """Scrape until the numbers show what the test waits for (the bot settles in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = await scrape(port)
        if wanted(seen) or asyncio.get_running_loop().time() > deadline:
            return seen
        await asyncio.sleep(0.02)


async def test_metrics_count_what_the_bot_did(world: World) -> None:
    """Jobs by state, images generated, refusals by reason, task durations, queue and in-flight
    gauges and Discord's error answers: each moves with what really happened."""
    w = world
    port = free_port()
    bot = await w.start_bot(WANBOT_METRICS_PORT=str(port))
    before = await scrape(port)
    assert before[("wanbot_jobs_submitted_total", ())] == 0
    assert before[("wanbot_queue_length", ())] == 0

    since = w.fd.mark()
    await w.wanedit(w.alice, "make it blue")
    await w.result_message(w.alice, since=since)
    await bot.store.set_user_limit(w.guild.id, w.admin.id, w.bob.id, 0)
    await w.wanedit(w.bob, "blocked")

    seen = await scrape_until(
        port,
        lambda m: (
            m.get(("wanbot_jobs_total", (("state", "done"),))) == 1
            and m.get(("wanbot_requests_refused_total", (("reason", "blocked"),))) == 1
            # The job's slot is given back just after it is counted done.
            and m.get(("wanbot_wan_tasks_in_flight", ())) == 0
        ),
    )
    assert seen[("wanbot_jobs_submitted_total", ())] == 1
    assert seen[("wanbot_images_generated_total", ())] == 1
    assert seen[("wanbot_wan_task_duration_seconds_count", ())] == 1
    assert seen[("wanbot_wan_detection_lag_seconds_count", ())] == 1
    assert seen[("wanbot_wan_tasks_in_flight", ())] == 0
    refusals = {k[1]: v for k, v in seen.items() if k[0] == "wanbot_requests_refused_total" and v}
    assert refusals == {(("reason", "blocked"),): 1}
    assert seen[("wanbot_requests_refused_total", (("reason", "paused"),))] == 0
    assert seen[("wanbot_images_refused_total", (("reason", "blocked"),))] == 1
    assert seen[("wanbot_gateway_latency_seconds", ())] >= 0
    # The request waited for its slot, and was delivered with the bot's own share of the wait seen.
    assert seen[("wanbot_queue_wait_seconds_count", ())] == 1
    assert seen[("wanbot_added_latency_seconds_count", ())] == 1
    assert seen[("wanbot_wan_creates_total", (("outcome", "created"),))] == 1
    assert seen[("wanbot_wan_creates_total", (("outcome", "failed"),))] == 0
    assert seen[("wanbot_wan_slots", ())] == bot.settings.max_concurrent_tasks
    assert seen[("wanbot_wan_queries_total", ())] >= 1  # at least the poll that saw it end
    assert seen[("wanbot_wan_query_budget", ())] == bot.settings.query_qps
    assert seen[("wanbot_job_runner_alive", ())] == 1
    # Today's images against the caps, read from the store at the scrape: alice's one image.
    assert seen[("wanbot_images_today", (("scope", "bot"),))] == 1
    assert seen[("wanbot_images_today", (("scope", "busiest_server"),))] == 1
