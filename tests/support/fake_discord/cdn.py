"""The fake CDN: attachment bytes behind signed URLs that expire (``?ex=&is=&hm=``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import logging
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .snowflake import SnowflakeFactory

log = logging.getLogger(__name__)


def sanitize_filename(name: str) -> str:
    """Discord replaces anything unusual in an uploaded file's name with an underscore."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name.strip()) or "unknown"
    return cleaned[:1024]


def image_size(data: bytes) -> tuple[int | None, int | None]:
    """Width and height if ``data`` is an image Pillow can read the header of."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None, None


@dataclass(eq=False)
class CdnFile:
    """A file the CDN serves. ``folder`` is ``attachments/<channel>`` or
    ``ephemeral-attachments/<application>``, as in real URLs."""

    id: int
    filename: str
    data: bytes = field(repr=False)
    content_type: str | None
    width: int | None
    height: int | None
    folder: str
    description: str | None = None
    ephemeral: bool = False
    # Served as a download that never finishes: its headers and half its bytes, then nothing (a
    # CDN edge that stalls); the client must give up on its own.
    stalls: bool = False
    _cdn: Cdn | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def url(self) -> str:
        """A freshly signed URL (valid for the CDN's ``url_ttl``)."""
        assert self._cdn is not None
        return self._cdn.signed_url(self)

    def payload(self) -> dict[str, Any]:
        """The attachment object of a message or of ``resolved.attachments``."""
        assert self._cdn is not None
        return self._cdn.attachment_payload(self)


class Cdn:
    def __init__(self, ids: SnowflakeFactory, url_ttl: float) -> None:
        self._ids = ids
        self._secret = secrets.token_bytes(16)
        self.url_ttl = url_ttl
        self.clock_offset = 0.0
        self.base = ""  # "http://127.0.0.1:PORT", set when the server starts
        self.files: dict[int, CdnFile] = {}
        self.stalled = 0  # downloads of stalling files under way or given up by the client

    def now(self) -> float:
        return time.time() + self.clock_offset

    def store(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = None,
        *,
        folder: str,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> CdnFile:
        name = sanitize_filename(filename)
        if content_type is None:
            content_type = mimetypes.guess_type(name)[0]
        width = height = None
        if content_type is not None and content_type.startswith("image/"):
            width, height = image_size(data)
        f = CdnFile(
            id=self._ids.next(),
            filename=name,
            data=bytes(data),
            content_type=content_type,
            width=width,
            height=height,
            folder=folder,
            description=description,
            ephemeral=ephemeral,
            _cdn=self,
        )
        self.files[f.id] = f
        return f

    def copy(self, source: CdnFile, folder: str, *, ephemeral: bool = False) -> CdnFile:
        """The same bytes as a new attachment (a user uploading a file again)."""
        copied = self.store(
            source.data,
            source.filename,
            source.content_type,
            folder=folder,
            description=source.description,
            ephemeral=ephemeral,
        )
        copied.stalls = source.stalls
        return copied

    def _path(self, f: CdnFile) -> str:
        return f"/{f.folder}/{f.id}/{f.filename}"

    def _sign(self, path: str, ex: str, issued: str) -> str:
        msg = f"{path}|{ex}|{issued}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, f: CdnFile, host: str = "cdn") -> str:
        now = int(self.now())
        ex, issued = f"{now + int(self.url_ttl):x}", f"{now:x}"
        path = self._path(f)
        return f"{self.base}/{host}{path}?ex={ex}&is={issued}&hm={self._sign(path, ex, issued)}&"

    def attachment_payload(self, f: CdnFile) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(f.id),
            "filename": f.filename,
            "size": f.size,
            "url": self.signed_url(f, "cdn"),
            "proxy_url": self.signed_url(f, "media"),
        }
        if f.content_type is not None:
            data["content_type"] = f.content_type
        if f.width is not None:
            data["width"], data["height"] = f.width, f.height
            data["placeholder_version"] = 1
        if f.description is not None:
            data["description"] = f.description
        if f.ephemeral:
            data["ephemeral"] = True
        return data

    def refresh(self, url: str) -> str:
        """``POST /attachments/refresh-urls`` for one URL: the same file signed anew (same host,
        fresh ``ex``/``is``/``hm``), whatever the old signature's age; a URL that names no file the
        CDN still has (deleted with ``forget``, or not ours) comes back unchanged."""
        match = re.fullmatch(
            r".*/(cdn|media)(/(?:ephemeral-)?attachments/\d+/(\d+)/[^/?]+)(?:\?.*)?", url
        )
        f = self.files.get(int(match.group(3))) if match else None
        if match is None or f is None or self._path(f) != match.group(2):
            return url
        return self.signed_url(f, match.group(1))

    def forget(self, f: CdnFile) -> None:
        """Remove a file from the CDN (its URLs 404 and can no longer be refreshed)."""
        self.files.pop(f.id, None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /cdn/...`` and ``GET /media/...``: the bytes, or 404 once expired or forged."""
        path = "/" + request.match_info["path"]
        q = request.query
        ex, issued, hm = q.get("ex", ""), q.get("is", ""), q.get("hm", "")
        match = re.fullmatch(r"/(?:ephemeral-)?attachments/\d+/(\d+)/([^/]+)", path)
        f = self.files.get(int(match.group(1))) if match else None
        if f is None or self._path(f) != path:
            return web.Response(status=404, text="Not Found")
        if not hmac.compare_digest(self._sign(path, ex, issued), hm):
            log.info("fake CDN: bad signature for %s", path)
            return web.Response(status=404, text="This content is no longer available.")
        try:
            expired = int(ex, 16) < self.now()
        except ValueError:
            expired = True
        if expired:
            return web.Response(status=404, text="This content is no longer available.")
        if f.stalls:
            return await self._stall(request, f)
        return web.Response(body=f.data, content_type=f.content_type or "application/octet-stream")

    async def _stall(self, request: web.Request, f: CdnFile) -> web.StreamResponse:
        self.stalled += 1
        response = web.StreamResponse(
            headers={"Content-Type": f.content_type or "application/octet-stream"}
        )
        response.content_length = len(f.data)
        await response.prepare(request)
        await response.write(f.data[: len(f.data) // 2])
        # Until the client hangs up: aiohttp neither cancels a handler when it does nor offers an
        # event for it, so the transport is looked at.
        while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return response
