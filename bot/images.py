"""Input checks and output re-encoding for images, with Pillow always off the event loop.

Wan accepts JPEG, PNG, BMP and WEBP, each side 384-5000 px, aspect ratio within 1:4..4:1, at most 10 MB
(wan-api.md §1.3). Checking here, before any quota is reserved or any task created, turns what would be a
failed (but free) Wan task a minute later into a clear message right away.
"""

from __future__ import annotations

import asyncio
import io
import weakref
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bot.i18n import Number, Text, _

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
_ACCEPTED = _("PNG, JPEG, WEBP or BMP")


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
    """An input image Wan would refuse. `str()` is a short message for the user (in English; raised
    with a `Text`, which `bot.i18n.text_of` gives back for rendering in the reader's language)."""


@dataclass(frozen=True)
class CheckedImage:
    """An input image that passed every check, with the bytes Wan will receive."""

    data: bytes
    mime: str
    width: int
    height: int
    filename: str
    url: str | None = None


def _label(index: int, filename: str) -> Text:
    return _("Image {index} (`{filename}`)", index=index, filename=filename)


def _megabytes(size: int) -> Number:
    return Number(size / 1024 / 1024, decimals=1)


def _gif(label: Text) -> Text:
    return _(
        "{label} is a GIF; Wan edits still {accepted} images only.", label=label, accepted=_ACCEPTED
    )


def _wrong_format(label: Text, kind: str) -> Text:
    return _(
        "{label} is {kind}; Wan accepts {accepted} only.",
        label=label,
        kind=kind,
        accepted=_ACCEPTED,
    )


def _unknown_format(label: Text) -> Text:
    return _(
        "{label} is an unknown file type; Wan accepts {accepted} only.",
        label=label,
        accepted=_ACCEPTED,
    )


def _too_big(label: Text, size: int) -> Text:
    return _(
        "{label} is {size} MB; the limit is 10 MB per image.", label=label, size=_megabytes(size)
    )


def precheck(index: int, filename: str, content_type: str | None, size: int) -> None:
    """Checks that need no download: what Discord says about the file."""
    label = _label(index, filename)
    ctype = (content_type or "").split(";")[0].strip().lower()
    lower = filename.lower()
    if ctype == "image/svg+xml" or lower.endswith(".svg"):
        raise ImageRejected(
            _(
                "{label} is an SVG drawing; Wan needs a {accepted} picture.",
                label=label,
                accepted=_ACCEPTED,
            )
        )
    if ctype == "image/gif" or lower.endswith(".gif"):
        raise ImageRejected(_gif(label))
    if ctype and not ctype.startswith("image/"):
        raise ImageRejected(
            _(
                "{label} isn't an image ({type}); attach a {accepted} file.",
                label=label,
                type=ctype,
                accepted=_ACCEPTED,
            )
        )
    if ctype and ctype not in FORMATS.values() and ctype != "image/jpg":
        raise ImageRejected(_wrong_format(label, ctype))
    if size > MAX_BYTES:
        raise ImageRejected(_too_big(label, size))


def inspect(index: int, filename: str, data: bytes, url: str | None = None) -> CheckedImage:
    """Decode `data` for real and check it against Wan's limits. Blocking: call through `check`."""
    label = _label(index, filename)
    if len(data) > MAX_BYTES:
        raise ImageRejected(_too_big(label, len(data)))
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            if fmt == "GIF":
                raise ImageRejected(_gif(label))
            if fmt not in FORMATS:
                raise ImageRejected(
                    _(
                        "{label} is a {kind} file; Wan accepts {accepted} only.",
                        label=label,
                        kind=fmt,
                        accepted=_ACCEPTED,
                    )
                    if fmt
                    else _unknown_format(label)
                )
            if getattr(img, "is_animated", False):
                raise ImageRejected(
                    _("{label} is animated; send a single still frame.", label=label)
                )
            width, height = img.size
            # Check the size before decoding pixels, so a huge image is never decompressed.
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise ImageRejected(
                    _(
                        "{label} is {width}×{height} px; each side must be {low} to {high} px.",
                        label=label,
                        width=width,
                        height=height,
                        low=MIN_SIDE,
                        high=MAX_SIDE,
                    )
                )
            if max(width, height) / min(width, height) > MAX_ASPECT:
                raise ImageRejected(
                    _(
                        "{label} is {width}×{height} px; it can be at most 4 times longer than wide.",
                        label=label,
                        width=width,
                        height=height,
                    )
                )
            img.load()  # a real decode: truncated or corrupt files fail here
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageRejected(
            _("{label} can't be read as an image; it may be corrupt.", label=label)
        ) from None
    return CheckedImage(data, FORMATS[fmt], width, height, filename, url)


async def check(index: int, filename: str, data: bytes, url: str | None = None) -> CheckedImage:
    """`inspect` in a worker thread."""
    return await asyncio.to_thread(inspect, index, filename, data, url)


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
