"""/wanquota: members see where they stand; server admins share out what their server may use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.quota._cog import Quota

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Quota(bot))
