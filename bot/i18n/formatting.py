"""Numbers and dates in the reader's language (Babel's CLDR data): wrap a parameter to have it formatted."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from babel import Locale, dates, numbers


@functools.cache
def babel_locale(language: str) -> Locale:
    return Locale.parse(language)


def format_number(language: str, value: float, decimals: int | None = None) -> str:
    """`1234` as the language writes it (`1,234`); `decimals` fixes the digits after the point."""
    pattern = None if decimals is None else "#,##0" + ("." + "0" * decimals if decimals else "")
    return numbers.format_decimal(value, format=pattern, locale=babel_locale(language))


def format_when(language: str, value: date, width: str = "medium") -> str:
    """A date or datetime as the language writes it (`Mar 5, 2025` / `2025年3月5日`)."""
    if isinstance(value, datetime):
        return dates.format_datetime(value, width, locale=babel_locale(language))
    return dates.format_date(value, width, locale=babel_locale(language))


@dataclass(frozen=True)
class Number:
    """A message parameter shown with the reader's digit grouping and decimal sign."""

    value: float
    decimals: int | None = None

    def localised(self, language: str) -> str:
        return format_number(language, self.value, self.decimals)


@dataclass(frozen=True)
class When:
    """A message parameter shown as a date in the reader's language (prefer Discord's `<t:..>` tags,
    which each client localises itself, wherever Discord renders the text)."""

    value: date
    width: str = "medium"

    def localised(self, language: str) -> str:
        return format_when(language, self.value, self.width)
