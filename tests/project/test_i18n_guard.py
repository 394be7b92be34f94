"""A guard over cogs/: no English literal reaches a member without passing through the catalogue.

It reads the source (no import, no Discord) and fails when a string literal with letters is handed
directly to something a member reads: a message's content (`send`, `send_message`, `reply`,
`followup.send`, `tell`, `content=`), an embed's title, description, fields, footer or author, a
button's, text input's, select option's or modal's label, title, placeholder or description, or an
exception whose text is shown as a refusal. A literal counts when it is the argument itself, a
module constant or local variable assigned one, a button class's `label = "..."`, or one branch of
an `a if c else b`. Wrapped in `_()`/`_n()` (or marked `N_` and rendered later) it passes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COGS = ROOT / "cogs"

# (file, the literal as the guard reports it) -> why it must stay as it is. Kept short: every
# entry must still be found (see the test), so none outlives its reason. Today there is none:
# emoji and Discord markup (`<t:..:R>`, mentions) carry no letters and pass by themselves, and the
# result footer's "Job #N" (kept English for re-delivery) is built in `ResultPoster._footer`, out of
# the guard's sight.
ALLOWED: dict[tuple[str, str], str] = {}

# Calls whose first positional argument is a message's text: sending, and the exceptions whose
# text is a refusal shown to the member (`...CheckFailure`, `...Rejected`, `...Refused`, `Refusal`).
TEXT_FIRST = {"send", "send_message", "reply", "Refusal"}
REFUSAL_SUFFIXES = ("CheckFailure", "Rejected", "Refused")
# Keywords that are member-visible text on any call that has them.
TEXT_KEYWORDS = {"content", "title", "label", "placeholder"}
# Keywords visible only on some calls (elsewhere `name=`/`description=` are commands, not text).
TEXT_KEYWORDS_OF = {
    "Embed": {"description"},
    "add_field": {"name", "value"},
    "insert_field_at": {"name", "value"},
    "set_field_at": {"name", "value"},
    "set_footer": {"text"},
    "set_author": {"name"},
    "SelectOption": {"description"},
    "Label": {"text", "description"},
    "TextDisplay": {"content"},
}
# Class attributes read as a component's text (JobButton subclasses' `label = ...`).
TEXT_ATTRIBUTES = {"label", "title", "placeholder"}
# Calls that only mark or translate: a literal inside them is in the catalogue.
MARKERS = {"_", "_n", "N_", "translate", "ntranslate"}
# Slash-command declarations: their texts go through the command Translator instead.
COMMAND_CALLS = {"command", "Command", "Group", "ContextMenu", "describe", "Choice", "choices"}


def _name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


# Discord markup that every client renders in its own language: `<t:...:R>` timestamps, mentions.
_MARKUP = re.compile(r"<(?:t:[^>]*|@[!&]?[^>]*|#[^>]*)>")


def _words(text: str) -> bool:
    return any(c.isalpha() for c in _MARKUP.sub("", text))


def _has_letters(node: ast.AST) -> str | None:
    """The literal's text when it is a string literal (or f-string) with letters outside its
    placeholders and Discord's markup; else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if _words(node.value) else None
    if isinstance(node, ast.JoinedStr):
        shown = "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
        if _words(shown.replace("{}", "")):
            return ast.unparse(node)[2:-1]
    return None


