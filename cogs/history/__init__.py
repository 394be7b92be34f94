"""/wanjobs: a member's own last jobs here, privately."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.history._cog import History

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def setup(bot: WanBot) -> None:
    await bot.add_cog(History(bot))
