"""/wanedit: a prompt plus one to three images, edited by Wan and posted back in a thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.intake.requests import MAX_NEGATIVE, MAX_PROMPT, MAX_SEED, EditOptions, start_job

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

# Literal names: each is a catalogue entry, so Discord shows it translated (sizes: bot.aspects).
ASPECT_CHOICES = [
    app_commands.Choice(name="1:1 square (1280×1280)", value="1:1"),
    app_commands.Choice(name="4:3 landscape (1280×960)", value="4:3"),
    app_commands.Choice(name="3:4 portrait (960×1280)", value="3:4"),
    app_commands.Choice(name="3:2 landscape, photo (1200×800)", value="3:2"),
    app_commands.Choice(name="2:3 portrait, photo (800×1200)", value="2:3"),
    app_commands.Choice(name="16:9 widescreen (1280×720)", value="16:9"),
    app_commands.Choice(name="9:16 phone screen (720×1280)", value="9:16"),
    app_commands.Choice(name="21:9 cinema (1344×576)", value="21:9"),
]


class WanEdit(commands.Cog):
    """The /wanedit slash command."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="wanedit", description="Edit one to three images with Wan 2.5 from a text prompt"
    )
    @app_commands.describe(
        prompt="What to change, e.g. 'make it snow' or 'put the clock from image 1 next to the vase in image 2'",
        image="The image to edit (PNG, JPEG, WEBP or BMP; 384-5000 px per side; up to 10 MB)",
        image2="Optional second image, to combine with the first (call it 'image 2' in the prompt)",
        image3="Optional third image ('image 3' in the prompt)",
        negative_prompt="What you don't want to see, e.g. 'blurry, text, extra fingers'",
        count="How many variations to make, 1-4 (each one counts against your daily images)",
        seed="A number to reproduce a result; leave empty for a random one",
        watermark="Add Wan's small 'AI-generated' mark in the corner",
        prompt_extend="Let Wan rewrite your prompt in more detail first (on by default; a bit slower)",
        aspect="The shape of the result; leave empty to keep the shape of the (last) image",
        spoiler="Post the result hidden behind a spoiler (empty: the server's default)",
    )
    @app_commands.choices(aspect=ASPECT_CHOICES)
    async def wanedit(
        self,
        interaction: discord.Interaction[WanBot],
        prompt: app_commands.Range[str, 1, MAX_PROMPT],
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        negative_prompt: app_commands.Range[str, 1, MAX_NEGATIVE] | None = None,
        count: app_commands.Range[int, 1, 4] = 1,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        watermark: bool = False,
        prompt_extend: bool = True,
        aspect: app_commands.Choice[str] | None = None,
        spoiler: bool | None = None,
    ) -> None:
        attachments = [a for a in (image, image2, image3) if a is not None]
        options = EditOptions(
            prompt=prompt,
            count=count,
            negative_prompt=negative_prompt,
            seed=seed,
            watermark=watermark,
            prompt_extend=prompt_extend,
            aspect=aspect.value if aspect is not None else None,
            spoiler=spoiler,
        )
        await start_job(interaction, options, attachments)
