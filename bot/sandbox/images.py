"""Pillow work of the emulator: input checks and the made-up "edited" or "imagined" result PNGs.

Everything here is synchronous and CPU-bound; callers run it with `asyncio.to_thread`.
An edit's result is the LAST input image (the real service takes the output aspect from the last image),
cropped to the output size; a text-to-image result is drawn from the prompt (colours and shapes derived
from its words). Either is tinted with a colour derived from the seed, with a caption band showing the
seed and the prompt, so a human can see that something happened and which request it came from. Same
inputs and seed give the same bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import textwrap
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps

MAX_BYTES = 10 * 1024 * 1024
MIN_SIDE = 384
MAX_SIDE = 5000
MAX_ASPECT = 4.0
IMAGINE_DEFAULT_SIZE = (1280, 1280)  # text-to-image without a `size` (docs/text-to-image.md)
FORMATS = {"JPEG", "MPO", "PNG", "BMP", "WEBP"}  # MPO = multi-picture JPEG from phone cameras


class ImageCheckError(Exception):
    """An input image the service would refuse; `str()` is the task's failure message."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def inspect_image(data: bytes, index: int) -> ImageInfo:
    """Check one input (1-based `index`) like the service: type, 384..5000 px sides, aspect, <= 10 MB."""
    label = f"Input image {index}"
    if len(data) > MAX_BYTES:
        raise ImageCheckError(f"{label} is {len(data) / 1048576:.1f} MB; the limit is 10 MB.")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
            img.verify()
    except Exception:
        raise ImageCheckError(
            f"{label} cannot be decoded; the media format is not supported or incorrect "
            "(supported: JPEG, PNG, BMP, WEBP)."
        ) from None
    if fmt not in FORMATS:
        raise ImageCheckError(f"{label} is {fmt}; supported formats are JPEG, PNG, BMP and WEBP.")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ImageCheckError(
            f"{label} is {width}x{height} pixels; width and height must each be between "
            f"{MIN_SIDE} and {MAX_SIDE}."
        )
    if max(width / height, height / width) > MAX_ASPECT:
        raise ImageCheckError(
            f"{label} is {width}x{height}; the aspect ratio must be within 1:4 to 4:1."
        )
    return ImageInfo("JPEG" if fmt == "MPO" else fmt, width, height)


def output_size(
    requested: tuple[int, int] | None, base: tuple[int, int] | None, area: int
) -> tuple[int, int]:
    """`requested` as is; otherwise `area` pixels at the base image's aspect (clamped to 1:4..4:1)."""
    if requested is not None:
        return requested
    aspect = base[0] / base[1] if base else 1.0
    aspect = min(MAX_ASPECT, max(1 / MAX_ASPECT, aspect))
    height = math.sqrt(area / aspect)
    return max(16, round(height * aspect)), max(16, round(height))


def _colour(text: str, saturation: float = 0.75, value: float = 0.95) -> tuple[int, int, int]:
    digest = hashlib.sha256(text.encode()).digest()
    r, g, b = colorsys.hsv_to_rgb(digest[0] / 255, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _seed_colour(seed: int) -> tuple[int, int, int]:
    return _colour(str(seed))


def _drawn(prompt: str, size: tuple[int, int]) -> Image.Image:
    """A picture "of" the prompt: a two-colour gradient from the whole prompt and one disc per word
    (up to 12), each placed and coloured by the word, so different prompts look different."""
    width, height = size
    top, bottom = _colour(prompt, 0.5, 0.9), _colour(prompt[::-1], 0.6, 0.5)
    mask = Image.linear_gradient("L").resize(size)
    img = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)
    draw = ImageDraw.Draw(img)
    for word in prompt.lower().split()[:12]:
        digest = hashlib.sha256(word.encode()).digest()
        x, y = digest[1] / 255 * width, digest[2] / 255 * height
        radius = (0.05 + digest[3] / 255 * 0.15) * min(width, height)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_colour(word))
    return img


def _base_image(base: bytes | None, size: tuple[int, int]) -> Image.Image:
    if base is None:  # input not fetched (fetch_inputs=False): a neutral gradient stands in
        gradient = Image.linear_gradient("L").resize(size)
        return Image.merge(
            "RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient)
        )
    with Image.open(io.BytesIO(base)) as img:
        img.draft("RGB", size)  # JPEG: decode at reduced scale, much faster for big photos
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    return ImageOps.fit(rgb, size, Image.Resampling.BILINEAR)


def render_result(
    base: bytes | None,
    size: tuple[int, int],
    seed: int,
    prompt: str,
    watermark: bool,
    *,
    from_text: bool = False,
) -> bytes:
    """One result PNG: the base image (or, `from_text`, a picture drawn from the prompt) tinted by
    `seed`, captioned with the seed and the prompt."""
    img = _drawn(prompt, size) if from_text else _base_image(base, size)
    colour = _seed_colour(seed)
    img = Image.blend(img, Image.new("RGB", size, colour), 0.35)
    draw = ImageDraw.Draw(img, "RGBA")
    width, height = size
    font_size = max(10, min(width, height) // 36)
    font = ImageFont.load_default(size=font_size)
    chars_per_line = max(12, int(width / (font_size * 0.55)))
    lines = [f"Wan sandbox {'image' if from_text else 'edit'} - seed {seed}"]
    lines += textwrap.wrap(prompt, chars_per_line)[:3]
    band = (len(lines) + 1) * (font_size + 4)
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 150))
    border = max(4, min(width, height) // 80)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(*colour, 255), width=border)
    y = height - band + font_size // 2
    for line in lines:
        draw.text((border + 6, y), line, fill=(255, 255, 255, 255), font=font)
        y += font_size + 4
    if watermark:
        label = "AI-generated"
        box = draw.textbbox((0, 0), label, font=font)
        x = width - (box[2] - box[0]) - border - 8  # bottom-right, like the real watermark
        draw.text((x, height - band + font_size // 2), label, fill=(255, 255, 128, 255), font=font)
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def render_results(
    base: bytes | None,
    requested: tuple[int, int] | None,
    base_size: tuple[int, int] | None,
    area: int,
    seeds: list[int],
    prompt: str,
    watermark: bool,
    *,
    from_text: bool = False,
) -> list[bytes]:
    """All result PNGs of one task; they share one resolution, like the real service's."""
    if from_text:
        size = requested or IMAGINE_DEFAULT_SIZE
    else:
        size = output_size(requested, base_size, area)
    return [
        render_result(base, size, seed, prompt, watermark, from_text=from_text) for seed in seeds
    ]
