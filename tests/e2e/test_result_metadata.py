"""Result files say how they were made: PNG text chunks, or EXIF and XMP in a WEBP re-encode."""

from __future__ import annotations

import io
import json

from PIL import Image

from bot import images
from tests.e2e.test_output_shape import fetch_attachments
from tests.e2e.test_results import job_id
from tests.support.harness import World

FIELDS = {
    "prompt": "把天空变成紫色, then add a moon",
    "negative_prompt": "blurry",
    "seed": "42",
    "size": "1280*720",
    "model": "wan2.5-i2i-preview",
}


def noisy_png(width: int = 700, height: int = 500) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((width, height), 100).convert("RGB").save(out, "PNG")
    return out.getvalue()


def read_back(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_png_text_chunks_round_trip_and_the_file_stays_valid() -> None:
    """Guards the splice: Pillow reads every field back (UTF-8 intact), CRCs verify, pixels unchanged."""
    original = noisy_png()
    tagged, name = images.fit(original, "r.png", 10 * 1024 * 1024, FIELDS)
    assert name == "r.png" and len(tagged) > len(original)
    assert read_back(tagged).text == FIELDS
    with Image.open(io.BytesIO(tagged)) as img:
        img.verify()  # chunk CRCs
    assert read_back(tagged).tobytes() == read_back(original).tobytes()
    assert images.png_dimensions(tagged) == (700, 500)


def test_a_webp_reencode_keeps_exif_and_xmp() -> None:
    """Guards re-encodes: what WEBP allows (EXIF description and UserComment, XMP) carries the fields."""
    original = noisy_png()
    small, name = images.fit(original, "r.png", len(original) // 3, FIELDS)
    assert name == "r.webp" and len(small) <= len(original) // 3
    img = read_back(small)
    exif = img.getexif()
    assert (
        "seed: 42" in exif[images.EXIF_DESCRIPTION] and "\\u628a" in exif[images.EXIF_DESCRIPTION]
    )
    comment = exif.get_ifd(images.EXIF_IFD)[images.EXIF_USER_COMMENT]
    assert comment.startswith(b"ASCII\0\0\0") and json.loads(comment[8:]) == FIELDS
    xmp = img.info["xmp"].decode("utf-8")
    assert 'wanbot:prompt="把天空变成紫色, then add a moon"' in xmp
    assert 'wanbot:model="wan2.5-i2i-preview"' in xmp


def test_the_same_options_keep_metadata_in_a_jpeg() -> None:
    """Guards `metadata_options` for JPEG too (the other format a re-encode could use)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, "JPEG", **images.metadata_options(FIELDS))
    img = read_back(out.getvalue())
    assert "model: wan2.5-i2i-preview" in img.getexif()[images.EXIF_DESCRIPTION]
    assert b'wanbot:seed="42"' in img.info["xmp"]


async def test_posted_results_carry_how_they_were_made(bot_world: World) -> None:
    """Guards item 4 end to end: each posted PNG, fetched from the CDN, names its prompt, negative
    prompt, its own seed, the size and the model."""
    w = bot_world
    since = w.fd.mark()
    await w.wanedit(
        w.alice, "make it snow", negative_prompt="people", seed=1000, count=2, aspect="16:9"
    )
    result = await w.result_message(w.alice, since=since)
    files = await fetch_attachments(result)
    assert [name for name, _ in files] == [
        f"wan-{job_id(result)}-1.png",
        f"wan-{job_id(result)}-2.png",
    ]
    texts = [read_back(data).text for _, data in files]
    assert texts == [
        {
            "prompt": "make it snow",
            "negative_prompt": "people",
            "seed": str(seed),
            "size": "1280*720",
            "model": "wan2.5-i2i-preview",
        }
        for seed in (1000, 1001)
    ]


async def test_a_result_reencoded_for_a_small_server_keeps_its_metadata(world: World) -> None:
    """Guards metadata through the upload-limit re-encode, end to end."""
    w = world
    guild = w.fd.add_guild("Small uploads", owner=w.admin, upload_limit=30_000)
    channel = w.fd.add_text_channel(guild, "general")
    w.fd.add_member(guild, w.alice, permissions=0)
    await w.start_bot()
    await w.wanedit(w.alice, "keep it", [noisy_png(800, 800)], channel=channel, guild=guild, seed=7)
    result = await w.result_message(w.alice)
    ((name, data),) = await fetch_attachments(result)
    assert name.endswith(".webp") and len(data) <= 30_000
    comment = read_back(data).getexif().get_ifd(images.EXIF_IFD)[images.EXIF_USER_COMMENT]
    fields = json.loads(comment[8:])
    assert fields["prompt"] == "keep it" and fields["seed"] == "7"
    assert fields["model"] == "wan2.5-i2i-preview" and "*" in fields["size"]
