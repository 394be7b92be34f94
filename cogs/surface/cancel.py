"""The Cancel button on a job's progress message: stops a job while it waits in our queue or Wan
still has it PENDING."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.i18n import N_, _, render
from bot.store import Job
from cogs.surface.outcomes import final_embed
from cogs.utils.job_buttons import JobButton
from cogs.utils.language import job_language, private_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


class CancelButton(JobButton, template=r"wan:cancel:(?P<job_id>\d+)"):
    """Cancel a job while it waits in our queue or Wan still has it PENDING."""

    action = "cancel"
    label = N_("Cancel")
    emoji = "✖️"
    doing = "cancelling it"

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        bot = interaction.client
        language = private_language(interaction)
        job = await bot.store.get_job(self.job_id)
        if job is None:
            await interaction.response.send_message(
                render(language, _("This job no longer exists.")), ephemeral=True
            )
            return
        perms = interaction.permissions
        if interaction.user.id != job.user_id and not perms.manage_messages:
            await interaction.response.send_message(
                render(
                    language,
                    _("Only the member who asked for this edit (or a moderator) can cancel it."),
                ),
                ephemeral=True,
            )
            return
        if job.finished:
            # A message whose last edit never landed: put the ending on it and drop the button.
            await interaction.response.edit_message(embed=final_embed(job), view=None)
            text = await bot.runner.cancel(self.job_id)
            await interaction.followup.send(render(language, text), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await bot.runner.cancel(self.job_id)
        await interaction.followup.send(render(language, text), ephemeral=True)


def cancel_view(job: Job) -> discord.ui.View:
    """A view holding only the job's Cancel button (never times out), in the job's public language."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, job_language(job)))
    return view
