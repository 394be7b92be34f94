"""Slash-command texts in the member's language: an `app_commands.Translator` over our catalogues.

discord.py wraps every plain command string as a `locale_str` and, at `tree.sync`, asks the translator
for each Discord locale; what we return becomes the command's `*_localizations`, which Discord shows
to members whose client uses that language. Command, group and option *names* stay English (the
README, habits and screenshots keep working in every language); descriptions, choice names and the
context-menu name (a label, free text) are translated.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot import i18n

log = logging.getLogger(__name__)

# Identifiers a member types: never translated.
_NAMES = {Where.command_name, Where.group_name, Where.parameter_name}


class CatalogueTranslator(app_commands.Translator):
    """Looks each command text up in the catalogue of the locale's language; None where there is none."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContext,  # type: ignore[type-arg]
    ) -> str | None:
        if context.location in _NAMES and not isinstance(context.data, app_commands.ContextMenu):
            return None
        language = i18n.language_of(locale)
        if language == i18n.DEFAULT_LANGUAGE:
            # English, or a language we have no catalogue for: Discord shows the English text.
            return None
        return i18n.lookup(language, string.extras.get("msgid", string.message))
