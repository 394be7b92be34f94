"""A create request's JSON body, streamed, so inline images never exist as one big string.

With the base64 transport a create carries up to three 10 MB images. Building the body the plain way
(data URI string, `json.dumps`, `.encode`) makes about five full copies, ~90 MB for three 4 MB
images, and blocks the event loop for a few hundred milliseconds per create (measured in
bench/e2e.py). Here the small JSON skeleton is dumped once and each inline image is base64-encoded a
slice at a time while aiohttp sends it; the length is known up front, so it goes out with an
ordinary Content-Length.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A multiple of 3, so the base64 of consecutive slices joins into the base64 of the whole.
SLICE = 3 * 64 * 1024
READ_SLICES = 4  # slices per read of an image on disk (one worker-thread hop per 768 KB)


@dataclass(frozen=True)
class InlineImage:
    """An image to send as `data:{mime};base64,...`, encoded only while the request is sent.

    Its bytes are `data`, or else the file `path` (a job's spooled input), read a slice at a time
    in a worker thread while the body goes out, so a create holds no image in memory."""

    mime: str
    data: bytes | None
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.path is None:
            raise ValueError("an inline image needs data or a path")

    @property
    def prefix(self) -> bytes:
        return f'"data:{self.mime};base64,'.encode("ascii")

    @property
    def size(self) -> int:
        """The image's bytes (the file's size for one on disk: it must not change until sent)."""
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.path.stat().st_size

    def __len__(self) -> int:
        # Opening quote and prefix, the base64 text, closing quote.
        return len(self.prefix) + 4 * math.ceil(self.size / 3) + 1

    def raw(self) -> bytes:
        """The whole image at once (blocking for one on disk; tests and small images)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def encoded(self) -> str:
        """The whole data URI as one string (for small images and tests)."""
        return f"data:{self.mime};base64,{base64.b64encode(self.raw()).decode('ascii')}"

    async def slices(self) -> AsyncIterator[bytes | memoryview]:
        """The image's bytes, `SLICE` at a time (each a multiple of 3 bytes, but the last)."""
        if self.data is not None:
            view = memoryview(self.data)
            for start in range(0, len(view), SLICE):
                yield view[start : start + SLICE]
            return
        assert self.path is not None
        file = await asyncio.to_thread(self.path.open, "rb")
        try:
            while block := await asyncio.to_thread(file.read, SLICE * READ_SLICES):
                view = memoryview(block)
                for start in range(0, len(view), SLICE):
                    yield view[start : start + SLICE]
        finally:
            await asyncio.to_thread(file.close)


class StreamedBody:
    """`body` as JSON bytes, with every `InlineImage` in it streamed instead of built."""

    def __init__(self, body: Any) -> None:
        inline: dict[str, InlineImage] = {}

        def swap(node: Any) -> Any:
            if isinstance(node, InlineImage):
                token = f"wanbot-inline-{uuid.uuid4().hex}"
                inline[token] = node
                return token
            if isinstance(node, dict):
                return {k: swap(v) for k, v in node.items()}
            if isinstance(node, list):
                return [swap(v) for v in node]
            return node

        text = json.dumps(swap(body), ensure_ascii=False).encode("utf-8")
        self.parts: list[bytes | InlineImage] = []
        for token, image in inline.items():
            head, text = text.split(f'"{token}"'.encode("ascii"), 1)
            self.parts += [head, image]
        self.parts.append(text)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes of the body, a slice at a time (a fresh iterator for every attempt)."""
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
                continue
            yield part.prefix
            async for piece in part.slices():
                yield base64.b64encode(piece)
            yield b'"'

    def to_bytes(self) -> bytes:
        """The whole body at once (tests compare it with `json.dumps`)."""
        out = bytearray()
        for part in self.parts:
            out += part if isinstance(part, bytes) else json.dumps(part.encoded()).encode("ascii")
        return bytes(out)
