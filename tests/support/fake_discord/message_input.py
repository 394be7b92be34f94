"""Turn a bot's message payload (+ uploaded files) into stored message fields, validating it
the way Discord does: length limits, empty messages, components, upload size (413/40005)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .cdn import CdnFile
from .constants import (
    FLAG_EPHEMERAL,
    FLAG_IS_COMPONENTS_V2,
    FLAG_SUPPRESS_EMBEDS,
    MAX_REQUEST_SIZE,
    UPLOAD_LIMIT_BY_TIER,
    field_error,
)
from .errors import ApiError, invalid_form
from .messages import StoredMessage, iter_components
from .models import Guild
from .world import World

SUPPRESS_NOTIFICATIONS = 1 << 12
_CREATE_FLAGS = FLAG_SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2
INTERACTION_FLAGS = _CREATE_FLAGS | FLAG_EPHEMERAL
_EDIT_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_IS_COMPONENTS_V2


@dataclass
class Upload:
    """One ``files[n]`` part of a multipart request."""

    index: int
    filename: str
    data: bytes


@dataclass(frozen=True)
class UploadLimits:
    """Discord's two upload limits for one place (see constants.UPLOAD_LIMIT_BY_TIER)."""

    per_file: int
    per_request: int

    @classmethod
    def of(cls, guild: Guild | None) -> UploadLimits:
        if guild is None:  # DMs: the defaults
            return cls(UPLOAD_LIMIT_BY_TIER[0], MAX_REQUEST_SIZE)
        return cls(guild.upload_limit, guild.request_limit)


def too_large() -> ApiError:
    return ApiError(413, 40005, "Request entity too large")


def check_upload_sizes(
    payload: dict[str, Any], uploads: list[Upload], limits: UploadLimits
) -> None:
    """413 if one file is over the per-file limit, or the whole request over the per-request one."""
    if any(len(up.data) > limits.per_file for up in uploads):
        raise too_large()
    # The request is its files plus the JSON payload (multipart framing is not counted).
    size = sum(len(up.data) for up in uploads) + len(json.dumps(payload).encode())
    if uploads and size > limits.per_request:
        raise too_large()


def _validate(payload: dict[str, Any], flags: int) -> None:
    content = payload.get("content") or ""
    if len(content) > 2000:
        raise invalid_form(
            field_error(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        )
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        raise invalid_form(
            field_error(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        )
    if flags & FLAG_IS_COMPONENTS_V2 and (content or embeds):
        raise invalid_form(
            field_error(
                ["content"],
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' and 'embeds' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2",
            )
        )
    components = payload.get("components") or []
    if not flags & FLAG_IS_COMPONENTS_V2 and len(components) > 5:
        raise invalid_form(
            field_error(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        )
    seen: set[str] = set()
    for i, row in enumerate(components):
        if row.get("type") == 1 and len(row.get("components", [])) > 5:
            raise invalid_form(
                field_error(
                    ["components", i, "components"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 5 or fewer in length.",
                )
            )
    for comp in iter_components(components):
        cid = comp.get("custom_id")
        if cid is None:
            if comp.get("type") == 2 and comp.get("style") not in (5, 6):
                raise invalid_form(
                    field_error(
                        ["components"], "COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required"
                    )
                )
            continue
        if not 1 <= len(cid) <= 100:
            raise invalid_form(
                field_error(
                    ["components"],
                    "BASE_TYPE_BAD_LENGTH",
                    "custom_id must be between 1 and 100 in length.",
                )
            )
        if cid in seen:
            raise invalid_form(
                field_error(
                    ["components"],
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            )
        seen.add(cid)
        if len(comp.get("label") or "") > 80:
            raise invalid_form(
                field_error(
                    ["components"], "BASE_TYPE_MAX_LENGTH", "label must be 80 or fewer in length."
                )
            )


def _new_attachments(
    world: World,
    payload: dict[str, Any],
    uploads: list[Upload],
    folder: str,
    existing: list[CdnFile],
) -> list[CdnFile]:
    """Resolve ``attachments`` (file indexes and kept ids) and ``files[n]`` into attachments."""
    by_index = {u.index: u for u in uploads}
    kept = {str(a.id): a for a in existing}
    entries = payload.get("attachments")
    if entries is None:
        entries = [{"id": u.index, "filename": u.filename} for u in uploads]
    result: list[CdnFile] = []
    used: set[int] = set()
    for i, entry in enumerate(entries):
        raw_id = entry.get("id")
        if str(raw_id) in kept:
            result.append(kept[str(raw_id)])
            continue
        try:
            upload = by_index[int(raw_id)]
        except (KeyError, TypeError, ValueError):
            raise invalid_form(
                field_error(
                    ["attachments", i], "ATTACHMENT_NOT_FOUND", f"Unknown attachment {raw_id!r}"
                )
            ) from None
        used.add(upload.index)
        result.append(
            world.cdn.store(
                upload.data,
                entry.get("filename") or upload.filename,
                folder=folder,
                description=entry.get("description"),
            )
        )
    # Files sent without an entry in ``attachments`` are still attached, as Discord does.
    for u in uploads:
        if u.index not in used and payload.get("attachments") is not None:
            result.append(world.cdn.store(u.data, u.filename, folder=folder))
    return result


def new_message_fields(
    world: World,
    payload: dict[str, Any],
    uploads: list[Upload],
    *,
    channel_id: int,
    limits: UploadLimits,
    allowed_flags: int = _CREATE_FLAGS,
) -> dict[str, Any]:
    """Fields for MessageService.create from a create-message payload."""
    flags = int(payload.get("flags") or 0)
    if flags & ~allowed_flags:
        raise invalid_form(field_error(["flags"], "MESSAGE_FLAGS_INVALID", "Invalid flags"))
    _validate(payload, flags)
    check_upload_sizes(payload, uploads, limits)
    attachments = _new_attachments(world, payload, uploads, f"attachments/{channel_id}", [])
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    components = payload.get("components") or []
    if not (
        content
        or embeds
        or attachments
        or components
        or payload.get("sticker_ids")
        or payload.get("poll")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")
    return {
        "content": content,
        "embeds": embeds,
        "components": components,
        "attachments": attachments,
        "tts": bool(payload.get("tts", False)),
        "flags": flags,
    }


def apply_edit(
    world: World,
    msg: StoredMessage,
    payload: dict[str, Any],
    uploads: list[Upload],
    *,
    limits: UploadLimits,
) -> None:
    """Apply an edit payload to ``msg`` in place (only the keys present change)."""
    flags = msg.flags
    if "flags" in payload and payload["flags"] is not None:
        keep = msg.flags & ~_EDIT_FLAGS
        flags = keep | (int(payload["flags"]) & _EDIT_FLAGS)
    merged = {"content": msg.content, "embeds": msg.embeds, "components": msg.components}
    merged.update({k: payload[k] for k in ("content", "embeds", "components") if k in payload})
    _validate(merged, flags)
    check_upload_sizes(payload, uploads, limits)
    if "content" in payload:
        msg.content = payload["content"] or ""
    if "embeds" in payload:
        msg.embeds = payload["embeds"] or []
    if "components" in payload:
        msg.components = payload["components"] or []
    if "attachments" in payload or uploads:
        new = _new_attachments(
            world, payload, uploads, f"attachments/{msg.channel_id}", msg.attachments
        )
        msg.attachments = new if "attachments" in payload else [*msg.attachments, *new]
    msg.flags = flags
