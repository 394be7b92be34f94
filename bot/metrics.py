"""Prometheus metrics (`WANBOT_METRICS_PORT`): what the bot counts, and the endpoint that serves them.

Each bot has its own registry (tests run several bots in one process); the endpoint is an aiohttp
server on the bot's own event loop, so no thread reads the counters while they change. Labels take
a few known values only (states, reasons, outcomes, HTTP statuses, Wan's error codes): never a
member's or a server's id. deploy/grafana and deploy/prometheus use these names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bot.store import Store, StoreError
from bot.store.models import REFUSAL_REASONS

log = logging.getLogger(__name__)

# A `_created` timestamp series beside every counter doubles what a scraper stores for nothing here.
disable_created_metrics()

# Wan tasks take 30-120 s for real (seconds for the emulator).
TASK_BUCKETS = (1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
# How long after a task ended at Wan the bot noticed it.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30)
# From a request to its Wan slot: nothing when slots are free, minutes behind a long queue.
WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# What the bot adds to Wan's own time: a few seconds when all is well.
ADDED_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)

# The bounded label values, set to 0 from the start so a dashboard shows 0 rather than no data.
FINAL_STATES = ("done", "failed", "cancelled")
CREATE_OUTCOMES = ("created", "rejected", "failed", "unknown")
STORE_ERROR_PLACES = ("dispatch", "command", "heartbeat", "metrics")
# How long a scrape waits for the store's numbers before serving the rest without them.
REFRESH_TIMEOUT = 5.0


class Metrics:
    """The bot's counters, gauges and histograms, named as Prometheus suggests."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.jobs = Counter(
            "wanbot_jobs", "Jobs that ended, by final state.", ["state"], registry=r
        )
        self.jobs_submitted = Counter(
            "wanbot_jobs_submitted", "Jobs accepted into the queue.", registry=r
        )
        self.queue_length = Gauge("wanbot_queue_length", "Jobs waiting for a Wan slot.", registry=r)
        self.tasks_in_flight = Gauge(
            "wanbot_wan_tasks_in_flight", "Wan tasks created and not yet ended.", registry=r
        )
        self.task_duration = Histogram(
            "wanbot_wan_task_duration_seconds",
            "From a task's submission to its end, as Wan reports them.",
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.detection_lag = Histogram(
            "wanbot_wan_detection_lag_seconds",
            "From a task's end at Wan to the bot noticing it.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.images_generated = Counter(
            "wanbot_images_generated", "Images delivered to members.", registry=r
        )
        self.refusals = Counter(
            "wanbot_requests_refused",
            "Requests refused before anything was spent, by reason (the limit hit).",
            ["reason"],
            registry=r,
        )
        self.images_refused = Counter(
            "wanbot_images_refused",
            "Images asked for in refused requests, by reason.",
            ["reason"],
            registry=r,
        )
        self.wan_errors = Counter(
            "wanbot_wan_errors",
            "Errors from Wan (creates, polls, failed tasks), by code.",
            ["code"],
            registry=r,
        )
        self.discord_http_errors = Counter(
            "wanbot_discord_http_errors",
            "Discord REST answers with an error status, by status.",
            ["status"],
            registry=r,
        )
        self.gateway_latency = Gauge(
            "wanbot_gateway_latency_seconds", "The gateway heartbeat's round trip.", registry=r
        )
        self.queue_wait = Histogram(
            "wanbot_queue_wait_seconds",
            "From a job's request to the Wan slot its create call took.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.added_latency = Histogram(
            "wanbot_added_latency_seconds",
            "From a request to its delivered result, less the time Wan worked on it (submit to "
            "end, as Wan reports them): the queue, the create call, noticing the end, download "
            "and posting.",
            buckets=ADDED_BUCKETS,
            registry=r,
        )
        self.wan_slots = Gauge(
            "wanbot_wan_slots", "Wan tasks the bot runs at once at most (per account).", registry=r
        )
        self.wan_creates = Counter(
            "wanbot_wan_creates",
            "Create calls, by outcome: created; rejected (Wan refused the request itself: its "
            "input or content); failed (the account, the service or the network); unknown (sent, "
            "no answer).",
            ["outcome"],
            registry=r,
        )
        self.store_errors = Counter(
            "wanbot_store_errors",
            "Database errors the bot met and carried on after, by where they surfaced.",
            ["where"],
            registry=r,
        )
        self.heartbeat = Gauge(
            "wanbot_heartbeat_timestamp_seconds",
            "When this process last wrote its heartbeat to the database (Unix time).",
            registry=r,
        )
        self.runner_alive = Gauge(
            "wanbot_job_runner_alive", "1 while the job runner dispatches jobs.", registry=r
        )
        self.images_today = Gauge(
            "wanbot_images_today",
            "Images counted today (UTC; charged and held by jobs in flight) for the whole bot "
            "(scope=bot), and for the server charged the most today (scope=busiest_server).",
            ["scope"],
            registry=r,
        )
        self.daily_cap = Gauge(
            "wanbot_daily_cap_images",
            "The daily caps in force: the bot-wide cap (cap=bot) and the most one server may use "
            "(cap=server_ceiling, WAN_SERVER_DAILY_LIMIT); absent when there is none.",
            ["cap"],
            registry=r,
        )
        self._queries = _Queries()
        r.register(self._queries)
        ProcessCollector(registry=r)
        for state in FINAL_STATES:
            self.jobs.labels(state)
        for outcome in CREATE_OUTCOMES:
            self.wan_creates.labels(outcome)
        for where in STORE_ERROR_PLACES:
            self.store_errors.labels(where)
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason)
            self.images_refused.labels(reason)

    def refused(self, reason: str, images: int) -> None:
        self.refusals.labels(reason).inc()
        self.images_refused.labels(reason).inc(images)

    def watch(
        self,
        *,
        queue_length: Callable[[], float],
        tasks_in_flight: Callable[[], float],
        runner_alive: Callable[[], bool] = lambda: True,
        wan_slots: int | None = None,
    ) -> None:
        """Gauges read at scrape time, from the runner's own state."""
        self.queue_length.set_function(queue_length)
        self.tasks_in_flight.set_function(tasks_in_flight)
        self.runner_alive.set_function(lambda: float(runner_alive()))
        if wan_slots is not None:
            self.wan_slots.set(wan_slots)

    def watch_queries(self, granted: Callable[[], float], budget: Callable[[], float]) -> None:
        """The Wan client's query limiter: requests it let through, and its rate."""
        self._queries.granted, self._queries.budget = granted, budget

    def watch_latency(self, latency: Callable[[], float]) -> None:
        def finite() -> float:
            value = latency()
            return value if math.isfinite(value) else math.nan

        self.gateway_latency.set_function(finite)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def refresh_usage(self, store: Store, server_ceiling: int | None) -> None:
        """Today's images against the caps, read from the store (the same for every process);
        `server_ceiling` is the owner's WAN_SERVER_DAILY_LIMIT (None: no ceiling)."""
        report = await store.usage_report(None, days=1, top=1)
        busiest = await store.busiest_scopes(days=1, top=1)
        self.images_today.labels("bot").set(report.global_used + report.global_held)
        self.images_today.labels("busiest_server").set(busiest[0][1] if busiest else 0)
        for cap, value in (
            ("bot", report.global_cap),
            ("server_ceiling", server_ceiling),
        ):
            if value is None:
                with contextlib.suppress(KeyError):  # no cap: no series, rather than a 0 cap
                    self.daily_cap.remove(cap)
            else:
                self.daily_cap.labels(cap).set(value)


