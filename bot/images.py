"""Input checks and output re-encoding for images, with Pillow always off the event loop.

Wan accepts JPEG, PNG, BMP and WEBP, each side 384-5000 px, aspect ratio within 1:4..4:1, at most 10 MB
(wan-api.md §1.3). Checking here, before any quota is reserved or any task created, turns what would be a
failed (but free) Wan task a minute later into a clear message right away.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import weakref
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MIN_SIDE = 384
MAX_SIDE = 5000
MAX_ASPECT = 4.0
FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
}
_ACCEPTED = "PNG, JPEG, WEBP or BMP"


# Requests (and queued jobs starting) together would otherwise hold every image in memory at once (50 requests of
# three 4 MB images came to ~1 GB in bench/e2e.py); two at a time keeps the peak small and costs
# little, since each load is a download plus a decode of a few hundred milliseconds.
MAX_PARALLEL_LOADS = 2
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def load_slot() -> asyncio.Semaphore:
    """The shared limit on image loads (download + decode) running at once in this event loop."""
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(MAX_PARALLEL_LOADS)
    return slot


class ImageRejected(Exception):
    """An input image Wan would refuse. `str()` is a short message for the user."""


@dataclass(frozen=True)
class CheckedImage:
    """An input image that passed every check, with the bytes Wan will receive."""

    data: bytes
    mime: str
    width: int
    height: int
    filename: str
    url: str | None = None
    # SHA-256 of `data`: a job's inputs fetched again later are known to be these checked bytes.
    sha256: str = ""


def _label(index: int, filename: str) -> str:
    return f"Image {index} (`{filename}`)"


def precheck(index: int, filename: str, content_type: str | None, size: int) -> None:
    """Checks that need no download: what Discord says about the file."""
    label = _label(index, filename)
    ctype = (content_type or "").split(";")[0].strip().lower()
    lower = filename.lower()
    if ctype == "image/svg+xml" or lower.endswith(".svg"):
        raise ImageRejected(f"{label} is an SVG drawing; Wan needs a {_ACCEPTED} picture.")
    if ctype == "image/gif" or lower.endswith(".gif"):
        raise ImageRejected(f"{label} is a GIF; Wan edits still {_ACCEPTED} images only.")
    if ctype and not ctype.startswith("image/"):
        raise ImageRejected(f"{label} isn't an image ({ctype}); attach a {_ACCEPTED} file.")
    if ctype and ctype not in FORMATS.values() and ctype != "image/jpg":
        raise ImageRejected(f"{label} is {ctype}; Wan accepts {_ACCEPTED} only.")
    if size > MAX_BYTES:
        raise ImageRejected(
            f"{label} is {size / 1024 / 1024:.1f} MB; the limit is 10 MB per image."
        )


def inspect(index: int, filename: str, data: bytes, url: str | None = None) -> CheckedImage:
    """Decode `data` for real and check it against Wan's limits. Blocking: call through `check`."""
    label = _label(index, filename)
    if len(data) > MAX_BYTES:
        raise ImageRejected(
            f"{label} is {len(data) / 1024 / 1024:.1f} MB; the limit is 10 MB per image."
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            if fmt == "GIF":
                raise ImageRejected(f"{label} is a GIF; Wan edits still {_ACCEPTED} images only.")
            if fmt not in FORMATS:
                raise ImageRejected(
                    f"{label} is a {fmt or 'unknown'} file; Wan accepts {_ACCEPTED} only."
                )
            if getattr(img, "is_animated", False):
                raise ImageRejected(f"{label} is animated; send a single still frame.")
            width, height = img.size
            # Check the size before decoding pixels, so a huge image is never decompressed.
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise ImageRejected(
                    f"{label} is {width}×{height} px; each side must be {MIN_SIDE} to {MAX_SIDE} px."
                )
            if max(width, height) / min(width, height) > MAX_ASPECT:
                raise ImageRejected(
                    f"{label} is {width}×{height} px; it can be at most 4 times longer than wide."
                )
            img.load()  # a real decode: truncated or corrupt files fail here
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageRejected(f"{label} can't be read as an image; it may be corrupt.") from None
    digest = hashlib.sha256(data).hexdigest()
    return CheckedImage(data, FORMATS[fmt], width, height, filename, url, digest)


async def check(index: int, filename: str, data: bytes, url: str | None = None) -> CheckedImage:
    """`inspect` in a worker thread."""
    return await asyncio.to_thread(inspect, index, filename, data, url)


def reinspect(index: int, filename: str, data: bytes, url: str | None, known: dict) -> CheckedImage:
    """`data` fetched again for a stored job: the checked image `known` describes (no second
    decode, which costs a full pixel buffer and CPU right when a Wan slot waits) if the bytes are
    the same, else checked from scratch. Blocking: call through `recheck`."""
    digest = hashlib.sha256(data).hexdigest()
    if known.get("sha256") == digest and known.get("content_type") in FORMATS.values():
        return CheckedImage(
            data,
            str(known["content_type"]),
            int(known.get("width") or 0),
            int(known.get("height") or 0),
            filename,
            url,
            digest,
        )
    return inspect(index, filename, data, url)


async def recheck(
    index: int, filename: str, data: bytes, url: str | None, known: dict
) -> CheckedImage:
    """`reinspect` in a worker thread."""
    return await asyncio.to_thread(reinspect, index, filename, data, url, known)


def fit(data: bytes, filename: str, limit: int) -> tuple[bytes, str]:
    """Return the image unchanged if it fits `limit` bytes, else re-encoded (WebP, then smaller) to fit.

    Blocking: call through `fit_async`. A result is never dropped: as a last resort it is scaled down.
    """
    if len(data) <= limit:
        return data, filename
    stem = filename.rsplit(".", 1)[0]
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        current = img.convert("RGB")
    for scale in (1.0, 0.75, 0.5, 0.35, 0.25):
        frame = current
        if scale < 1.0:
            frame = current.resize(
                (max(1, int(current.width * scale)), max(1, int(current.height * scale)))
            )
        for quality in (92, 80, 65):
            out = io.BytesIO()
            frame.save(out, "WEBP", quality=quality, method=4)
            if out.tell() <= limit:
                return out.getvalue(), f"{stem}.webp"
    out = io.BytesIO()
    current.resize((256, max(1, int(256 * current.height / current.width)))).save(
        out, "WEBP", quality=50
    )
    return out.getvalue(), f"{stem}.webp"


async def fit_async(data: bytes, filename: str, limit: int) -> tuple[bytes, str]:
    """`fit` in a worker thread."""
    return await asyncio.to_thread(fit, data, filename, limit)
