"""Synchronous checks of a create-task body (HTTP 400 on create), for both routes: image editing
(`wan2.5-i2i-preview`, 1-3 input images) and text-to-image (`wan2.5-t2i-preview`, no input images,
larger sizes allowed; docs/text-to-image.md).

Checks that need the image bytes (format, pixel size, file size, download) run later, when the task runs,
and fail the task instead; see `execution.py`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from bot.sandbox.config import IMAGINE_MODEL, MODEL
from bot.sandbox.errors import ApiError

PROMPT_MAX = 2000
NEGATIVE_PROMPT_MAX = 500
MAX_IMAGES = 3
SEED_MAX = 2**31 - 1
AREA_MIN = 768 * 768
AREA_MAX = 1280 * 1280
IMAGINE_AREA_MAX = 1440 * 1440  # text-to-image allows up to 1440*1440 pixels in all
ASPECT_MAX = 4.0
_SIZE = re.compile(r"^\s*(\d{1,5})\s*\*\s*(\d{1,5})\s*$")
BODY_INVALID = "Required body invalid, please check the request body format."
SCHEMES = ("http://", "https://", "data:", "oss://")


@dataclass(frozen=True)
class CreateParams:
    """A validated create request: what the emulated model works from."""

    prompt: str  # truncated to 2000 characters
    negative_prompt: str | None  # truncated to 500 characters
    images: tuple[str, ...]
    n: int
    seed: int
    seed_given: bool
    size: tuple[int, int] | None
    prompt_extend: bool
    watermark: bool
    model: str = MODEL

    @property
    def from_text(self) -> bool:
        """A text-to-image task: drawn from the prompt alone."""
        return self.model == IMAGINE_MODEL

    @property
    def uses_oss(self) -> bool:
        return any(image.startswith("oss://") for image in self.images)


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "InvalidParameter", BODY_INVALID) from None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", BODY_INVALID)
    return body


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _int_param(params: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    # The Java SDK sample sends seed as a string ("12345"), so numeric strings are accepted too.
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"The parameter `{name}` must be an integer.")
    if not low <= value <= high:
        raise _invalid(f"The parameter `{name}` must be in the range [{low}, {high}], got {value}.")
    return value


def _bool_param(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"The parameter `{name}` must be a boolean.")
    return value


def parse_size(value: Any, area_max: int = AREA_MAX) -> tuple[int, int]:
    """`"1280*720"` -> (1280, 720), with the area and aspect limits of §1.3 (`area_max`: the
    model's largest total)."""
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(
            f"The size format is invalid: {value!r}; expected a string like '1280*1280'."
        )
    width, height = int(match.group(1)), int(match.group(2))
    if width == 0 or height == 0:
        raise _invalid(f"The size {width}*{height} is invalid.")
    if not AREA_MIN <= width * height <= area_max:
        side = round(area_max**0.5)
        raise _invalid(
            f"The size {width}*{height} is out of range: total pixels must be between "
            f"768*768 and {side}*{side}."
        )
    if max(width / height, height / width) > ASPECT_MAX:
        raise _invalid(
            f"The size {width}*{height} is out of range: aspect ratio must be within 1:4 to 4:1."
        )
    return width, height


def check_model(body: dict[str, Any], route_model: str) -> str:
    """The body's model, which must be the one the route serves (an unknown name: "Model not exist")."""
    model = body.get("model")
    if model is None or model == "":
        raise ApiError(
            400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'
        )
    if model != route_model:
        raise ApiError(400, "InvalidParameter", "Model not exist.")
    return str(model)


def validate_create(body: dict[str, Any], route_model: str = MODEL) -> CreateParams:
    """Raise ApiError for anything the service rejects synchronously; return the parsed request.

    `route_model`: the model the route serves (image2image: editing, text2image: text-to-image)."""
    model = check_model(body, route_model)
    from_text = model == IMAGINE_MODEL
    data = body.get("input")
    if data is None or data == {}:
        raise ApiError(
            400, "BadRequest.EmptyInput", 'Required parameter "input" missing from request.'
        )
    if not isinstance(data, dict):
        raise _invalid("The parameter `input` must be an object.")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _invalid("The parameter `parameters` must be an object.")

    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid("Field required: input.prompt")
    negative = data.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise _invalid("The parameter `input.negative_prompt` must be a string.")

    images = data.get("images")
    if from_text:
        # Text-to-image takes no pictures: the real service documents none, so one is refused
        # rather than silently ignored (our choice).
        if images:
            raise _invalid("The parameter `input.images` is not supported by this model.")
        images = []
    elif not isinstance(images, list) or not images:
        raise _invalid("Field required: input.images")
    if len(images) > MAX_IMAGES:
        raise _invalid(
            f"The number of input images must be between 1 and {MAX_IMAGES}, got {len(images)}."
        )
    for index, image in enumerate(images, 1):
        if not isinstance(image, str) or not image.strip():
            raise _invalid(f"input.images[{index - 1}] must be a non-empty string.")
        if not image.startswith(SCHEMES):
            raise _invalid(
                f"The image url of image {index} is invalid: use an http(s):// or oss:// URL or a "
                "data:{mime};base64,{data} URI."
            )

    n = _int_param(params, "n", 1, 4)
    seed = _int_param(params, "seed", 0, SEED_MAX)
    area_max = IMAGINE_AREA_MAX if from_text else AREA_MAX
    size = parse_size(params["size"], area_max) if params.get("size") is not None else None
    return CreateParams(
        prompt=prompt[:PROMPT_MAX],
        negative_prompt=negative[:NEGATIVE_PROMPT_MAX] if negative is not None else None,
        images=tuple(images),
        n=4 if n is None else n,
        seed=random.randint(0, SEED_MAX) if seed is None else seed,
        seed_given=seed is not None,
        size=size,
        prompt_extend=_bool_param(params, "prompt_extend", True),
        watermark=_bool_param(params, "watermark", False),
        model=model,
    )
