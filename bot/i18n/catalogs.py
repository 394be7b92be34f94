"""The compiled message catalogues (`bot/locales/<lang>/LC_MESSAGES/wanbot.mo`), loaded once each."""

from __future__ import annotations

import functools
import gettext
import hashlib
from pathlib import Path

from babel.support import NullTranslations, Translations

from bot.i18n.locales import DEFAULT_LANGUAGE, normalise

DOMAIN = "wanbot"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"


@functools.cache
def available_languages() -> frozenset[str]:
    """English (the source language, no catalogue needed) and every language with a compiled catalogue."""
    found = {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")}
    return frozenset({DEFAULT_LANGUAGE, *found})


def language_of(tag: object) -> str:
    """The catalogue for a locale tag (Discord's `zh-CN`, `en-US`, ...); English when we have none."""
    return normalise(tag, available_languages())


@functools.cache
def catalogue(language: str) -> gettext.NullTranslations:
    """The language's translations; English (and any unknown name) is the identity."""
    if language == DEFAULT_LANGUAGE or language not in available_languages():
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], DOMAIN)


def lookup(language: str, msgid: str) -> str | None:
    """The translation of `msgid`, or None when the language's catalogue has none (not even empty)."""
    if language == DEFAULT_LANGUAGE:
        return None
    found = catalogue(language).gettext(msgid)
    return None if found == msgid else found


def catalogue_digest() -> str:
    """A hash of every compiled catalogue, so anything derived from them (the synced commands) can
    tell when a translation changed."""
    digest = hashlib.sha256()
    for path in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")):
        digest.update(path.parent.parent.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
