"""Input checks run a real decode; results too big for Discord are re-encoded, never dropped."""

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
