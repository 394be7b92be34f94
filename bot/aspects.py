"""Output shapes: the aspect ratios a member may ask for, each mapped to a size Wan documents.

`wan2.5-i2i-preview` takes `parameters.size` as `"W*H"` with 768*768..1280*1280 pixels in all and an
aspect within 1:4..4:1, and recommends a handful of sizes; each ratio here is one of
those. Without a ratio no `size` is sent and the result keeps the input's shape.
`wan2.5-t2i-preview` (text-to-image) allows 768*768..1440*1440 pixels in all, same aspect bounds, and
always gets a size (square by default); its table is in `IMAGINE_SIZES` (docs/text-to-image.md).

A prompt may end with Midjourney's `--ar 16:9` (or `--aspect 16:9`); `take_aspect` takes it off.
"""

from __future__ import annotations

import re

from bot.i18n import _

ASPECTS: dict[str, tuple[int, int]] = {
    "1:1": (1280, 1280),
    "4:3": (1280, 960),
    "3:4": (960, 1280),
    "3:2": (1200, 800),
    "2:3": (800, 1200),
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "21:9": (1344, 576),
}
# Text-to-image: Alibaba's recommended sizes for 1:1, 4:3, 3:4, 16:9 and 9:16; the other ratios are
# exact and near 1280*1280 pixels, like the recommended ones.
IMAGINE_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1280, 1280),
    "4:3": (1472, 1104),
    "3:4": (1104, 1472),
    "3:2": (1536, 1024),
    "2:3": (1024, 1536),
    "16:9": (1696, 960),
    "9:16": (960, 1696),
    "21:9": (2016, 864),
}
IMAGINE_DEFAULT = "1:1"
SUPPORTED = ", ".join(ASPECTS)
# The flag at the very end of the prompt, with whatever value follows it (checked afterwards, so a
# wrong ratio is refused by name rather than left in the prompt).
_FLAG = re.compile(r"(?:^|\s)--(?:ar|aspect)(?:\s+(?P<value>\S+))?\s*$", re.IGNORECASE)


class AspectRejected(ValueError):
    """An aspect ratio Wan has no size for; its `Text` (`text_of`) is the message for the user."""


def check_aspect(aspect: str) -> str:
    """`aspect` itself if supported, else `AspectRejected` naming the supported ones."""
    if aspect not in ASPECTS:
        shown = aspect if len(aspect) <= 12 else aspect[:12] + "…"
        raise AspectRejected(
            _(
                "`{aspect}` isn't an aspect ratio Wan can make; use one of {supported}.",
                aspect=shown,
                supported=SUPPORTED,
            )
        )
    return aspect


def _sizes(from_text: bool) -> dict[str, tuple[int, int]]:
    return IMAGINE_SIZES if from_text else ASPECTS


def size_for(aspect: str, *, from_text: bool = False) -> str:
    """The `parameters.size` value for a supported ratio, e.g. `"1280*720"` for an edit's 16:9
    (`from_text`: the text-to-image size, `"1696*960"`)."""
    width, height = _sizes(from_text)[check_aspect(aspect)]
    return f"{width}*{height}"


def describe(aspect: str, *, from_text: bool = False) -> str:
    """`16:9 (1280×720)`, for result messages and listings."""
    width, height = _sizes(from_text)[check_aspect(aspect)]
    return f"{aspect} ({width}×{height})"


def take_aspect(prompt: str) -> tuple[str, str | None]:
    """The prompt without a trailing `--ar W:H`, and that ratio (None when there is none).

    Raises `AspectRejected` for a ratio Wan has no size for, or a bare `--ar`.
    """
    match = _FLAG.search(prompt)
    if match is None:
        return prompt, None
    value = match["value"]
    if value is None:
        raise AspectRejected(
            _("`--ar` needs a ratio after it, one of {supported}.", supported=SUPPORTED)
        )
    # A Chinese keyboard types the full-width colon: `--ar 16：9` means 16:9.
    return prompt[: match.start()].rstrip(), check_aspect(value.replace("：", ":"))
