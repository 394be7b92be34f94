"""How input images reach Wan: one small strategy per `WAN_IMAGE_TRANSPORT` mode.

- `url`: pass the image's public URL (e.g. Discord's CDN) through; Wan downloads it.
- `base64`: inline the bytes as `data:{mime};base64,...`. Works in every region and
  needs no third party to be reachable from Wan, so it is the default.
- `upload`: DashScope's temporary storage: one upload policy per call, one OSS form
  POST per image, then `oss://{key}` plus the `X-DashScope-OssResourceResolve: enable` header.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import aiohttp

from bot.wan.body import InlineImage
from bot.wan.errors import BAD_RESPONSE, WanError
from bot.wan.models import InputImage

log = logging.getLogger(__name__)

TransportName = Literal["url", "base64", "upload"]
OSS_RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
}


@dataclass(frozen=True)
class PreparedImages:
    """What goes into `input.images`, and any headers the create call then needs."""

    images: list[str | InlineImage]
    headers: dict[str, str] = field(default_factory=dict)


class ImageTransport(Protocol):
    name: TransportName

    async def prepare(self, images: Sequence[InputImage]) -> PreparedImages: ...


# Returns (object key, form); called again for every attempt, since a form can be sent only once
# and the policy forbids overwriting a key a lost answer may have already stored.
FormBuilder = Callable[[], tuple[str, aiohttp.FormData]]


class UploadApi(Protocol):
    """The two HTTP calls of the upload flow, implemented (with retries) by the client."""

    async def get_upload_policy(self) -> Mapping[str, Any]: ...

    async def post_upload(self, host: str, build: FormBuilder) -> str:
        """POST the form `build()` returns (a fresh one per attempt); return the key stored."""
        ...


def data_uri(image: InputImage) -> InlineImage:
    """The image inline, as `data:{mime};base64,...`; encoded while the request is sent (see body.py)."""
    if image.data is None and image.path is None:
        raise WanError("InvalidParameter", "image has no data to send", retryable=False)
    return InlineImage(image.mime, image.data, image.path)


class UrlTransport:
    name: TransportName = "url"

    async def prepare(self, images: Sequence[InputImage]) -> PreparedImages:
        out: list[str | InlineImage] = []
        for image in images:
            if image.url:
                out.append(image.url)
            else:
                # Nothing to point Wan at (e.g. an image we made ourselves): inline it instead.
                out.append(data_uri(image))
        return PreparedImages(out)


class Base64Transport:
    name: TransportName = "base64"

    async def prepare(self, images: Sequence[InputImage]) -> PreparedImages:
        out: list[str | InlineImage] = []
        for image in images:
            if not image.has_bytes and image.url:
                out.append(image.url)  # only a URL was given: let Wan fetch it
            else:
                out.append(data_uri(image))
        return PreparedImages(out)


def _safe_name(image: InputImage, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", image.filename.rsplit("/", 1)[-1])[:60] or "image"
    ext = _EXTENSIONS.get(image.mime, "")
    if ext and not stem.lower().endswith(ext):
        stem = stem.rsplit(".", 1)[0] + ext
    # Unique per image and attempt: the policy forbids overwriting, and two inputs may share a name.
    return f"{index}-{uuid.uuid4().hex[:12]}-{stem}"


def upload_form(policy: Mapping[str, Any], key: str, image: InputImage) -> aiohttp.FormData:
    """The OSS form fields of DashScope's upload policy, in order, with `file` last as OSS requires."""
    assert image.data is not None
    form = aiohttp.FormData()
    form.add_field("OSSAccessKeyId", str(policy["oss_access_key_id"]))
    form.add_field("Signature", str(policy["signature"]))
    form.add_field("policy", str(policy["policy"]))
    form.add_field("key", key)
    form.add_field("x-oss-object-acl", str(policy.get("x_oss_object_acl", "private")))
    form.add_field("x-oss-forbid-overwrite", str(policy.get("x_oss_forbid_overwrite", "true")))
    form.add_field("success_action_status", "200")
    form.add_field("x-oss-content-type", image.mime)
    form.add_field("file", image.data, filename=key.rsplit("/", 1)[-1], content_type=image.mime)
    return form


class UploadTransport:
    name: TransportName = "upload"

    def __init__(self, api: UploadApi) -> None:
        self._api = api

    async def prepare(self, images: Sequence[InputImage]) -> PreparedImages:
        if not any(image.has_bytes for image in images):
            return await UrlTransport().prepare(images)
        # One policy for every image of this call (as the SDK does since 2025-11).
        policy = await self._api.get_upload_policy()
        for name in ("policy", "signature", "upload_dir", "upload_host", "oss_access_key_id"):
            if not policy.get(name):
                raise WanError(BAD_RESPONSE, f"upload policy has no {name}")
        out = []
        for index, image in enumerate(images, start=1):
            if not image.has_bytes:
                out.append(image.url or "")
                continue
            if image.data is None and image.path is not None:
                # The form needs the bytes (an upload is one image of at most 10 MB at a time).
                image = replace(image, data=await asyncio.to_thread(image.path.read_bytes))

            def build(
                image: InputImage = image, index: int = index
            ) -> tuple[str, aiohttp.FormData]:
                key = f"{str(policy['upload_dir']).rstrip('/')}/{_safe_name(image, index)}"
                return key, upload_form(policy, key, image)

            key = await self._api.post_upload(str(policy["upload_host"]), build)
            log.debug("uploaded image %d as %s", index, key)
            out.append(f"oss://{key}")
        return PreparedImages(out, {OSS_RESOLVE_HEADER: "enable"})


def make_transport(name: str, api: UploadApi) -> ImageTransport:
    if name == "url":
        return UrlTransport()
    if name == "base64":
        return Base64Transport()
    if name == "upload":
        return UploadTransport(api)
    raise ValueError(f"unknown image transport {name!r} (expected url, base64 or upload)")
