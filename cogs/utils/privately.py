"""Telling one member something privately, whatever state their interaction's response is in."""

from __future__ import annotations

import logging
from typing import Any

import discord

log = logging.getLogger(__name__)


async def tell(
    interaction: discord.Interaction[Any], text: str, *, keep_original: bool = False
) -> None:
    """Tell the user `text` privately, whatever state the interaction's response is in.

    After a public deferral Discord makes the first follow-up replace the public "thinking…"
    placeholder (keeping its visibility), so that placeholder is resolved first, the user is told
    privately, and the placeholder removed, unless `keep_original` (it became a job's message).
    """
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if not keep_original:
            try:
                await interaction.edit_original_response(
                    content="Request not accepted.", embed=None, view=None
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
