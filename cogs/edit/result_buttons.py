"""The buttons on every result message: Reroll, Edit (one per image when there are several) and Delete.

Each is a `DynamicItem` whose custom id carries the job id, so it works after a restart and never times
out; what a click needs is read from the store. Reroll and Edit are the clicker's own request, checked and
charged against the clicker's quota by `start_job`, like /wanedit. Inputs are fetched again from their
messages, since Discord's attachment URLs expire. A result made from text (/wanimagine) has no inputs:
its Reroll is a new text-to-image job, and Edit makes an edit of the result like any other.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.i18n import DEFAULT_LANGUAGE, N_, _, render, text_of
from bot.images import CheckedImage, ImageRejected
from bot.jobs import from_text, kind_of
from bot.store import Job
from cogs.edit._form import EditModal, image_attachments
from cogs.intake import attachments as inputs
from cogs.intake.requests import EditOptions, start_job
from cogs.utils.click_guard import running_job_for_click
from cogs.utils.job_buttons import GuardedClick, JobButton
from cogs.utils.language import job_language, private_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[tuple[list[CheckedImage], list[dict]]]]
UNKNOWN_JOB = _("This result's job is no longer known to the bot, so it can't be reused.")


async def _say(interaction: discord.Interaction[WanBot], text: str) -> None:
    """A private answer to a click, in the clicker's own language."""
    await interaction.response.send_message(
        render(private_language(interaction), text), ephemeral=True
    )


async def _job_or_say(interaction: discord.Interaction[WanBot], job_id: int) -> Job | None:
    job = await interaction.client.store.get_job(job_id)
    if job is None:
        await _say(interaction, UNKNOWN_JOB)
    return job


async def result_image(
    job: Job,
    index: int,
    channel: discord.abc.Messageable,
    hint: discord.Message | None = None,
) -> tuple[discord.Attachment, discord.Message]:
    """Image `index` (0-based) of a job's results, with fresh URLs, and the message holding it.

    Results are normally one message; when they were too big together they are one message per image.
    `hint` is a result message already in hand (the one clicked), used instead of fetching it.
    """
    seen = 0
    # Empty only for a click in the instant between posting the result and marking the job done.
    ids = job.result_message_ids or ([hint.id] if hint is not None else [])
    for message_id in ids:
        if hint is not None and hint.id == message_id:
            message = hint
        else:
            try:
                message = await channel.fetch_message(message_id)  # type: ignore[attr-defined]
            except discord.HTTPException:
                continue
        found = image_attachments(message)
        if index < seen + len(found):
            return found[index - seen], message
        seen += len(found)
    raise ImageRejected(
        _(
            "Image {number} of job #{job_id} is gone: its result message was deleted.",
            number=index + 1,
            job_id=job.id,
        )
    )


def edit_loader(job: Job, index: int, interaction: discord.Interaction[WanBot]) -> Loader:
    """A `start_job` loader for "edit image `index` of `job`": the result itself, fetched fresh."""

    async def load() -> tuple[list[CheckedImage], list[dict]]:
        channel = interaction.channel
        assert channel is not None
        attachment, message = await result_image(job, index, channel, interaction.message)
        images = await inputs.load(
            [attachment], timeout=interaction.client.settings.download_timeout
        )
        return images, inputs.describe([attachment], images, message)

    return load


def reroll_loader(job: Job, interaction: discord.Interaction[WanBot]) -> Loader:
    """A `start_job` loader for "the same inputs again": fetched from their messages when known."""

    async def load() -> tuple[list[CheckedImage], list[dict]]:
        if from_text(job):
            return [], []  # made from the prompt alone
        if not job.inputs:
            raise ImageRejected(
                _("Job #{job_id} has no stored input images to reuse.", job_id=job.id)
            )
        bot = interaction.client
        try:
            images = await inputs.refetch(bot, job)
        except ImageRejected as err:
            if not bot.message_content and any(row.get("source_message_id") for row in job.inputs):
                # Discord blanks other people's messages for this bot, so no fresh URL for them.
                text = _(
                    "Can't reroll job #{job_id}: {reason} Its link has expired and this bot can't "
                    "re-read other people's messages; use **Edit with Wan** on the original "
                    "message instead.",
                    job_id=job.id,
                    reason=text_of(err),
                )
            else:
                text = _("Can't reroll job #{job_id}: {reason}", job_id=job.id, reason=text_of(err))
            raise ImageRejected(text) from None
        # Same rows, with the fresh URLs (the next reroll fetches them again anyway).
        described = [
            {**row, "url": image.url or row.get("url")}
            for row, image in zip(job.inputs, images, strict=True)
        ]
        return images, described

    return load


