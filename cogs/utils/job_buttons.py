"""Buttons that must survive restarts: `DynamicItem`s whose custom ids carry the job id.

The state behind a click comes from the store, never from memory, so a button works whenever it is clicked
(a button whose state lived in memory would die with the process).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Self

import discord

from bot.i18n import DEFAULT_LANGUAGE, _, translate
from cogs.utils.click_guard import first_click
from cogs.utils.privately import tell

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)


class GuardedClick:
    """`callback` runs the subclass's `handle`; an unexpected error is logged with a reference and
    the clicker told privately, instead of Discord's "thinking…" staying up forever.

    Mixed in before `discord.ui.DynamicItem`, so its `callback` is the one discord.py calls.
    """

    job_id: int
    # What a repeated click is told it is already doing (a key of `once.REPEATS`: "on it" ->
    # "Already on it: job #7."); None lets every click through (a button that only opens a form).
    doing: str | None = "on it"

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        raise NotImplementedError

    async def callback(self, interaction: discord.Interaction[WanBot]) -> None:
        try:
            if self.doing is None:
                await self.handle(interaction)
                return
            custom_id = str((interaction.data or {}).get("custom_id", ""))
            async with first_click(interaction, custom_id, doing=self.doing) as first:
                if first:
                    await self.handle(interaction)
        except Exception as error:
            await report_click_error(interaction, self.job_id, error)


async def report_click_error(
    interaction: discord.Interaction[Any], job_id: int, error: BaseException
) -> None:
    """Log a failed click with its job and interaction ids, and tell the clicker privately."""
    custom_id = (interaction.data or {}).get("custom_id", "?")
    reference = _("job #{job_id}, ref {ref}", job_id=job_id, ref=interaction.id)
    log.error("button %s failed (%s)", custom_id, reference, exc_info=error)
    # A Reroll or Edit that got as far as queueing its job: that job goes on, and owns the message.
    queued = interaction.extras.get("job_id")
    if queued:
        text = _(
            "Something went wrong on our side ({reference}). Your new job #{queued} was queued "
            "and goes on.",
            reference=reference,
            queued=queued,
        )
    else:
        text = _(
            "Something went wrong on our side ({reference}). Nothing was charged. "
            "Please try again.",
            reference=reference,
        )
    await tell(interaction, text, keep_original=bool(queued))


class JobButton(
    GuardedClick,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"wan:job:(?P<job_id>\d+)",
):
    """A button whose custom id is `wan:<action>:<job_id>`; subclasses set the look and the template
    and answer clicks in `handle` (see `GuardedClick`).

    `label` is marked with `N_` and shown in `language`: the language of the message the button is
    on (the job's public one). A button rebuilt from a click's custom id needs no label.
    """

    action = "job"
    label = ""
    style = discord.ButtonStyle.secondary
    emoji: str | None = None

    def __init__(self, job_id: int, language: str = DEFAULT_LANGUAGE) -> None:
        super().__init__(
            discord.ui.Button(
                label=translate(language, self.label) if self.label else None,
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
