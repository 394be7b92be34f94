"""Input checks catch what a decode would (a JPEG decoded at an eighth of its size, a PNG's chunks
and checksums verified); results too big for Discord are re-encoded, never dropped."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot import images
from bot.images import ImageRejected


def png(width: int = 512, height: int = 512, fmt: str = "PNG", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, fmt, **save)
    return out.getvalue()


async def test_accepts_each_supported_format() -> None:
    for fmt, mime in (
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("BMP", "image/bmp"),
        ("WEBP", "image/webp"),
    ):
        checked = await images.check(1, f"a.{fmt.lower()}", png(fmt=fmt))
        assert (checked.mime, checked.width, checked.height) == (mime, 512, 512)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (png(100, 512), "384 to 5000"),
        (png(400, 1700), "4 times"),
        (b"not an image at all", "corrupt"),
        (png()[:200], "corrupt"),
        (png(fmt="GIF"), "GIF"),
        (png(fmt="TIFF"), "TIFF"),
    ],
)
async def test_rejects_bad_images_with_a_clear_message(data: bytes, needle: str) -> None:
    with pytest.raises(ImageRejected, match=needle):
        await images.check(1, "x.png", data)


def photo(fmt: str, **save: object) -> bytes:
    """A 600x450 picture with detail in every block (noise), so every part of the file matters."""
    out = io.BytesIO()
    Image.effect_noise((600, 450), 60).convert("RGB").save(out, fmt, **save)
    return out.getvalue()


def png_chunks(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of each chunk of a PNG."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((pos, data[pos + 4 : pos + 8]))
        pos += 12 + length
    return chunks


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


@pytest.mark.parametrize("progressive", [False, True])
async def test_a_jpeg_cut_short_is_refused_though_not_decoded_in_full(progressive: bool) -> None:
    data = photo("JPEG", quality=90, progressive=progressive)
    assert (await images.check(1, "a.jpg", data)).width == 600
    for cut in (len(data) // 3, len(data) * 2 // 3, len(data) - 100):
        with pytest.raises(ImageRejected, match="corrupt"):
            await images.check(1, "a.jpg", data[:cut])


async def test_a_png_cut_or_damaged_anywhere_in_its_image_data_is_refused() -> None:
    """Without inflating its pixels: cut at a chunk's edge (no end marker), cut inside a chunk,
    one byte of image data changed (its checksum no longer matches), the end marker damaged."""
    data = photo("PNG")
    chunks = png_chunks(data)
    idat = [pos for pos, kind in chunks if kind == b"IDAT"]
    iend = next(pos for pos, kind in chunks if kind == b"IEND")
    assert (await images.check(1, "a.png", data)).height == 450
    damaged = [
        data[:iend],
        data[: idat[0] + 5000],
        flipped(data, idat[0] + 4000),
        flipped(data, len(data) - 1),
    ]
    for bad in damaged:
        with pytest.raises(ImageRejected, match="corrupt"):
            await images.check(1, "a.png", bad)


async def test_rejects_animated_webp() -> None:
    frames = [Image.new("RGB", (400, 400), c) for c in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageRejected, match="animated"):
        await images.check(2, "a.webp", out.getvalue())


@pytest.mark.parametrize(
    ("ctype", "name", "size", "needle"),
    [
        ("image/svg+xml", "a.svg", 10, "SVG"),
        ("image/gif", "a.gif", 10, "GIF"),
        ("application/pdf", "a.pdf", 10, "isn't an image"),
        ("image/png", "a.png", 11 * 1024 * 1024, "10 MB"),
        ("image/tiff", "a.tiff", 10, "image/tiff"),
    ],
)
def test_precheck(ctype: str, name: str, size: int, needle: str) -> None:
    with pytest.raises(ImageRejected, match=needle):
        images.precheck(1, name, ctype, size)


async def test_fit_reencodes_to_the_limit() -> None:
    noisy = Image.effect_noise((1200, 1200), 90).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "PNG")
    data = out.getvalue()
    small, name = await images.fit_async(data, "r.png", 300_000)
    assert len(small) <= 300_000 < len(data) and name == "r.webp"
    with Image.open(io.BytesIO(small)) as img:
        assert img.format == "WEBP"
    same, same_name = await images.fit_async(data, "r.png", len(data))
    assert same is data and same_name == "r.png"