class RerollButton(JobButton, template=r"wan:reroll:(?P<job_id>\d+)"):
    """Same inputs (none for a result made from text) and prompt, a new seed: the clicker's own
    request."""

    action = "reroll"
    label = N_("Reroll")
    style = discord.ButtonStyle.primary
    emoji = "🎲"

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        job = await _job_or_say(interaction, self.job_id)
        if job is None:
            return
        # A repeat after the first click's job was stored (or after a restart): name that job.
        click = f"reroll:{interaction.message.id if interaction.message else job.id}"
        running = await running_job_for_click(interaction.client.store, interaction.user.id, click)
        if running is not None:
            await _say(interaction, _("Already on it: job #{job_id}.", job_id=running.id))
            return
        options = EditOptions(
            prompt=job.prompt,
            count=int(job.options.get("count", 1)),
            negative_prompt=job.negative_prompt,
            seed=None,  # a new one, chosen by check_options
            watermark=bool(job.options.get("watermark", False)),
            prompt_extend=bool(job.options.get("prompt_extend", True)),
            aspect=job.options.get("aspect"),
            spoiler=bool(job.extra.get("spoiler")),
            source="reroll",
            # A reroll of an edit came from the same image as that edit.
            parent_job_id=job.parent_job_id,
            parent_index=job.parent_index,
            extra={"rerolled_from": job.id, "click": click},
            kind=kind_of(job),
        )
        await start_job(interaction, options, loader=reroll_loader(job, interaction))


class EditButton(
    GuardedClick,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"wan:edit:(?P<job_id>\d+)(?::(?P<number>\d+))?",
):
    """Opens the edit modal for one image of this result (`number`, 1-based; the first if absent)."""

    doing = None  # opening a form twice costs nothing; the form's submit is guarded

    def __init__(
        self, job_id: int, number: int | None = None, language: str = DEFAULT_LANGUAGE
    ) -> None:
        custom_id = f"wan:edit:{job_id}" if number is None else f"wan:edit:{job_id}:{number}"
        label = _("Edit") if number is None else _("Edit {number}", number=number)
        super().__init__(
            discord.ui.Button(
                label=render(language, label),
                style=discord.ButtonStyle.secondary,
                custom_id=custom_id,
                emoji="✏️",
                row=None if number is None else 1,
            )
        )
        self.job_id = job_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> EditButton:
        number = match["number"]
        return cls(int(match["job_id"]), int(number) if number else None)

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        job = await _job_or_say(interaction, self.job_id)
        if job is None:
            return
        index = (self.number or 1) - 1

        async def submit(ix: discord.Interaction[WanBot], options: EditOptions) -> None:
            # The edited image already has the job's shape; its spoiler is kept explicitly.
            options.spoiler = bool(job.extra.get("spoiler"))
            await start_job(ix, options, loader=edit_loader(job, index, ix))

        if self.number is None:
            title = _("Edit job #{job_id}", job_id=job.id)
        else:
            title = _("Edit image {number} of job #{job_id}", number=index + 1, job_id=job.id)
        # The form is private: the clicker's own language.
        language = private_language(interaction)
        modal = EditModal(
            render(language, title),
            submit,
            language=language,
            source="edit",
            parent_job_id=job.id,
            parent_index=index,
        )
        await interaction.response.send_modal(modal)


class DeleteButton(JobButton, template=r"wan:delete:(?P<job_id>\d+)"):
    """Deletes the result: for the member who asked for it and members with Manage Messages."""

    action = "delete"
    label = N_("Delete")
    style = discord.ButtonStyle.danger
    emoji = "🗑️"
    doing = "deleting it"

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        job = await interaction.client.store.get_job(self.job_id)
        moderator = interaction.permissions.manage_messages
        if not moderator and (job is None or interaction.user.id != job.user_id):
            await _say(
                interaction,
                _(
                    "Only the member who asked for this edit (or someone with Manage Messages) "
                    "can delete it."
                ),
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        ids = list(job.result_message_ids) if job is not None else []
        if interaction.message is not None and interaction.message.id not in ids:
            ids.append(interaction.message.id)
        channel = interaction.channel
        deleted = 0
        for message_id in ids:
            try:
                await channel.get_partial_message(message_id).delete()  # type: ignore[union-attr]
                deleted += 1
            except discord.NotFound:
                pass  # already gone
        log.info(
            "job %d: %d result message(s) deleted by %d", self.job_id, deleted, interaction.user.id
        )
        await interaction.followup.send(
            render(private_language(interaction), _("Deleted.")), ephemeral=True
        )


def result_view(job: Job, image_count: int) -> discord.ui.View:
    """Reroll, Edit and Delete; with several images, one numbered Edit button per image (second row).
    Labelled in the job's public language, like the message they are on."""
    language = job_language(job)
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job.id, language))
    if image_count <= 1:
        view.add_item(EditButton(job.id, language=language))
    view.add_item(DeleteButton(job.id, language))
    if image_count > 1:
        for number in range(1, min(image_count, 4) + 1):
            view.add_item(EditButton(job.id, number, language))
    return view
