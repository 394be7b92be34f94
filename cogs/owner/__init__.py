"""/wanowner: the bot owner's controls over the bill (usage and cost, pause and resume, the bot-wide cap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.owner._cog import Owner

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Owner(bot))
