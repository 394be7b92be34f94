"""The emulated result bucket: PNGs behind signed, expiring URLs (`/results/<token>.png?Expires=...`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from bot.sandbox.errors import oss_error_response

RESULTS_PATH = "/results"


@dataclass
class StoredResult:
    data: bytes
    expires_epoch: int  # the `Expires` in the URL
    expires_mono: float  # when it stops being served (monotonic clock, so tests can use tiny TTLs)


class ResultStore:
    def __init__(self, access_key_id: str) -> None:
        self._secret = secrets.token_bytes(16)
        self._access_key_id = access_key_id
        self._items: dict[str, StoredResult] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _sign(self, token: str, expires: int) -> str:
        return hmac.new(self._secret, f"{token}:{expires}".encode(), hashlib.sha1).hexdigest()[:28]

    def publish(self, data: bytes, ttl: float, origin: str) -> str:
        """Store one PNG and return its URL; it answers 403 AccessDenied after `ttl` seconds."""
        self._purge()
        token = secrets.token_hex(16)
        expires = int(time.time() + ttl) + 1
        self._items[token] = StoredResult(data, expires, time.monotonic() + ttl)
        return (
            f"{origin}{RESULTS_PATH}/{token}.png?Expires={expires}"
            f"&OSSAccessKeyId={self._access_key_id}&Signature={self._sign(token, expires)}"
        )

    def _purge(self) -> None:
        # Keep expired entries an hour past expiry so they answer 403 (expired) rather than 404 at once.
        cutoff = time.monotonic() - 3600.0
        for token in [t for t, item in self._items.items() if item.expires_mono < cutoff]:
            del self._items[token]

    def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        token = name.removesuffix(".png")
        item = self._items.get(token)
        if item is None or not name.endswith(".png"):
            return oss_error_response(404, "NoSuchKey", "The specified key does not exist.")
        expires = request.query.get("Expires", "")
        signature = request.query.get("Signature", "")
        if expires != str(item.expires_epoch) or not hmac.compare_digest(
            signature, self._sign(token, item.expires_epoch)
        ):
            return oss_error_response(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if time.monotonic() >= item.expires_mono:
            return oss_error_response(403, "AccessDenied", "Request has expired.")
        return web.Response(body=item.data, content_type="image/png")
