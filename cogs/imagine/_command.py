"""/wanimagine: a prompt, and Wan 2.5 makes one to four images from it, posted back in a thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs import IMAGINE
from cogs.intake.requests import MAX_NEGATIVE, MAX_PROMPT, MAX_SEED, EditOptions, start_job

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

# Written out (not built from bot.aspects.IMAGINE_SIZES) so each name is a catalogue entry Discord
# shows translated; a test keeps them equal to the sizes sent.
ASPECT_CHOICES = [
    app_commands.Choice(name="1:1 square (1280×1280)", value="1:1"),
    app_commands.Choice(name="4:3 landscape (1472×1104)", value="4:3"),
    app_commands.Choice(name="3:4 portrait (1104×1472)", value="3:4"),
    app_commands.Choice(name="3:2 landscape, photo (1536×1024)", value="3:2"),
    app_commands.Choice(name="2:3 portrait, photo (1024×1536)", value="2:3"),
    app_commands.Choice(name="16:9 widescreen (1696×960)", value="16:9"),
    app_commands.Choice(name="9:16 phone screen (960×1696)", value="9:16"),
    app_commands.Choice(name="21:9 cinema (2016×864)", value="21:9"),
]


class WanImagine(commands.Cog):
    """The /wanimagine slash command."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="wanimagine", description="Make images from a text prompt with Wan 2.5"
    )
    @app_commands.describe(
        prompt="What to make, e.g. 'a lighthouse on a cliff at dusk' (end with --ar 16:9 to pick the shape)",
        negative_prompt="What you don't want to see, e.g. 'blurry, text, extra fingers'",
        count="How many images to make, 1-4 (each one counts against your daily images)",
        seed="A number to reproduce a result; leave empty for a random one",
        aspect="The shape of the image; square unless you pick one",
        prompt_extend="Let Wan rewrite your prompt in more detail first (on by default; a bit slower)",
        watermark="Add Wan's small 'AI-generated' mark in the corner",
        spoiler="Post the result hidden behind a spoiler (empty: the server's default)",
    )
    @app_commands.choices(aspect=ASPECT_CHOICES)
    async def wanimagine(
        self,
        interaction: discord.Interaction[WanBot],
        prompt: app_commands.Range[str, 1, MAX_PROMPT],
        negative_prompt: app_commands.Range[str, 1, MAX_NEGATIVE] | None = None,
        count: app_commands.Range[int, 1, 4] = 1,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        aspect: app_commands.Choice[str] | None = None,
        prompt_extend: bool = True,
        watermark: bool = False,
        spoiler: bool | None = None,
    ) -> None:
        options = EditOptions(
            prompt=prompt,
            count=count,
            negative_prompt=negative_prompt,
            seed=seed,
            watermark=watermark,
            prompt_extend=prompt_extend,
            aspect=aspect.value if aspect is not None else None,
            spoiler=spoiler,
            kind=IMAGINE,
        )
        await start_job(interaction, options)
