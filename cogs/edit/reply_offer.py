"""The **Edit** offer under a reply that pinged the bot only through Discord's reply toggle.

Such a reply ("thanks!", "lol") is not taken as a paid request: the bot answers with one button, and only
a click by the reply's author starts the edit. The button is a `DynamicItem` whose custom id carries the
reply's id and its author's id, so a click right after a restart still works; the offer's age comes from
its own message id (a snowflake holds its creation time), so an old offer is refused even when the
timer that deletes it died with the process.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self

import discord

from bot.i18n import DEFAULT_LANGUAGE, _, render
from cogs.utils.job_buttons import GuardedClick
from cogs.utils.language import private_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

# How long an offer stays (the issue asks for "a minute").
OFFER_SECONDS = 60.0
REPLIES_COG = "Replies"


class OfferTaker(Protocol):
    """What the reply cog does with a click on an offer (kept behind a Protocol: utils never import cogs)."""

    offer_seconds: float

    async def accept_offer(
        self, interaction: discord.Interaction[WanBot], request_id: int, author_id: int
    ) -> None: ...


def offer_age(message: discord.Message | None) -> float:
    """Seconds since the offer was posted (its id is a snowflake with the creation time)."""
    if message is None:
        return 0.0
    return (datetime.now(UTC) - discord.utils.snowflake_time(message.id)).total_seconds()


class OfferButton(
    GuardedClick,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"wan:offer:(?P<request_id>\d+):(?P<author_id>\d+)",
):
    """**Edit**: start the edit the reply asked for; for the reply's author only. Labelled in
    `language`, the server's (the offer is public)."""

    def __init__(self, request_id: int, author_id: int, language: str = DEFAULT_LANGUAGE) -> None:
        super().__init__(
            discord.ui.Button(
                label=render(language, _("Edit")),
                style=discord.ButtonStyle.primary,
                custom_id=f"wan:offer:{request_id}:{author_id}",
                emoji="✏️",
            )
        )
        self.request_id = request_id
        self.author_id = author_id
        self.job_id = 0  # no job yet; `GuardedClick` names it in error reports

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(int(match["request_id"]), int(match["author_id"]))

    async def handle(self, interaction: discord.Interaction[WanBot]) -> None:
        taker: OfferTaker | None = interaction.client.get_cog(REPLIES_COG)  # type: ignore[assignment]
        if taker is None:
            await interaction.response.send_message(
                render(
                    private_language(interaction),
                    _("Reply edits are turned off on this bot right now."),
                ),
                ephemeral=True,
            )
            return
        await taker.accept_offer(interaction, self.request_id, self.author_id)


def offer_view(request_id: int, author_id: int, language: str) -> discord.ui.View:
    """A view holding only the offer's button (never times out: the button checks the offer's age),
    labelled in `language`."""
    view = discord.ui.View(timeout=None)
    view.add_item(OfferButton(request_id, author_id, language))
    return view
