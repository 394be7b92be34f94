"""Every persistent component, in one place: the buttons whose custom ids carry a job id, so they work
after a restart and never time out, and the views that put them on messages.

A new persistent button is added to `PERSISTENT_ITEMS`; the bot registers exactly these at start-up.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.store import Job
from cogs.utils.buttons import CancelButton
from cogs.utils.language import job_language
from cogs.utils.reply_offer import OfferButton, offer_view
from cogs.utils.result_buttons import DeleteButton, EditButton, RerollButton

PERSISTENT_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    CancelButton,
    RerollButton,
    EditButton,
    DeleteButton,
    OfferButton,
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


__all__ = ["PERSISTENT_ITEMS", "cancel_view", "offer_view", "result_view"]


def cancel_view(job: Job) -> discord.ui.View:
    """A view holding only the job's Cancel button (never times out), in the job's public language."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, job_language(job)))
    return view
