"""Input checks and output re-encoding for images, with Pillow always off the event loop.

Wan accepts JPEG, PNG, BMP and WEBP, each side 384-5000 px, aspect ratio within 1:4..4:1, at most 10 MB.
Checking here, before any quota is reserved or any task created, turns what would be a
failed (but free) Wan task a minute later into a clear message right away.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import shutil
import struct
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

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


# Requests together would otherwise hold every image in memory at once (50 requests of three 4 MB
# images came to ~1 GB in bench/e2e.py). One new request is taken in at a time: each is a download
# plus three real decodes (~0.1 s of CPU each for 2000x1500), and on a small machine a second one
# at once only takes the core the event loop needs (creates, polls, deliveries) for no gain, since
# Wan's slots, not intake, set the pace.
MAX_PARALLEL_LOADS = 1
# Requests downloading at once, each with its own deadline (WANBOT_DOWNLOAD_TIMEOUT): a download that
# stalls holds one of these, and the others go on around it. A request keeps its place until its
# decode is done, so at most this many hold downloaded bytes while they wait for `load_slot`: each
# one up to three 10 MB images. (50 requests of three 4 MB images at once, as in bench/e2e.py: the
# bot peaked at about 190 MB with four, 140 MB with two, and took them in about as fast.)
MAX_PARALLEL_DOWNLOADS = 2
# Queued jobs whose turn has come fetch their inputs again apart from the requests coming in: with
# one shared limit, a job due at Wan waited behind every request still arriving, and Wan's slots sat
# idle meanwhile (bench/e2e.py: no create for 30 s while 40 requests were taken in). Few at once: the
# dispatcher starts at most `max_concurrent + PREFETCH` jobs ahead of Wan.
MAX_PARALLEL_REFETCHES = 2
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _slot(kind: str, size: int) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = {}
    if kind not in slots:
        slots[kind] = asyncio.Semaphore(size)
    return slots[kind]


def load_slot() -> asyncio.Semaphore:
    """The limit on new requests' image loads (download + decode) at once in this event loop."""
    return _slot("load", MAX_PARALLEL_LOADS)


def download_slot() -> asyncio.Semaphore:
    """The limit on new requests held between their download's start and their decode's end."""
    return _slot("download", MAX_PARALLEL_DOWNLOADS)


def refetch_slot() -> asyncio.Semaphore:
    """The limit on stored jobs fetching their inputs again at once (apart from `load_slot`)."""
    return _slot("refetch", MAX_PARALLEL_REFETCHES)


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
    # SHA-256 of `data`: a job's inputs fetched again later are known to be these checked bytes.
    sha256: str = ""


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
            _decodes(img, data)
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageRejected(
            _("{label} can't be read as an image; it may be corrupt.", label=label)
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    return CheckedImage(data, FORMATS[fmt], width, height, filename, url, digest)


def _decodes(img: Image.Image, data: bytes) -> None:
    """Raise (OSError, ValueError, SyntaxError) if the file is cut short or damaged.

    Cheaper than a full decode where that proves as much: a JPEG is decoded at an eighth of its
    size (libjpeg still reads every coefficient, so a cut or broken file fails just the same); a
    PNG's chunks are walked and the checksum of each critical one verified (`_png_whole`). The
    other formats are decoded in full."""
    if img.format == "JPEG":
        img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
        img.load()
    elif img.format == "PNG":
        _png_whole(data)
    else:
        img.load()


_PNG_CRITICAL = (b"IHDR", b"PLTE", b"IDAT", b"IEND")


def _png_whole(data: bytes) -> None:
    """Check that a PNG arrived whole and undamaged without inflating its pixels: every chunk is
    complete, the image data and the end marker are there, and each critical chunk's CRC-32
    matches its bytes. A file cut anywhere, or with any byte of its header, palette or image data
    changed, fails (Pillow's decode skips the image data's checksums; libpng, like most decoders,
    refuses them). A stream made broken by its encoder, checksummed as such, is not caught here:
    Wan refuses it, and a failed task is never charged."""
    pos = len(PNG_SIGNATURE)
    kinds = []
    view = memoryview(data)  # checksummed in place, not copied chunk by chunk
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError("PNG chunk cut short")
        kind = data[pos + 4 : pos + 8]
        if kind in _PNG_CRITICAL:
            (crc,) = struct.unpack(">I", data[end : end + 4])
            if zlib.crc32(view[pos + 4 : end]) != crc:
                raise ValueError(f"PNG {kind.decode()} chunk damaged")
        kinds.append(kind)
        pos = end + 4
        if kind == b"IEND":
            break
    if not kinds or kinds[0] != b"IHDR" or kinds[-1] != b"IEND" or b"IDAT" not in kinds:
        raise ValueError("PNG cut short")


async def check(index: int, filename: str, data: bytes, url: str | None = None) -> CheckedImage:
    """`inspect` in a worker thread."""
    return await asyncio.to_thread(inspect, index, filename, data, url)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
XMP_NS = "urn:wanbot:metadata:1.0#"  # our own namespace for the per-field properties
EXIF_DESCRIPTION = 0x010E  # ImageDescription (ASCII)
EXIF_SOFTWARE = 0x0131
EXIF_IFD = 0x8769
EXIF_USER_COMMENT = 0x9286  # in the Exif IFD; 8-byte charset code, then the text


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR header (no decoding), or None if `data` isn't a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def with_png_text(data: bytes, metadata: Mapping[str, str]) -> bytes:
    """The PNG with one UTF-8 text chunk (iTXt) per entry, right after its header.

    The chunks are spliced in rather than the image saved again with `pnginfo`: re-encoding a
    1-2 MB result to add a few hundred bytes would cost a full decode and encode and change its
    size. Pillow's `PngInfo` builds the chunk bodies. Non-PNG data is returned unchanged.
    """
    chunks = png_text_chunks(data, metadata)
    if not chunks:
        return data
    return data[:END_OF_HEADER] + chunks + data[END_OF_HEADER:]


END_OF_HEADER = 8 + 4 + 4 + 13 + 4  # a PNG's signature, IHDR length, type, 13 data bytes, CRC


def png_text_chunks(head: bytes, metadata: Mapping[str, str] | None) -> bytes:
    """The iTXt chunks `with_png_text` puts after the header of the PNG that starts with `head`
    (b"" for anything else, or no metadata)."""
    if png_dimensions(head) is None or not metadata:
        return b""
    info = PngInfo()
    for key, value in metadata.items():
        info.add_itxt(key, value)
    return b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body, *_ in info.chunks
    )


