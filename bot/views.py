"""Buttons that must survive restarts: `DynamicItem`s whose custom ids carry the job id.

The state behind a click comes from the store, never from memory, so a button works whenever it is clicked
(discord-notes.md: "Buttons that die after a restart").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self

import discord

if TYPE_CHECKING:
    from bot.app import WanBot


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"wan:job:(?P<job_id>\d+)"
):
    """A button whose custom id is `wan:<action>:<job_id>`; subclasses set the look and the template."""

    action = "job"
    label = ""
    style = discord.ButtonStyle.secondary
    emoji: str | None = None

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.label,
                style=self.style,
                custom_id=f"wan:{self.action}:{job_id}",
                emoji=self.emoji,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(int(match["job_id"]))


class CancelButton(JobButton, template=r"wan:cancel:(?P<job_id>\d+)"):
    """Cancel a job while it waits in our queue or Wan still has it PENDING."""

    action = "cancel"
    label = "Cancel"
    emoji = "✖️"

    async def callback(self, interaction: discord.Interaction[WanBot]) -> None:  # type: ignore[override]
        bot = interaction.client
        job = await bot.store.get_job(self.job_id)
        if job is None:
            await interaction.response.send_message("This job no longer exists.", ephemeral=True)
            return
        perms = interaction.permissions
        if interaction.user.id != job.user_id and not perms.manage_messages:
            await interaction.response.send_message(
                "Only the member who asked for this edit (or a moderator) can cancel it.",
                ephemeral=True,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await bot.runner.cancel(self.job_id)
        await interaction.followup.send(text, ephemeral=True)


def cancel_view(job_id: int) -> discord.ui.View:
    """A view holding only the job's Cancel button (never times out)."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view
