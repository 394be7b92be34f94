"""Getting the bytes of each input image: http(s) download, `data:` URI, or an uploaded `oss://` object."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re

import aiohttp

from bot.sandbox.images import MAX_BYTES
from bot.sandbox.upload import UploadStore

log = logging.getLogger(__name__)

DOWNLOAD_FAILED = "Unable to download the media resource during the data inspection process."
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*?;base64,(?P<data>.*)$", re.S)


class InputError(Exception):
    """An input that can't be obtained; fails the task with `code` and `str()` as the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _download(http: aiohttp.ClientSession, url: str, index: int) -> bytes:
    try:
        async with http.get(url) as resp:
            if resp.status != 200:
                log.info("input image %d: HTTP %d from its URL", index, resp.status)
                raise InputError("InvalidParameter.DataInspection", DOWNLOAD_FAILED)
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise InputError(
                        "InvalidParameter",
                        f"Input image {index} is larger than 10 MB; the limit is 10 MB.",
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.info("input image %d: download failed: %s", index, type(exc).__name__)
        raise InputError("InvalidParameter.DataInspection", DOWNLOAD_FAILED) from None


def _decode_data_uri(uri: str, index: int) -> bytes:
    match = _DATA_URI.match(uri)
    if match is None or not match.group("mime").lower().startswith("image/"):
        raise InputError(
            "InvalidParameter.DataInspection",
            f"Input image {index}: the data URI is malformed; expected data:image/{{type}};base64,{{data}}.",
        )
    try:
        # Whitespace split off in C: a regex over ~13 MB of base64 held the GIL for a quarter
        # second per create, and with it the event loop of the process serving the emulator.
        return base64.b64decode("".join(match.group("data").split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            "InvalidParameter.DataInspection", f"Input image {index}: the base64 data is invalid."
        ) from None


async def load_input(
    image: str,
    index: int,
    model: str,
    http: aiohttp.ClientSession | None,
    uploads: UploadStore,
) -> bytes | None:
    """Bytes of input `index` (1-based). None for an http(s) URL when fetching is switched off."""
    if image.startswith("data:"):
        # A data URI can carry ~13 MB of base64: decode it off the event loop.
        return await asyncio.to_thread(_decode_data_uri, image, index)
    if image.startswith("oss://"):
        data = uploads.resolve(image, model)
        if data is None:
            raise InputError("InvalidParameter.DataInspection", DOWNLOAD_FAILED)
        return data
    if http is None:
        return None
    return await _download(http, image, index)
