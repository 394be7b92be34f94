"""Prometheus metrics (`WANBOT_METRICS_PORT`): what the bot counts, and the endpoint that serves them.

Each bot has its own registry (tests run several bots in one process); the endpoint is an aiohttp
server on the bot's own event loop, so no thread reads the counters while they change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

# A `_created` timestamp series beside every counter doubles what a scraper stores for nothing here.
disable_created_metrics()

# Wan tasks take 30-120 s for real (seconds for the emulator).
TASK_BUCKETS = (1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
# How long after a task ended at Wan the bot noticed it.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30)


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

    def refused(self, reason: str, images: int) -> None:
        self.refusals.labels(reason).inc()
        self.images_refused.labels(reason).inc(images)

    def watch(
        self,
        *,
        queue_length: Callable[[], float],
        tasks_in_flight: Callable[[], float],
    ) -> None:
        """Gauges read at scrape time, from the runner's own state."""
        self.queue_length.set_function(queue_length)
        self.tasks_in_flight.set_function(tasks_in_flight)

    def watch_latency(self, latency: Callable[[], float]) -> None:
        def finite() -> float:
            value = latency()
            return value if math.isfinite(value) else math.nan

        self.gateway_latency.set_function(finite)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """`GET /metrics` on `host:port` (port 0: a free one, see `port`)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
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
        response = web.Response(body=self.metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
