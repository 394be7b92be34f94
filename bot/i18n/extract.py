"""The Babel extraction method named in `babel.cfg`: the usual Python extraction (`_`, `N_`, and `_n` given as `-k _n:1,2`) plus
the slash-command texts, which are plain strings in discord.py decorators.

discord.py hands every command description, option description and choice name to our
`app_commands.Translator` as its English text, so those strings need no marker in the cogs; this finds
them by reading the source (no import, no Discord): `description=` of `app_commands.command`, `Group`
and `ContextMenu`, every value of `app_commands.describe(...)`, `Choice(name=...)`, a context menu's
`name=`, a GroupCog's `group_description=`, and a command's docstring when it has no `description=`.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

from babel.messages.extract import extract_python

COMMAND_NOTE = "Slash-command text shown in Discord's command picker (at most 100 characters)."
_COMMAND_CALLS = {"command", "Command", "Group", "ContextMenu"}

Extracted = tuple[int, str, str | tuple[str, ...], list[str]]


def extract_wanbot(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: dict[str, Any],
) -> Iterator[Extracted]:
    """Babel's extraction method signature; see the module docstring for what is found."""
    source = fileobj.read()
    # `keywords` must include the plural marker: `-k _n:1,2` (python -m bot.i18n extract passes it).
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, options)
    for lineno, text in command_strings(source.decode(options.get("encoding", "utf-8"))):
        yield lineno, "", text, [COMMAND_NOTE]


def command_strings(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every slash-command text in a module's source."""
    tree = ast.parse(source)
    constants = _module_constants(tree)

    def literal(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            found: list[ast.AST] = []
            if name in _COMMAND_CALLS:
                found += [k.value for k in node.keywords if k.arg == "description"]
            if name == "ContextMenu":
                found += [k.value for k in node.keywords if k.arg == "name"]
            if name == "describe":
                found += [k.value for k in node.keywords]
            if name == "Choice":
                found += [k.value for k in node.keywords if k.arg == "name"]
            for value in found:
                text = literal(value)
                if text:
                    yield value.lineno, text
        elif isinstance(node, ast.ClassDef):
            for keyword in node.keywords:
                text = literal(keyword.value) if keyword.arg == "group_description" else None
                if text:
                    yield keyword.value.lineno, text
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            for decorator in node.decorator_list:
                if (
                    doc
                    and isinstance(decorator, ast.Call)
                    and _call_name(decorator.func) == "command"
                    and not any(k.arg == "description" for k in decorator.keywords)
                ):
                    yield node.lineno, shorten_docstring(doc)


def shorten_docstring(doc: str) -> str:
    """The description discord.py makes of a command's docstring (its `_shorten`)."""
    first = re.split(r"\n\s*\n", doc, maxsplit=1)[0]
    return textwrap.TextWrapper(
        width=100, max_lines=1, replace_whitespace=True, placeholder="…"
    ).fill(" ".join(first.strip().split()))


def _call_name(func: ast.AST) -> str | None:
    """`describe` for `describe(...)` and `app_commands.describe(...)`; None for other attributes
    (`inputs.describe(...)` is not a command decorator)."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.attr if func.value.id == "app_commands" else None
    if isinstance(func, ast.Name):
        return func.id
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    """Top-level `NAME = "text"` assignments, for `ContextMenu(name=MENU_NAME)`."""
    constants: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants
