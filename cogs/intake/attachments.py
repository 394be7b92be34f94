"""Turning Discord attachments into checked input images: shared by every way of asking for an edit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import discord
from discord.http import Route

from bot import images
from bot.i18n import Number, Text, _, _n
from bot.images import CheckedImage, ImageRejected
from bot.store import Job
from cogs.utils.channels import channel_by_id

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

MAX_IMAGES = 3
# Seconds one image may take to download (the bot passes WANBOT_DOWNLOAD_TIMEOUT).
DOWNLOAD_TIMEOUT = 30.0
# A URL expiring within this many seconds is refreshed first: it may expire mid-download.
EXPIRY_MARGIN = 60.0
MAX_REFRESH = 50  # URLs per refresh call (Discord's limit)
REFRESH_ROUTE = partial(Route, "POST", "/attachments/refresh-urls")


def precheck(attachments: Sequence[discord.Attachment]) -> None:
    """Everything that can be refused from what Discord says, before any download."""
    if not attachments:
        raise ImageRejected(_("Attach at least one image (PNG, JPEG, WEBP or BMP)."))
    if len(attachments) > MAX_IMAGES:
        raise ImageRejected(
            _n(
                "Wan takes at most {most} images; {count} was given.",
                "Wan takes at most {most} images; {count} were given.",
                len(attachments),
                most=MAX_IMAGES,
            )
        )
    for index, attachment in enumerate(attachments, start=1):
        images.precheck(index, attachment.filename, attachment.content_type, attachment.size)


async def load(
    attachments: Sequence[discord.Attachment], *, timeout: float = DOWNLOAD_TIMEOUT
) -> list[CheckedImage]:
    """Download the attachments (from Discord's CDN, nothing else), each within `timeout` seconds,
    and decode each in a worker thread. A download that stalls delays only its own request."""
    precheck(attachments)
    async with images.download_slot():
        blobs = await asyncio.gather(*(_read(i, a, timeout) for i, a in enumerate(attachments, 1)))
        # One decode at a time: each holds a full pixel buffer (12 MB for 2000x2000 RGB), and the
        # load slot already keeps both cores busy when requests arrive together.
        async with images.load_slot():
            checked = []
            for i, (a, data) in enumerate(zip(attachments, blobs, strict=True), start=1):
                checked.append(await images.check(i, a.filename, data, a.url))
            return checked


async def _read(index: int, attachment: discord.Attachment, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await attachment.read()
    except discord.HTTPException:
        raise ImageRejected(
            _("Discord wouldn't hand over one of the images; try attaching it again.")
        ) from None
    except TimeoutError:
        log.warning(
            "image %d (%d bytes) took over %g s to download", index, attachment.size, timeout
        )
        raise ImageRejected(stalled(index, attachment.filename, timeout)) from None


def stalled(index: int, filename: str, timeout: float) -> Text:
    return _(
        "Image {index} (`{filename}`) did not finish downloading from Discord within {seconds} "
        "seconds; try again in a moment.",
        index=index,
        filename=filename,
        seconds=Number(timeout),
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
            "sha256": image.sha256,
            "attachment_id": attachment.id,
        }
        if source is not None:
            entry["source_channel_id"] = source.channel.id
            entry["source_message_id"] = source.id
        described.append(entry)
    return described


def url_expires_at(url: str) -> float | None:
    """When a signed Discord CDN URL stops working (its `ex=` hex timestamp), or None if unsigned."""
    values = parse_qs(urlsplit(url).query).get("ex")
    try:
        return float(int(values[0], 16)) if values else None
    except ValueError:
        return None


def expired(url: str, now: float | None = None) -> bool:
    """Whether the URL's signature has run out, or will before a download could finish."""
    at = url_expires_at(url)
    return at is not None and at < (time.time() if now is None else now) + EXPIRY_MARGIN


async def refresh_urls(bot: WanBot, urls: Sequence[str]) -> dict[str, str]:
    """Fresh signatures for Discord attachment URLs (`POST /attachments/refresh-urls`, with the bot
    token): {original: refreshed}. What Discord can't refresh is left out; no answer is no error."""
    fresh: dict[str, str] = {}
    for start in range(0, len(urls), MAX_REFRESH):
        batch = list(urls[start : start + MAX_REFRESH])
        try:
            data = await bot.http.request(REFRESH_ROUTE(), json={"attachment_urls": batch})
        except discord.HTTPException as err:
            log.warning("refreshing %d attachment URL(s) failed: %s", len(batch), err.status)
            continue
        for entry in (data or {}).get("refreshed_urls") or []:
            original, refreshed = entry.get("original"), entry.get("refreshed")
            if original and refreshed and refreshed != original:
                fresh[original] = refreshed
    return fresh


async def refetch(bot: WanBot, job: Job) -> list[CheckedImage]:
    """A stored job's input images again, from fresh URLs where Discord can give them.

    Attachment URLs expire (about 24 h), so a queued job (or one resumed after a restart, or a
    Reroll days later) re-reads the messages its images came from; a URL still expired after that
    (a `/wanedit` attachment has no message; other people's messages are blank without the Message
    Content intent) gets a fresh signature from Discord's refresh endpoint.
    """
    async with images.refetch_slot():  # not behind the requests coming in: see bot/images.py
        urls: list[str | None] = []
        for index, spec in enumerate(job.inputs, start=1):
            url = spec.get("url")
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
                        _("Image {index} is gone: its message was deleted.", index=index)
                    ) from None
            if not url:
                raise ImageRejected(_("Image {index} is no longer available.", index=index))
            urls.append(url)
        stale = [u for u in urls if u and expired(u)]
        if stale:
            refreshed = await refresh_urls(bot, stale)
            urls = [refreshed.get(u, u) if u else u for u in urls]
        checked: list[CheckedImage] = []
        for index, (spec, url) in enumerate(zip(job.inputs, urls, strict=True), start=1):
            filename = spec.get("filename") or f"image{index}.png"
            data = await _download(bot, str(url), index, filename)
            checked.append(await images.recheck(index, filename, data, url, spec))
        return checked


async def _download(bot: WanBot, url: str, index: int, filename: str) -> bytes:
    """The file behind `url`; refused by the CDN (expired, also when our clock and Discord's
    disagree), it is refreshed once and fetched again. Each fetch within the download timeout."""
    gone = ImageRejected(_("Image {index} is no longer available from Discord.", index=index))
    timeout = bot.settings.download_timeout
    try:
        async with asyncio.timeout(timeout):
            return await bot.http.get_from_cdn(url)
    except (discord.NotFound, discord.Forbidden):
        refreshed = (await refresh_urls(bot, [url])).get(url)
    except discord.HTTPException:
        raise gone from None
    except TimeoutError:
        raise ImageRejected(stalled(index, filename, timeout)) from None
    if refreshed is None:
        raise gone
    try:
        async with asyncio.timeout(timeout):
            return await bot.http.get_from_cdn(refreshed)
    except discord.HTTPException:
        raise gone from None
    except TimeoutError:
        raise ImageRejected(stalled(index, filename, timeout)) from None
