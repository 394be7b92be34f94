"""A message that @mentions the bot and starts with "imagine" ("@wanbot imagine a red fox in snow
--ar 16:9"): a text-to-image job from the rest of its text, shown with reactions and answered with a
reply, like a reply edit. Images attached to such a message are refused: imagining takes none."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.i18n import _, text_of
from bot.images import ImageRejected
from bot.jobs import IMAGINE, JobRefused
from cogs.intake.mentions import answer, imagine_prompt, mentions_explicitly, prompt_of
from cogs.intake.requests import EditOptions, RequestRejected, not_charged, start_message_job

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)


class ImagineMentions(commands.Cog):
    """Turns "@wanbot imagine ..." messages into text-to-image jobs."""

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or not mentions_explicitly(message.content, me.id):
            return
        prompt = imagine_prompt(prompt_of(message.content, me.id))
        if prompt is None:
            return
        # Reported on the message itself (reactions, then a reply), as a reply edit is.
        options = EditOptions(prompt=prompt, source="reply", kind=IMAGINE)
        attachments = list(message.attachments)
        try:
            job = await start_message_job(
                self.bot, message, options, attachments, [message] * len(attachments)
            )
        except (RequestRejected, ImageRejected) as err:
            await answer(self.bot, message, not_charged(err))
            return
        except JobRefused as err:
            await answer(self.bot, message, text_of(err))
            return
        except Exception:
            log.exception("imagine request %d failed", message.id)
            await answer(
                self.bot,
                message,
                _(
                    "Something went wrong on our side (ref {ref}). Nothing was charged.",
                    ref=message.id,
                ),
            )
            return
        log.info("imagine request %d: job %d queued", message.id, job.id)
