"""Editing images: `/wanedit`, the **Edit with Wan** message menu, reply edits, the edit form, the
result buttons (Reroll, Edit, Delete) and the offer under a reply that only pinged the bot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.edit._command import WanEdit
from cogs.edit._menu import EditMenu
from cogs.edit._replies import Replies

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def setup(bot: WanBot) -> None:
    await bot.add_cog(WanEdit(bot))
    await bot.add_cog(EditMenu(bot))
    await bot.add_cog(Replies(bot))
