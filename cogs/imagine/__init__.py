"""Making images from words: `/wanimagine` and messages that @mention the bot with "imagine ...".
Both go through cogs.intake like an edit, as text-to-image jobs (`wan2.5-t2i-preview`); the result
carries the usual buttons (cogs.edit), so it can be rerolled or edited. Left out entirely, command
and all, when the owner sets WAN_TEXT_TO_IMAGE=false."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cogs.imagine._command import WanImagine
from cogs.imagine._mentions import ImagineMentions

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)


async def setup(bot: WanBot) -> None:
    if not bot.settings.text_to_image:
        log.info("text-to-image is off (WAN_TEXT_TO_IMAGE=false): /wanimagine is not registered")
        return
    await bot.add_cog(WanImagine(bot))
    await bot.add_cog(ImagineMentions(bot))
