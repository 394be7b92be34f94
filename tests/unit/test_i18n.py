"""The translation machinery and the catalogues themselves (no Discord, no network)."""

from __future__ import annotations

import copy
import io
import pickle
import string
from datetime import date
from pathlib import Path

import discord
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot import i18n
from bot.i18n import Number, Text, When, _, _n
from bot.i18n.extract import command_strings

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "bot" / "locales"
PO_FILES = sorted(LOCALES.glob("*/LC_MESSAGES/wanbot.po"))


def _catalogue(path: Path):
    with path.open("rb") as fh:
        return read_po(fh)


def _placeholders(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def _markup(text: str) -> tuple[int, int, int]:
    """What Discord renders specially: bold, code, timestamps; a translation keeps all of them."""
    return text.count("**"), text.count("`"), text.count("<t:")


def _pairs(message) -> list[tuple[str, str]]:
    """(English, translation) for each form: plural forms compare with the English plural."""
    if isinstance(message.id, tuple):
        singular, plural = message.id
        return [
            (singular if i == 0 and len(message.string) > 1 else plural, s)
            for i, s in enumerate(message.string)
        ]
    return [(message.id, message.string)]


def test_chinese_catalogue_exists() -> None:
    """Promise: Simplified Chinese ships (and is the catalogue the other tests check)."""
    assert LOCALES / "zh_CN" / "LC_MESSAGES" / "wanbot.po" in PO_FILES
    assert "zh_CN" in i18n.available_languages()


@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parent.parent.name)
def test_every_message_is_translated_with_the_same_placeholders(po: Path) -> None:
    """Promise: no message id lacks a translation, none is fuzzy, and every translation has exactly
    the English placeholders and Discord markup (a missing `{count}` would show wrong or crash)."""
    problems = []
    for message in _catalogue(po):
        if not message.id:
            continue
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        for english, translated in _pairs(message):
            if not translated:
                problems.append(f"untranslated: {english!r}")
            elif _placeholders(english) != _placeholders(translated):
                problems.append(f"placeholders differ: {english!r} -> {translated!r}")
            elif _markup(english) != _markup(translated):
                problems.append(f"markup differs: {english!r} -> {translated!r}")
    assert not problems, "\n".join(problems)


def test_catalogue_has_every_message_in_the_code() -> None:
    """Promise: every marked string and command text in bot/ and cogs/ is in each catalogue (else run
    `python -m bot.i18n extract` and `python -m bot.i18n update`, then translate)."""
    method_map, options_map = parse_mapping_cfg(io.StringIO((ROOT / "babel.cfg").read_text()))
    keywords = {**DEFAULT_KEYWORDS, "_n": (1, 2)}
    found = {
        msg if isinstance(msg, str) else msg[0]
        for _file, _line, msg, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }
    assert len(found) > 30
    for po in PO_FILES:
        known = {m.id if isinstance(m.id, str) else m.id[0] for m in _catalogue(po) if m.id}
        assert not sorted(found - known), f"{po}: not in the catalogue"


@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parent.parent.name)
def test_compiled_catalogue_matches_its_po_file(po: Path) -> None:
    """Promise: the committed .mo (what the bot reads) says what the .po says (else run
    `python -m bot.i18n compile`)."""
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo} missing: run python -m bot.i18n compile"

    def key(value: object) -> object:
        return value if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]

    with mo.open("rb") as fh:
        compiled = {key(m.id): key(m.string) for m in read_mo(fh) if m.id}
    source = {key(m.id): key(m.string) for m in _catalogue(po) if m.id and not m.fuzzy}
    assert compiled == source


def test_command_texts_fit_discord_limits() -> None:
    """Promise: every translated command description fits Discord's 100 characters (a longer one
    makes the whole sync fail with 400)."""
    texts = {
        text
        for path in (ROOT / "cogs").rglob("*.py")
        for _l, text in command_strings(path.read_text())
    }
    assert "Edit one to three images with Wan 2.5 from a text prompt" in texts
    for text in texts:
        translated = i18n.lookup("zh_CN", text)
        assert translated is not None, f"no zh_CN for command text {text!r}"
        assert 1 <= len(translated) <= 100, translated


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh-CN", "zh_CN"),
        (discord.Locale.chinese, "zh_CN"),
        ("zh_cn", "zh_CN"),
        ("zh", "zh_CN"),
        ("en-US", "en"),
        (discord.Locale.british_english, "en"),
        ("zh-TW", "en"),  # Traditional Chinese readers are not shown Simplified characters
        ("fr", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_locale_tags_map_to_catalogues(tag: object, language: str) -> None:
    """Promise: Discord's locale tags reach the right catalogue, anything else English."""
    assert i18n.language_of(tag) == language


def test_text_is_english_until_rendered() -> None:
    """Promise: a Text is its English wording wherever it is used as a str (logs, the store), and
    Chinese when rendered for a Chinese reader, parameters filled in either way."""
    text = _("server default ({language})", language="X")
    assert text == "server default (X)"
    assert isinstance(text, str)
    assert text.render("zh-CN") == "服务器默认（X）"
    assert i18n.render("en-US", text) == str(text)
    assert i18n.render("zh-CN", "plain string") == "plain string"


def test_untranslated_and_nested_texts() -> None:
    """Promise: a message without a translation falls back to English; a Text parameter is
    rendered in the reader's language too."""
    inner = _("Request not accepted.")
    outer = _("{reason} (not in any catalogue)", reason=inner)
    assert outer == "Request not accepted. (not in any catalogue)"
    assert outer.render("zh_CN") == "请求未受理。 (not in any catalogue)"


def test_plurals_and_numbers_follow_the_language() -> None:
    """Promise: plural forms are chosen by count (English: one/other), numbers and dates are written
    as the language writes them."""
    one, many = _n("{count} image", "{count} images", 1), _n("{count} image", "{count} images", 3)
    assert (one, many) == ("1 image", "3 images")
    assert _("{n} left", n=Number(12345)) == "12,345 left"
    assert i18n.format_when("zh_CN", date(2025, 3, 5)) == "2025年3月5日"
    assert _("on {day}", day=When(date(2025, 3, 5))).render("zh_CN") == "on 2025年3月5日"
    assert _("on {day}", day=When(date(2025, 3, 5))) == "on Mar 5, 2025"


def test_text_survives_copy_and_pickle() -> None:
    """Promise: a Text copied or pickled (dataclass copies, queues) is still translatable."""
    text = _("Request not accepted.")
    for clone in (copy.deepcopy(text), pickle.loads(pickle.dumps(text))):
        assert isinstance(clone, Text) and clone.render("zh_CN") == "请求未受理。"
