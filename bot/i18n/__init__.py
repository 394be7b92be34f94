"""Translations: GNU gettext catalogues (`bot/locales/`) through Babel, and no Discord in sight.

Mark a message with `_`/`_n` (a `Text`, rendered later in the reader's language) or `N_` (a plain
string, marked only); `render(language, text)` shows a `Text` in a language; `language_of` turns
Discord's locale tags into catalogue names. `python -m bot.i18n` extracts, updates and compiles the
catalogues (see docs/translations.md).
"""

from bot.i18n.catalogs import (
    DOMAIN,
    LOCALE_DIR,
    available_languages,
    catalogue_digest,
    language_of,
    lookup,
)
from bot.i18n.formatting import Number, When, format_number, format_when
from bot.i18n.locales import DEFAULT_LANGUAGE
from bot.i18n.text import N_, Text, _, _n, ntranslate, render, text_of, translate

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LOCALE_DIR",
    "N_",
    "Number",
    "Text",
    "When",
    "_",
    "_n",
    "available_languages",
    "catalogue_digest",
    "format_number",
    "format_when",
    "language_of",
    "lookup",
    "ntranslate",
    "render",
    "text_of",
    "translate",
]