class _Scan(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.found: list[tuple[int, str]] = []
        self.allowed: set[tuple[str, str]] = set()
        self.module = self._assignments(tree.body)
        self.local: dict[str, list[ast.AST]] = {}

    @staticmethod
    def _assignments(body: list[ast.stmt] | ast.AST) -> dict[str, list[ast.AST]]:
        """Every `NAME = value` in a scope (nested blocks included), by name."""
        found: dict[str, list[ast.AST]] = {}
        nodes = body if isinstance(body, list) else [body]
        for top in nodes:
            for node in ast.walk(top):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            found.setdefault(target.id, []).append(node.value)
                elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
                    if isinstance(node.target, ast.Name):
                        found.setdefault(node.target.id, []).append(node.value)
        return found

    def _literals(self, node: ast.AST, depth: int = 0) -> Iterator[str]:
        """The unmarked literals that `node` may evaluate to."""
        if depth > 3:
            return
        text = _has_letters(node)
        if text is not None:
            yield text
        elif isinstance(node, ast.IfExp):
            yield from self._literals(node.body, depth + 1)
            yield from self._literals(node.orelse, depth + 1)
        elif isinstance(node, ast.BinOp):  # "a" + "b", "..." % x
            yield from self._literals(node.left, depth + 1)
            yield from self._literals(node.right, depth + 1)
        elif isinstance(node, ast.Name):
            for value in self.local.get(node.id) or self.module.get(node.id) or []:
                yield from self._literals(value, depth + 1)

    def _check(self, node: ast.AST, where: str) -> None:
        for text in self._literals(node):
            if (self.path, text) in ALLOWED:
                self.allowed.add((self.path, text))
            else:
                self.found.append((node.lineno, f"{where}: {text!r}"))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = self.local
        self.local = {**outer, **self._assignments(node.body)}
        self.generic_visit(node)
        self.local = outer

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for stmt in node.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name) and target.id in TEXT_ATTRIBUTES:
                        self._check(stmt.value, f"{node.name}.{target.id}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _name(node.func)
        if name in MARKERS or name in COMMAND_CALLS:
            return  # marked, or a command text the Translator handles
        if node.args and (name in TEXT_FIRST or (name or "").endswith(REFUSAL_SUFFIXES)):
            self._check(node.args[0], f"{name}()")
        if name == "tell" and len(node.args) > 1:
            self._check(node.args[1], "tell()")
        visible = TEXT_KEYWORDS | TEXT_KEYWORDS_OF.get(name or "", set())
        for keyword in node.keywords:
            if keyword.arg in visible:
                self._check(keyword.value, f"{name}({keyword.arg}=)")
        self.generic_visit(node)


def scan(path: Path) -> _Scan:
    relative = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = _Scan(relative, tree)
    found.visit(tree)
    return found


def unmarked(path: Path) -> list[str]:
    """`line: where: 'text'` for each literal shown to members without the catalogue."""
    found = scan(path)
    return [f"{found.path}:{line}: {what}" for line, what in sorted(found.found)]


def checked_files() -> list[Path]:
    return sorted(COGS.rglob("*.py"))


def test_member_visible_text_goes_through_the_catalogue() -> None:
    """Promise: every word a member reads in cogs/ is translatable (a Chinese member never gets a
    stray English label, title or refusal because someone forgot `_()`), and the allow-list holds
    only literals that are still there."""
    scans = [scan(path) for path in checked_files()]
    found = [f"{s.path}:{line}: {what}" for s in scans for line, what in sorted(s.found)]
    assert not found, "wrap these in _() / _n() (or N_ and render):\n" + "\n".join(found)
    seen = set().union(*(s.allowed for s in scans))
    assert set(ALLOWED) <= seen, f"stale ALLOWED entries: {set(ALLOWED) - seen}"


def test_the_guard_catches_what_it_is_for() -> None:
    """Promise: the guard is not vacuous: each kind of sink is flagged, marked text is not."""
    source = """
import discord
from bot.i18n import _
HELLO = "Hello there"
class B:
    label = "Cancel"
async def f(interaction, channel, embed):
    text = f"Job {1} failed"
    await interaction.response.send_message("Nope.", ephemeral=True)
    await channel.send(HELLO)
    await interaction.followup.send(text)
    await interaction.edit_original_response(content="Done" if 1 else "Failed")
    discord.Embed(title="Server settings", description=_("fine"))
    embed.add_field(name="Spoiler", value="on")
    discord.ui.TextInput(label="Prompt", placeholder="e.g. blue")
    await tell(interaction, "Only admins.")
    raise Refusal("no images")
    await interaction.response.send_message(_("Marked."), ephemeral=True)
    embed.set_footer(text="✅ 🎲")
    embed.add_field(name="⏱", value=f"<t:{1}:R>")
"""
    tree = ast.parse(source)
    scan = _Scan("cogs/_guard_probe.py", tree)
    scan.visit(tree)
    texts = [what for _line, what in scan.found]
    for expected in (
        "'Cancel'",
        "'Nope.'",
        "'Hello there'",
        "'Job {1} failed'",
        "'Done'",
        "'Failed'",
        "'Server settings'",
        "'Spoiler'",
        "'on'",
        "'Prompt'",
        "'e.g. blue'",
        "'Only admins.'",
        "'no images'",
    ):
        assert any(t.endswith(expected) for t in texts), (expected, texts)
    assert not any("Marked" in t or "fine" in t or "✅" in t for t in texts), texts
