"""The charts' font: Noto Sans CJK (the `noto-cjk-sans-otc` package), whose Simplified Chinese face
also has Latin, Greek, Cyrillic, kana and Hangul, so one face writes every label in both languages."""

from __future__ import annotations

import functools
import unicodedata

from PIL import Image, ImageFont

# The face of the collection whose glyph forms are Simplified Chinese (zh-CN's).
FACE = "Noto Sans CJK SC"
# A code point no font maps: it draws the font's "missing glyph" box.
_NOT_A_CHARACTER = "\U0010fffd"


@functools.cache
def font_path() -> str:
    from noto_cjk_sans_otc import FONT_PATH

    return str(FONT_PATH)


@functools.cache
def face_index() -> int:
    """The SC face's place in the collection, found by name rather than assumed."""
    path = font_path()
    index = 0
    while True:
        try:
            face = ImageFont.truetype(path, 12, index=index)
        except OSError:
            raise OSError(f"{path} has no {FACE!r} face") from None
        if face.getname()[0] == FACE:
            return index
        index += 1


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont:
    # The basic layout: no run-time dependency on libraqm, and these labels need no shaping.
    return ImageFont.truetype(
        font_path(), size, index=face_index(), layout_engine=ImageFont.Layout.BASIC
    )


def _drawn(face: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int], bytes]:
    mask = face.getmask(char)
    return mask.size, Image.Image()._new(mask).tobytes() if mask.size[0] else b""


@functools.cache
def _missing_glyph(size: int) -> tuple[tuple[int, int], bytes]:
    return _drawn(font(size), _NOT_A_CHARACTER)


def has_glyph(char: str, size: int = 16) -> bool:
    """Whether the font draws `char` as itself rather than as the missing-glyph box."""
    return _drawn(font(size), char) != _missing_glyph(size)


def printable(text: str, size: int = 16) -> str:
    """`text` without the characters the font lacks (emoji, scripts it does not cover), so a
    server's name never shows as empty boxes; runs of spaces left behind are closed up."""
    kept = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or (unicodedata.category(char)[0] != "C" and has_glyph(char, size))
    )
    return " ".join(kept.split())
