"""The "Edit with Wan" message command: edit any message's images from a modal, like /wanedit.

Discord hands a context-menu command the full target message, so it works without the Message Content
intent, on anyone's images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import _, render, translate
from cogs.edit._form import EditModal, image_attachments
from cogs.intake.attachments import MAX_IMAGES
from cogs.intake.requests import EditOptions, start_job
from cogs.utils.language import private_language

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

# The command's name; the translator gives Chinese clients their own label (see cogs/translator.py).
MENU_NAME = "Edit with Wan"
NO_IMAGES = _(
    "That message has no images to edit. Use **Edit with Wan** on a message with a PNG, JPEG, WEBP "
    "or BMP attached, or use `/wanedit` with your own images."
)


class EditMenu(commands.Cog):
    """Adds the message command (context menus can't be declared with a decorator inside a Cog)."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.edit_with_wan)
        bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def edit_with_wan(
        self, interaction: discord.Interaction[WanBot], message: discord.Message
    ) -> None:
        # The first three images; more than Wan takes is not worth a refusal here.
        attachments = image_attachments(message)[:MAX_IMAGES]
        language = private_language(interaction)
        if not attachments:
            await interaction.response.send_message(render(language, NO_IMAGES), ephemeral=True)
            return

        async def submit(ix: discord.Interaction[WanBot], options: EditOptions) -> None:
            await start_job(ix, options, attachments, source_message=message)

        title = translate(language, MENU_NAME)
        await interaction.response.send_modal(
            EditModal(title, submit, source="menu", language=language)
        )
