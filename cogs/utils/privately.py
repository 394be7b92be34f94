"""Telling one member something privately, whatever state their interaction's response is in."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.i18n import _, render
from cogs.utils.language import private_language, public_language

log = logging.getLogger(__name__)


async def tell(
    interaction: discord.Interaction[Any], text: str, *, keep_original: bool = False
) -> None:
    """Tell the user `text` privately, in their own language, whatever state the interaction's
    response is in.

    After a public deferral Discord makes the first follow-up replace the public "thinking…"
    placeholder (keeping its visibility), so that placeholder is resolved first, the user is told
    privately, and the placeholder removed, unless `keep_original` (it became a job's message).
    """
    text = render(private_language(interaction), text)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if not keep_original:
            try:
                # The placeholder is public: the server's language.
                language = await _placeholder_language(interaction)
                await interaction.edit_original_response(
                    content=render(language, _("Request not accepted.")), embed=None, view=None
                )
            except discord.HTTPException:
                pass
        await interaction.followup.send(text, ephemeral=True)
        if not keep_original:
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                pass
    except discord.HTTPException:
        log.info("could not tell the user about an error (interaction %s)", interaction.id)


async def _placeholder_language(interaction: discord.Interaction[Any]) -> str:
    store = getattr(interaction.client, "store", None)
    try:
        if store is not None:
            return await public_language(store, interaction)
    except Exception:  # a busy database must not stop the member being told
        log.info(
            "server language unavailable; using the member's for interaction %s", interaction.id
        )
    return private_language(interaction)
