"""Turning Discord attachments into checked input images: shared by every way of asking for an edit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import discord

from bot import images
from bot.images import CheckedImage, ImageRejected

MAX_IMAGES = 3


def precheck(attachments: Sequence[discord.Attachment]) -> None:
    """Everything that can be refused from what Discord says, before any download."""
    if not attachments:
        raise ImageRejected("Attach at least one image (PNG, JPEG, WEBP or BMP).")
    if len(attachments) > MAX_IMAGES:
        raise ImageRejected(
            f"Wan takes at most {MAX_IMAGES} images; {len(attachments)} were given."
        )
    for index, attachment in enumerate(attachments, start=1):
        images.precheck(index, attachment.filename, attachment.content_type, attachment.size)


async def load(attachments: Sequence[discord.Attachment]) -> list[CheckedImage]:
    """Download the attachments (from Discord's CDN, nothing else) and decode each in a worker thread."""
    precheck(attachments)
    async with images.load_slot():
        return await _load(attachments)


async def _load(attachments: Sequence[discord.Attachment]) -> list[CheckedImage]:
    try:
        blobs = await asyncio.gather(*(a.read() for a in attachments))
    except discord.HTTPException:
        raise ImageRejected(
            "Discord wouldn't hand over one of the images; try attaching it again."
        ) from None
    return list(
        await asyncio.gather(
            *(
                images.check(i, a.filename, data, a.url)
                for i, (a, data) in enumerate(zip(attachments, blobs, strict=True), start=1)
            )
        )
    )


def describe(
    attachments: Sequence[discord.Attachment],
    checked: Sequence[CheckedImage],
    source: discord.Message | None = None,
) -> list[dict]:
    """What the job row keeps about its inputs: enough to fetch them again (fresh URLs) later."""
    described = []
    for attachment, image in zip(attachments, checked, strict=True):
        entry: dict = {
            "url": attachment.url,
            "filename": attachment.filename,
            "content_type": image.mime,
            "size": len(image.data),
            "width": image.width,
            "height": image.height,
            "attachment_id": attachment.id,
        }
        if source is not None:
            entry["source_channel_id"] = source.channel.id
            entry["source_message_id"] = source.id
        described.append(entry)
    return described