def _summary(metadata: Mapping[str, str]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in metadata.items())


def exif_for(metadata: Mapping[str, str]) -> bytes:
    """EXIF carrying the metadata: a readable ImageDescription (ASCII, other characters escaped)
    and the exact values as JSON in UserComment."""
    exif = Image.Exif()
    exif[EXIF_DESCRIPTION] = _summary(metadata).encode("ascii", "backslashreplace").decode()
    exif[EXIF_SOFTWARE] = "wanbot"
    comment = json.dumps(dict(metadata), ensure_ascii=True)
    exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = b"ASCII\0\0\0" + comment.encode("ascii")
    return exif.tobytes()


def xmp_for(metadata: Mapping[str, str]) -> bytes:
    """An XMP packet (UTF-8): the summary as dc:description, each entry as a wanbot: property."""
    attributes = "".join(
        f" wanbot:{key}={quoteattr(value)}"
        for key, value in metadata.items()
        if _XML_NAME.match(key)
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        f' xmlns:wanbot="{XMP_NS}"{attributes}>'
        "<dc:description><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{escape(_summary(metadata))}</rdf:li>'
        "</rdf:Alt></dc:description>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def metadata_options(metadata: Mapping[str, str] | None) -> dict[str, Any]:
    """`Image.save` options that keep the metadata in a WEBP or JPEG re-encode (EXIF and XMP)."""
    if not metadata:
        return {}
    return {"exif": exif_for(metadata), "xmp": xmp_for(metadata)}


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


def fit(
    data: bytes, filename: str, limit: int, metadata: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """Return the image unchanged if it fits `limit` bytes, else re-encoded (WebP, then smaller) to fit.

    `metadata` (how the image was made) goes into a PNG's text chunks, or into the EXIF and XMP of
    a re-encode. Blocking: call through `fit_async`. A result is never dropped: as a last resort it
    is scaled down.
    """
    if metadata:
        data = with_png_text(data, metadata)
    if len(data) <= limit:
        return data, filename
    keep = metadata_options(metadata)
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
            frame.save(out, "WEBP", quality=quality, method=4, **keep)
            if out.tell() <= limit:
                return out.getvalue(), f"{stem}.webp"
    out = io.BytesIO()
    current.resize((256, max(1, int(256 * current.height / current.width)))).save(
        out, "WEBP", quality=50, **keep
    )
    return out.getvalue(), f"{stem}.webp"


async def fit_async(
    data: bytes, filename: str, limit: int, metadata: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """`fit` in a worker thread."""
    return await asyncio.to_thread(fit, data, filename, limit, metadata)


COPY_BUFFER = 256 * 1024


def fit_file(
    src: Path, dst: Path, filename: str, limit: int, metadata: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """`fit` for a result on disk: the file to upload (`src` itself, or `dst`) and its name.

    A result that fits the limit (the usual case) is never whole in memory: its metadata chunks are
    spliced in while it is copied to `dst`. Only one that needs re-encoding is read and decoded.
    Blocking: call through `fit_file_async`.
    """
    with src.open("rb") as file:
        head = file.read(END_OF_HEADER)
        chunks = png_text_chunks(head, metadata)
        if src.stat().st_size + len(chunks) <= limit:
            if not chunks:
                return src, filename
            with dst.open("wb") as out:
                out.write(head)
                out.write(chunks)
                shutil.copyfileobj(file, out, COPY_BUFFER)
            return dst, filename
    data, name = fit(src.read_bytes(), filename, limit, metadata)
    dst.write_bytes(data)
    return dst, name


async def fit_file_async(
    src: Path, dst: Path, filename: str, limit: int, metadata: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """`fit_file` in a worker thread."""
    return await asyncio.to_thread(fit_file, src, dst, filename, limit, metadata)
