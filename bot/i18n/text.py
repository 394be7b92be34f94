"""`Text`: a message that can still be shown in any language, and the markers that make one.

A `Text` *is* a `str` (its English wording), so code that only logs, stores or compares it keeps
working unchanged; whoever knows the reader's language calls `render(language, text)`. That lets the
core (`bot/`) word its messages without knowing who will read them.

    _("Image {index} is too large.", index=2)         # a Text
    _n("{count} image", "{count} images", n)          # a plural Text; `count` is n unless given
    N_("Edit with Wan")                               # a plain str, only marked for extraction

Placeholders are named (`{index}`) so a translation can reorder them. A parameter that is itself a
`Text` is rendered in the same language; `Number`/`When` parameters are formatted for it.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.i18n.catalogs import catalogue, language_of
from bot.i18n.locales import DEFAULT_LANGUAGE

log = logging.getLogger(__name__)


class Text(str):
    """A message id with its parameters; its `str` value is the English text."""

    msgid: str
    plural: str | None
    n: int | None
    params: dict[str, Any]

    def __new__(
        cls,
        msgid: str,
        params: dict[str, Any] | None = None,
        plural: str | None = None,
        n: int | None = None,
    ) -> Text:
        params = dict(params or {})
        english = _fill(
            msgid if plural is None or n == 1 else plural, params, DEFAULT_LANGUAGE, msgid
        )
        self = super().__new__(cls, english)
        self.msgid, self.plural, self.n, self.params = msgid, plural, n, params
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        # copy/pickle rebuild a Text from its parts, not from its English wording.
        return (self.msgid, self.params, self.plural, self.n)

    def render(self, language: object) -> str:
        """This message in `language` (a catalogue name or any locale tag), English if untranslated."""
        lang = language_of(language)
        if lang == DEFAULT_LANGUAGE:
            return str.__str__(self)
        translations = catalogue(lang)
        if self.plural is None:
            template = translations.gettext(self.msgid)
        else:
            template = translations.ngettext(self.msgid, self.plural, self.n or 0)
        english = self.msgid if self.plural is None or self.n == 1 else self.plural
        return _fill(template, self.params, lang, english)


def _param(value: Any, language: str) -> Any:
    if isinstance(value, Text):
        return value.render(language)
    localised = getattr(value, "localised", None)
    if callable(localised):
        return localised(language)
    return value


def _fill(template: str, params: dict[str, Any], language: str, english: str) -> str:
    values = {key: _param(value, language) for key, value in params.items()}
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError):
        # A broken translation must not hide the message: say it in English (tests catch the cause).
        log.warning("translation of %r into %s does not fit its parameters", english, language)
        return english.format_map(values)


def render(language: object, text: str) -> str:
    """`text` in `language` when it is a `Text`; any other string is shown as it is."""
    if isinstance(text, Text):
        return text.render(language)
    return str(text)


def text_of(error: BaseException) -> str:
    """An exception's message for the user: the `Text` it was raised with (still translatable), else
    its `str()`."""
    if len(error.args) == 1 and isinstance(error.args[0], Text):
        return error.args[0]
    return str(error)


def _(msgid: str, /, **params: Any) -> Text:
    """Mark a message for translation; rendered later, in the reader's language."""
    return Text(msgid, params)


def _n(singular: str, plural: str, n: int, /, **params: Any) -> Text:
    """A message with a plural form chosen by `n` (passed to the message as `count` unless given)."""
    params.setdefault("count", n)
    return Text(singular, params, plural, n)


def N_(msgid: str, /) -> str:
    """Mark a string for extraction only (e.g. a command description discord.py translates itself)."""
    return msgid


def translate(language: object, msgid: str, /, **params: Any) -> str:
    """`msgid` (already marked elsewhere) in `language`, with its parameters filled in."""
    return Text(msgid, params).render(language)


def ntranslate(language: object, singular: str, plural: str, n: int, /, **params: Any) -> str:
    """The plural `translate`."""
    return _n(singular, plural, n, **params).render(language)
