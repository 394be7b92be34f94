"""/wansettings: a server's own choices (results as spoilers by default, the language of its public messages)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.settings._cog import ServerSettings

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def setup(bot: WanBot) -> None:
    await bot.add_cog(ServerSettings(bot))
