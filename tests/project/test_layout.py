"""The house rules, checked from the code's own imports (every import: top level, inside functions and
under `TYPE_CHECKING`): the core knows nothing of Discord, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "cogs")
# The program's entry point assembles the core and the Discord side; everything else in bot/ is core.
ENTRY_POINTS = {"bot.__main__"}


def module_name(path: Path) -> str:
    if not path.is_relative_to(ROOT):
        return path.stem  # a file outside the project: a module of its own
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported_names(path: Path) -> set[str]:
    """Every module name an import in `path` names (`from a import b` names `a` and `a.b`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module_name(path), path, node)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an `ImportFrom` names (relative imports resolved against `path`)."""
    base = node.module or ""
    if not node.level:
        return base
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    anchor = package.split(".")
    anchor = anchor[: len(anchor) - node.level + 1]
    return ".".join([*anchor, base] if base else anchor)


def project_edges() -> dict[str, set[str]]:
    """module -> the project modules it imports.

    `from a import b` is an arrow to the module `a.b` when there is one (a submodule), else to `a`.
    """
    modules = all_modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, path, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def test_the_core_imports_nothing_from_discord_or_the_discord_side() -> None:
    """Guards the boundary: configuration, Wan client, store, quota rules, images and the job runner
    work without discord.py, so the runner can only reach Discord through its `Surface`."""
    offenders = []
    for name, path in all_modules().items():
        if not name.startswith("bot") or name in ENTRY_POINTS:
            continue
        for imported in imported_names(path):
            top = imported.split(".")[0]
            if top in ("discord", "cogs"):
                offenders.append(f"{name} imports {imported}")
    assert offenders == []


def test_the_store_words_nothing_for_members() -> None:
    """The store returns facts and codes; the Discord side words them through the catalogue, so no
    store module reaches the catalogue."""
    edges = project_edges()
    store = sorted(m for m in edges if m.startswith("bot.store"))
    assert "bot.store.quota" in store
    assert [m for m in store if any(t.startswith("bot.i18n") for t in edges[m])] == []


def test_the_boundary_check_sees_imports_hidden_in_functions_and_type_checking(
    tmp_path: Path,
) -> None:
    """The check above would be worthless if it missed lazy or typing-only imports."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from cogs.wanbot import WanBot\n"
        "def f():\n    import discord\n"
    )
    # Outside the project, so the checks above, run at the same time by another worker, never
    # see it.
    path = tmp_path / "_probe_for_test.py"
    path.write_text(source)
    names = imported_names(path)
    assert {"cogs.wanbot", "cogs.wanbot.WanBot", "discord"} <= names


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other (circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_no_import_circles_in_bot_or_cogs() -> None:
    """Modules that import each other (type-checking imports included) can't be understood, tested or
    moved one at a time."""
    edges = project_edges()
    # The graph is read right: a submodule import and a package import are both arrows.
    assert "bot.store.driver" in edges["bot.store.sqlite"]
    assert {"bot.jobs", "cogs.gateway"} <= edges["cogs.wanbot"]
    assert "cogs.surface" in edges["cogs.launcher"]
    assert strongly_connected(edges) == []


# The layers, lowest first: a module imports (at run time) only from its own layer or lower ones.
# Typing-only imports (`if TYPE_CHECKING:`) of the bot class are allowed upwards: a cog annotates
# `bot: WanBot`, as discord.py's own examples do, without importing it when it runs.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bot",),
    ("cogs.utils", "cogs.gateway", "cogs.translator", "cogs.command_sync"),
    ("cogs.intake", "cogs.surface"),
    (
        "cogs.edit",
        "cogs.imagine",
        "cogs.quota",
        "cogs.owner",
        "cogs.settings",
        "cogs.history",
        "cogs.health",
        "cogs.errors",
    ),
    ("cogs.wanbot",),
    ("cogs.launcher",),
    ("bot.__main__",),
)


def layer_of(module: str) -> int:
    """The index of the most specific layer prefix naming `module`."""
    best, length = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            named = module == prefix or module.startswith(prefix + ".")
            if named and len(prefix) > length:
                best, length = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def runtime_edges() -> dict[str, set[str]]:
    """`project_edges` without the imports under `if TYPE_CHECKING:`."""
    modules = all_modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
            for stmt in block.body
            for node in ast.walk(stmt)
        }
        targets = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, path, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def test_imports_flow_from_the_discord_side_down_to_the_core() -> None:
    """Discord side -> intake and surface -> shared helpers -> core: never the other way, so a
    newcomer can read each layer knowing only the ones below it."""
    upward = [
        f"{module} imports {target}"
        for module, targets in runtime_edges().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_layer_check_sees_an_upward_import() -> None:
    assert layer_of("cogs.edit._replies") > layer_of("cogs.surface.progress")
    assert layer_of("bot.__main__") > layer_of("cogs.launcher") > layer_of("bot.store")


def test_the_circle_finder_finds_a_circle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
