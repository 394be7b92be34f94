"""Turning Discord attachments into checked input images: shared by every way of asking for an edit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from bot import images
from bot.images import CheckedImage, ImageRejected
from bot.store import Job
from cogs.utils.places import channel_by_id

if TYPE_CHECKING:
    from cogs.utils.wanbot import WanBot

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


async def refetch(bot: WanBot, job: Job) -> list[CheckedImage]:
    """A stored job's input images again, from fresh URLs where Discord can give them.

    Attachment URLs expire, so a queued job (or one resumed after a restart) re-reads the messages
    its images came from.
    """
    async with images.load_slot():
        checked: list[CheckedImage] = []
        for index, spec in enumerate(job.inputs, start=1):
            url = spec.get("url")
            filename = spec.get("filename") or f"image{index}.png"
            source_message = spec.get("source_message_id")
            if source_message:
                try:
                    channel = await channel_by_id(bot, int(spec["source_channel_id"]))
                    message = await channel.fetch_message(int(source_message))  # type: ignore[attr-defined]
                    fresh = discord.utils.get(
                        message.attachments, id=int(spec.get("attachment_id") or 0)
                    )
                    if fresh is not None:
                        url = fresh.url
                except discord.HTTPException:
                    raise ImageRejected(
                        f"Image {index} is gone: its message was deleted."
                    ) from None
            if not url:
                raise ImageRejected(f"Image {index} is no longer available.")
            try:
                data = await bot.http.get_from_cdn(url)
            except discord.HTTPException:
                raise ImageRejected(f"Image {index} is no longer available from Discord.") from None
            checked.append(await images.check(index, filename, data, url))
        return checked
