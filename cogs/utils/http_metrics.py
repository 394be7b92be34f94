"""Counting Discord's error answers: an aiohttp trace on discord.py's own HTTP session (`http_trace`)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

from bot.metrics import Metrics


def discord_http_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """A trace that counts every Discord REST answer of 400 or more by status (429s included)."""
    trace = aiohttp.TraceConfig()

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        if params.response.status >= 400:
            metrics.discord_http_errors.labels(str(params.response.status)).inc()

    trace.on_request_end.append(on_request_end)
    return trace
