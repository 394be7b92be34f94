"""Discord's per-route rate limits where a bot meets them: reactions and message edits.

Discord does not publish its numbers; it tells each client in the ``X-RateLimit-*`` headers of
every response on a limited route, and answers a request over the limit with 429 and a JSON
body ``{"message": "You are being rate limited.", "retry_after": <seconds>, "global": false}``
(https://discord.com/developers/docs/topics/rate-limits). The numbers below are the ones bots
observe: adding or removing reactions about 1 per 0.25 s per channel, editing messages about
5 per 5 s per channel (an interaction's messages: per token). discord.py honours both the headers (it waits before a bucket runs
dry) and the 429 (it sleeps ``retry_after`` and tries again, up to 5 times).

``DISCORD_RATE_LIMITS`` are those numbers, for tests about pacing. The fake's default,
``GENEROUS_RATE_LIMITS``, sends the same headers and 429s but allows far more, so the rest of
the suite is not slowed down; ``RateLimits(enabled=False)`` switches limiting off.
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from dataclasses import dataclass, field

from aiohttp import web

from .rest_common import json_response


@dataclass(frozen=True)
class Limit:
    requests: int
    per: float  # seconds


@dataclass(frozen=True)
class RateLimits:
    enabled: bool = True
    reactions: Limit = Limit(1, 0.25)  # per channel: PUT/DELETE .../reactions/...
    # per channel: PATCH /channels/{c}/messages/{m}; per token: PATCH /webhooks/{a}/{t}/messages/{m}
    message_edits: Limit = Limit(5, 5.0)


DISCORD_RATE_LIMITS = RateLimits()
GENEROUS_RATE_LIMITS = RateLimits(reactions=Limit(50, 1.0), message_edits=Limit(50, 1.0))


@dataclass
class _Window:
    reset_at: float  # monotonic
    used: int = 0


@dataclass
class RateLimiter:
    """Fixed windows per (bucket, channel), as Discord's buckets behave: the first request opens
    a window of ``per`` seconds that admits ``requests`` requests."""

    limits: RateLimits = GENEROUS_RATE_LIMITS
    limited: list[tuple[str, int]] = field(default_factory=list)  # (bucket, channel) of each 429
    # Monotonic times of the requests each bucket let through, for assertions about pacing.
    admitted: dict[str, list[float]] = field(default_factory=dict)
    _windows: dict[tuple[str, int], _Window] = field(default_factory=dict)

    @staticmethod
    def bucket_of(request: web.Request) -> tuple[str, int] | None:
        """The limited bucket a matched request falls in, with what it is counted per (a channel,
        or for an interaction's messages its token); None if unlimited."""
        info = request.match_info
        template = info.route.resource.canonical if info.route.resource else ""
        edit = request.method == "PATCH" and template.endswith("/messages/{message_id}")
        if "token" in info:
            # Webhook routes are limited per webhook (here: per interaction token), as Discord's
            # buckets for them are keyed by the webhook's id and token.
            return ("message_edits", zlib.crc32(info["token"].encode())) if edit else None
        if "channel_id" not in info or not info["channel_id"].isdigit():
            return None
        channel = int(info["channel_id"])
        if "/reactions/" in template and request.method in ("PUT", "DELETE"):
            return "reactions", channel
        return ("message_edits", channel) if edit else None

    def admit(self, request: web.Request) -> tuple[web.Response | None, dict[str, str]]:
        """(a 429 to answer instead, or None) and the headers for the response."""
        bucket = self.bucket_of(request)
        if bucket is None or not self.limits.enabled:
            return None, {}
        limit: Limit = getattr(self.limits, bucket[0])
        now = time.monotonic()
        window = self._windows.get(bucket)
        if window is None or now >= window.reset_at:
            window = self._windows[bucket] = _Window(reset_at=now + limit.per)
        reset_after = max(0.0, window.reset_at - now)
        headers = {
            "X-RateLimit-Limit": str(limit.requests),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(bucket[0].encode()).hexdigest()[:16],
        }
        if window.used >= limit.requests:
            self.limited.append(bucket)
            headers.update(
                {
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Scope": "user",
                    "Retry-After": str(max(1, math.ceil(reset_after))),
                    # discord.py takes a 429 without Via for a Cloudflare ban and gives up.
                    "Via": "1.1 google",
                }
            )
            body = {
                "message": "You are being rate limited.",
                "retry_after": math.ceil(reset_after * 1000) / 1000,
                "global": False,
            }
            response = json_response(body, 429)
            response.headers.update(headers)
            return response, headers
        window.used += 1
        self.admitted.setdefault(bucket[0], []).append(now)
        headers["X-RateLimit-Remaining"] = str(limit.requests - window.used)
        return None, headers
