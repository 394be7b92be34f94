"""Language names: Discord's locale tags (`zh-CN`, `en-US`) to the catalogue names we ship (`zh_CN`, `en`)."""

from __future__ import annotations

DEFAULT_LANGUAGE = "en"
# Tags that mean a catalogue other than their own spelling. Traditional Chinese (zh-TW, zh-HK) is
# deliberately absent: it falls back to English until a zh_TW catalogue exists, rather than showing
# Simplified characters to readers who did not choose them.
_ALIASES = {"zh": "zh_CN", "zh_Hans": "zh_CN", "zh_Hans_CN": "zh_CN", "zh_SG": "zh_CN"}


def normalise(tag: object, available: frozenset[str]) -> str:
    """The catalogue to use for a locale tag (`zh-CN`, `en-US`, a `discord.Locale`, None): an exact
    catalogue, else the tag's language alone, else English."""
    value = getattr(
        tag, "value", tag
    )  # discord.Locale is a str Enum; accept it without importing it
    if not value:
        return DEFAULT_LANGUAGE
    parts = str(value).strip().replace("-", "_").split("_")
    # Language lower case, a territory upper case, a script title case: `zh-cn` is `zh_CN`.
    name = "_".join(
        [parts[0].lower()] + [p.upper() if len(p) == 2 else p.title() for p in parts[1:] if p]
    )
    if name in available:
        return name
    if name in _ALIASES and _ALIASES[name] in available:
        return _ALIASES[name]
    language = parts[0].lower()
    if language in available:
        return language
    return DEFAULT_LANGUAGE
