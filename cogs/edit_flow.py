"""The one path from an interaction to a queued job, shared by /wanedit, the menu and the result buttons.

Order matters: cheap checks answer at once; then the public deferral (within Discord's 3 s); then downloads
and real decodes; only then quota is reserved and the job stored. Every refusal before that point is an
ephemeral message and costs nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

from bot.images import CheckedImage, ImageRejected
from bot.jobs import JobRefused, JobSpec
from cogs import inputs

if TYPE_CHECKING:
    from bot.app import WanBot

log = logging.getLogger(__name__)

MAX_PROMPT = 2000
MAX_NEGATIVE = 500
MAX_SEED = 2_147_483_647


class RequestRejected(Exception):
    """Bad input; `str()` is the message for the user."""


@dataclass
class EditOptions:
    """What the user asked for, beyond the images."""

    prompt: str
    count: int = 1
    negative_prompt: str | None = None
    seed: int | None = None
    watermark: bool = False
    prompt_extend: bool = True
    source: str = "slash"
    parent_job_id: int | None = None
    parent_index: int | None = None
    extra: dict = field(default_factory=dict)


def check_options(options: EditOptions) -> EditOptions:
    """Validate the text and numbers; return them normalised (stripped, a seed chosen)."""
    prompt = options.prompt.strip()
    if not prompt:
        raise RequestRejected("Write a prompt saying what to change, e.g. “make the sky stormy”.")
    if len(prompt) > MAX_PROMPT:
        raise RequestRejected(f"The prompt is {len(prompt)} characters; the limit is {MAX_PROMPT}.")
    negative = (options.negative_prompt or "").strip() or None
    if negative is not None and len(negative) > MAX_NEGATIVE:
        raise RequestRejected(
            f"The negative prompt is {len(negative)} characters; the limit is {MAX_NEGATIVE}."
        )
    if not 1 <= options.count <= 4:
        raise RequestRejected("`count` must be 1 to 4.")
    seed = options.seed
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise RequestRejected(f"`seed` must be 0 to {MAX_SEED}.")
    if seed is None:
        # Chosen here rather than by Wan, so every result can show the seed that made it.
        seed = random.randint(0, MAX_SEED - 3)
    options.prompt, options.negative_prompt, options.seed = prompt, negative, seed
    return options


def scope_of(guild_id: int | None) -> int:
    """Quota scope: the server, or 0 for DMs (their own scope)."""
    return guild_id or 0


async def refuse(interaction: discord.Interaction[WanBot], text: str) -> None:
    """Tell the user `text` privately, replacing the public 'thinking…' if we had deferred."""
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        pass
    await interaction.followup.send(text, ephemeral=True)


async def start_job(
    interaction: discord.Interaction[WanBot],
    options: EditOptions,
    attachments: Sequence[discord.Attachment] = (),
    *,
    source_message: discord.Message | None = None,
    images: list[CheckedImage] | None = None,
    described: list[dict] | None = None,
) -> int | None:
    """Validate, reserve and queue one edit for this interaction; return the job id or None if refused.

    Either `attachments` (downloaded and checked here) or already checked `images` with their
    `described` input rows (a button reusing a stored job) are given.
    """
    bot = interaction.client
    try:
        check_options(options)
        if images is None:
            inputs.precheck(attachments)
    except (RequestRejected, ImageRejected) as err:
        await refuse(interaction, f"{err} Nothing was charged.")
        return None
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True)
    try:
        if images is None:
            images = await inputs.load(attachments)
            described = inputs.describe(attachments, images, source_message)
    except ImageRejected as err:
        await refuse(interaction, f"{err} Nothing was charged.")
        return None
    response = await interaction.original_response()
    channel = interaction.channel
    in_thread = isinstance(channel, discord.Thread)
    extra = dict(options.extra)
    extra["upload_limit"] = interaction.filesize_limit
    spec = JobSpec(
        scope=scope_of(interaction.guild_id),
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id or response.channel.id,
        thread_id=interaction.channel_id if in_thread else None,
        user_id=interaction.user.id,
        source=options.source,
        prompt=options.prompt,
        count=options.count,
        negative_prompt=options.negative_prompt,
        seed=options.seed,
        watermark=options.watermark,
        prompt_extend=options.prompt_extend,
        inputs=described or [],
        message_id=response.id,
        application_id=interaction.application_id,
        interaction_token=interaction.token,
        token_expires_at=interaction.expires_at,
        parent_job_id=options.parent_job_id,
        parent_index=options.parent_index,
        extra=extra,
    )
    try:
        job = await bot.runner.submit(spec, images)
    except JobRefused as err:
        await refuse(interaction, str(err))
        return None
    interaction.extras["job_id"] = job.id
    return job.id