class _Queries(Collector):
    """The query limiter's numbers, read when scraped (it counts them itself)."""

    def __init__(self) -> None:
        self.granted: Callable[[], float] = lambda: 0.0
        self.budget: Callable[[], float] | None = None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily(
            "wanbot_wan_queries",
            "Requests to Wan's task endpoints (status queries, cancels, lists): each takes a "
            "token from the account's query budget.",
            value=self.granted(),
        )
        budget = GaugeMetricFamily(
            "wanbot_wan_query_budget",
            "Task queries per second the account allows (WAN_QUERY_QPS), for every process.",
        )
        if self.budget is not None:
            budget.add_metric([], self.budget())
        yield budget


class MetricsServer:
    """`GET /metrics` on `host:port` (port 0: a free one, see `port`). `refresh`, when given, is
    awaited before each scrape (the numbers read from the store); if it fails or is slow, the
    scrape is served without them and the error counted."""

    def __init__(
        self,
        metrics: Metrics,
        host: str,
        port: int,
        *,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.refresh = refresh
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("metrics at http://%s:%d/metrics", self.host, self.port)

    async def _serve(self, request: web.Request) -> web.Response:
        if self.refresh is not None:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    await self.refresh()
            except (StoreError, TimeoutError) as err:
                self.metrics.store_errors.labels("metrics").inc()
                log.warning("metrics: today's usage could not be read: %s", err or "timed out")
            except Exception:
                # Whatever else went wrong, the rest is still served: a failed scrape would read
                # as a dead process.
                self.metrics.store_errors.labels("metrics").inc()
                log.exception("metrics: today's usage could not be read")
        response = web.Response(body=self.metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
