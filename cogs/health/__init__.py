"""Heartbeats for `python -m bot check --live`, and the `check` command itself (`cogs.health.check`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.health._cog import Health

if TYPE_CHECKING:
    from cogs.wanbot import WanBot


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Health(bot))
