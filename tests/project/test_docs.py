"""The docs stay true to the code: every setting, command and option is documented, and every
command, path and link the docs show exists.

Not the prose: the pages may be rewritten freely. What is checked is what a reader acts on: the
settings of `bot/config.py` (and `.env.example`), the slash commands the bot registers, the
`python -m bot` command line, the commands in fenced `bash` blocks (each run by a test or by
`.ci/run`: `COVERED` says which), the README's length, links and two newcomer commands (the edit
one is run here, in a copy of the clone's files, exactly as written).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import importlib.util
import inspect
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot import __main__ as cli
from bot.config import VARIABLES
from bot.sandbox import __doc__ as SANDBOX_DOC
from bot.sandbox.faults import PromptTags
from tests.support.fake_discord import FakeDiscord
from tests.support.first_run import REPO, TOKEN, base_env, run_cli

DOCS = REPO / "docs"
PAGES = {path.relative_to(DOCS).as_posix(): path.read_text() for path in DOCS.rglob("*.md")}
README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()
# Every text a reader sees: the docs pages and the README.
TEXTS = {**{f"docs/{name}": text for name, text in PAGES.items()}, "README.md": README}
README_MAX_LINES = 200
# The Chinese section starts on the README's first screen and ends on it.
FIRST_SCREEN = 40
SAMPLE = "docs/assets/sample.jpg"
# What the newcomer's edit writes beside the sample (git ignores it).
SAMPLE_RESULT = "docs/assets/sample.wan-1.png"
NEWCOMER_EDIT = f'python -m bot edit {SAMPLE} --prompt "make it snow" --sandbox'
NEWCOMER_TESTS = "python -m pip install -e '.[dev]' && python -m pytest"

# Each command of a fenced `bash` block -> how it is covered: ("test", "module::function"): that
# test runs it with its arguments; ("ci", "exact line of .ci/run"); ("bench", "script path"): a
# benchmark, too slow for the suite, whose `--help` must know the options shown; ("deploy",
# "module::function"): needs root, systemd as PID 1 or a Docker engine, which test machines lack,
# so the named test checks the files it installs or starts instead.
COVERED: dict[str, tuple[str, str]] = {
    # .ci/run installs the project with the dev extra: a superset of the plain install.
    "python -m pip install -e .": ("ci", "python -m pip install -q -e '.[dev]'"),
    "python -m pip install -e '.[dev]'": ("ci", "python -m pip install -q -e '.[dev]'"),
    "python -m pytest": ("ci", "python -m pytest"),
    # Parts of the suite .ci/run runs whole.
    "python -m pytest tests/unit -q": ("ci", "python -m pytest"),
    "python -m pytest tests/e2e -x -q": ("ci", "python -m pytest"),
    "python -m pytest tests/store -q": ("ci", "python -m pytest"),
    "python -m mkdocs build --strict": (
        "ci",
        'python -m mkdocs build --strict --quiet --site-dir "$docs_site"',
    ),
    'eval "$(python tests/support/pgcluster.py start)"': (
        "ci",
        'eval "$(python tests/support/pgcluster.py start)"',
    ),
    'python tests/support/pgcluster.py stop "$WANBOT_TEST_PG_DIR"': (
        "test",
        "tests.support.test_pgcluster::test_start_and_stop",
    ),
    NEWCOMER_EDIT: (
        "test",
        "tests.project.test_docs::test_the_newcomer_edit_runs_on_the_shipped_sample",
    ),
    "python -m bot --sandbox": ("test", "tests.e2e.test_first_run_sandbox::test_sandbox_first_run"),
    "python -m bot check": ("test", "tests.e2e.test_first_run_check::test_all_checks_pass"),
    "python -m bot check --sandbox": (
        "test",
        "tests.e2e.test_first_run_check::test_sandbox_needs_no_key",
    ),
    "python -m bot check --live": (
        "test",
        "tests.e2e.test_health::test_check_live_against_a_running_bot_then_a_stuck_runner_then_a_stopped_bot",
    ),
    "curl -s http://127.0.0.1:9464/metrics | grep ^wanbot_": (
        "test",
        "tests.e2e.test_metrics::test_metrics_count_what_the_bot_did",
    ),
    "python -m bot migrate-db --from sqlite:///wanbot.db --to postgresql://wanbot:PASSWORD@db.example:5432/wanbot": (
        "test",
        "tests.store.test_store_transfer::test_the_migrate_db_command_copies_and_says_what",
    ),
    "python -m bot sync": (
        "test",
        "tests.e2e.test_first_run_sandbox::test_sync_forces_a_command_sync",
    ),
    "python -m bot usage": (
        "test",
        "tests.e2e.test_owner_e2e::test_usage_numbers_equal_what_the_emulator_billed",
    ),
    **{
        command: ("test", "tests.e2e.test_charts_e2e::test_the_cli_writes_the_owners_chart")
        for command in (
            "python -m bot usage --chart usage.png",
            "python -m bot usage --chart usage.png --days 30 --language zh-CN",
        )
    },
    "python -m bot.sandbox": (
        "test",
        "tests.unit.test_sandbox_cli::test_cli_serves_and_stops_on_sigterm",
    ),
    **{
        command: ("test", "tests.unit.test_i18n_tools::test_catalogue_commands_from_a_fresh_copy")
        for command in (
            "python -m bot.i18n extract",
            "python -m bot.i18n update",
            "python -m bot.i18n compile",
            "python -m bot.i18n init ja",
        )
    },
    "python bench/poll.py": ("bench", "bench/poll.py"),
    "python bench/store.py": ("bench", "bench/store.py"),
    "python bench/store.py --alchemy": ("bench", "bench/store.py"),
    "python bench/e2e.py --mode account --repeat 2": ("bench", "bench/e2e.py"),
    "python bench/e2e.py --mode account --trace": ("bench", "bench/e2e.py"),
    "python bench/cluster.py": ("bench", "bench/cluster.py"),
    "python bench/timing.py": ("bench", "bench/timing.py"),
    "python bench/loaded.py --runs 5": ("bench", "bench/loaded.py"),
    "python bench/mutation.py": ("bench", "bench/mutation.py"),
    "python bench/charts.py": ("bench", "bench/charts.py"),
    "docker compose --profile sqlite --profile monitoring up -d": (
        "deploy",
        "tests.project.test_deploy_container::test_the_monitoring_profile_scrapes_each_bot_service",
    ),
    **{
        command: (
            "deploy",
            "tests.project.test_deploy_systemd::test_docs_install_steps_match_the_unit",
        )
        for command in (
            "sudo python3 -m venv /opt/wanbot/venv",
            "sudo /opt/wanbot/venv/bin/pip install .",
            "sudo install -D -m 600 .env /etc/wanbot/wanbot.env",
            "sudo cp deploy/wanbot.service /etc/systemd/system/",
            "sudo systemctl daemon-reload",
            "sudo systemctl enable --now wanbot",
            "journalctl -u wanbot -f",
        )
    },
    **{
        command: (
            "deploy",
            "tests.project.test_deploy_container::test_compose_has_the_two_profiles",
        )
        for command in (
            "docker compose --profile sqlite up -d",
            "docker compose --profile sqlite logs -f bot",
            "docker compose --profile postgres up -d",
            "docker compose --profile sqlite exec bot python -m bot check --live",
            "docker inspect --format '{{.State.Health.Status}}' \"$(docker compose ps -q bot)\"",
        )
    },
}


# --- reading the pages ---------------------------------------------------------------------------


def fenced_commands(text: str) -> list[str]:
    """Each command of the fenced `bash` blocks, split at `&&`."""
    commands: list[str] = []
    for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, re.S | re.M):
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in line.split("&&")]
    return commands


def code_spans(text: str) -> list[str]:
    """The inline code spans (`...`), outside fenced blocks."""
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", prose)


def every_command_shown() -> list[str]:
    """Fenced commands and inline `python ...` spans of every page, each split at `&&`."""
    commands: list[str] = []
    for text in TEXTS.values():
        commands += fenced_commands(text)
        for span in code_spans(text):
            if span.startswith("python "):
                commands += [part.strip() for part in span.split("&&")]
    return commands


def section(text: str, heading: str) -> str:
    """The text under `heading` (a `## ` heading) up to the next heading of that level or higher."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^#{{1,2}} |\Z)", text, re.S | re.M)
    assert match, f"no section ## {heading}"
    return match.group(1)


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of every table whose header row starts with `header`."""
    rows: list[list[str]] = []
    for match in re.finditer(rf"^{re.escape(header)}.*\n\|[-| ]+\|\n((?:\|.*\n?)+)", text, re.M):
        for line in match.group(1).splitlines():
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def anchor(heading: str) -> str:
    """A heading's anchor, as MkDocs' toc (and GitHub) make it."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"[ ]+", "-", slug).strip("-")


def anchors(text: str) -> set[str]:
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", prose, re.M)}


# --- settings ------------------------------------------------------------------------------------


def environment_reads(files: list[Path]) -> set[str]:
    """Environment variables read by name in `files` (`os.environ["X"]`, `.get("X")`,
    `"X" in os.environ`, `os.getenv("X")`)."""
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            keys: list[ast.expr] = []
            if isinstance(node, ast.Compare) and any(
                "environ" in ast.unparse(c) for c in node.comparators
            ):
                keys.append(node.left)
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                keys.append(node.slice)
            elif isinstance(node, ast.Call) and re.search(
                r"environ\.get$|getenv$", ast.unparse(node.func)
            ):
                keys += node.args[:1]
            names |= {k.value for k in keys if isinstance(k, ast.Constant)}
    return {name for name in names if isinstance(name, str)}


def code_files() -> list[Path]:
    """The bot's own code: the core and the Discord side."""
    return [*(REPO / "bot").rglob("*.py"), *(REPO / "cogs").rglob("*.py")]


def test_every_setting_is_documented_with_its_default() -> None:
    rows = table_rows(PAGES["settings.md"], "| Variable | Default |")
    documented = {row[0].strip("`"): row[1] for row in rows}
    expected = {v.name: f"`{v.default}`" if v.default is not None else "(none)" for v in VARIABLES}
    assert documented == expected
    # Every row says what the setting does.
    assert all(len(row) >= 3 and len(row[2]) > 10 for row in rows)


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    """Besides `VARIABLES` (read through `bot/config.py`), what the code reads by name."""
    read = environment_reads(code_files())
    assert {"MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"} <= read
    spans = set(code_spans(PAGES["settings.md"]))
    assert read <= spans, read - spans


def test_environment_reads_finds_each_form(tmp_path: Path) -> None:
    code = tmp_path / "m.py"
    code.write_text(
        "import os\nos.environ['A']\nos.environ.get('B', '')\nif 'C' in os.environ: pass\n"
        "os.getenv('D')\nprint('E')\n"
    )
    assert environment_reads([code]) == {"A", "B", "C", "D"}


def test_env_example_lists_every_setting_with_its_default() -> None:
    """`.env.example` is the file getting started copies: same variables, same defaults."""
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example == {v.name: v.default or "" for v in VARIABLES}


# --- slash commands ------------------------------------------------------------------------------


async def registered_commands(tmp_path: Path) -> list[dict[str, Any]]:
    """What `python -m bot sync` registers with Discord."""
    async with FakeDiscord(token=TOKEN) as fd:
        env = base_env(
            DISCORD_TOKEN=TOKEN,
            DISCORD_API_BASE=fd.api_base,
            DATABASE_URL=f"sqlite:///{tmp_path / 'wanbot.db'}",
        )
        result = await run_cli("sync", "--sandbox", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.output
        return fd.commands()


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return asyncio.run(registered_commands(tmp_path_factory.mktemp("sync")))


def usage(command: str, sub: dict[str, Any]) -> str:
    """A subcommand as the commands page writes it: `/wanquota set user [limit]`."""
    words = [o["name"] if o.get("required") else f"[{o['name']}]" for o in sub.get("options", [])]
    return " ".join([f"/{command}", sub["name"], *words])


def subcommands(command: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in command.get("options", []) if o["type"] == 1}


def test_every_registered_command_and_option_is_documented(
    registered: list[dict[str, Any]],
) -> None:
    """A plain slash command has a section of its own naming each option; a subcommand is in its
    command's table with its usage; a context menu has a section."""
    page = PAGES["commands.md"]
    names = {c["name"] for c in registered}
    assert {"wanedit", "wanquota", "Edit with Wan"} <= names
    for command in registered:
        if command["type"] != 1:
            assert section(page, command["name"]), command["name"]
            continue
        text = section(page, f"/{command['name']}")
        spans = set(code_spans(text))
        subs = subcommands(command)
        for sub in subs.values():
            assert usage(command["name"], sub) in spans, usage(command["name"], sub)
        if not subs:
            options = [o["name"] for o in command.get("options", [])]
            missing = [name for name in options if name not in spans]
            assert not missing, (command["name"], missing)


def test_every_slash_command_shown_is_registered(registered: list[dict[str, Any]]) -> None:
    """`/wanX sub name: value` in any page: the command, the subcommand and each `name:` exist."""
    by_name = {c["name"]: c for c in registered if c["type"] == 1}
    seen = 0
    for where, text in TEXTS.items():
        for span in code_spans(text):
            if not span.startswith("/wan"):
                continue
            seen += 1
            words = span.split()
            command = by_name.get(words[0][1:])
            assert command is not None, f"{where}: {span}"
            options = command.get("options", [])
            subs = subcommands(command)
            if subs and len(words) > 1 and not words[1].endswith(":"):
                sub = subs.get(words[1])
                assert sub is not None, f"{where}: {span}"
                options = sub.get("options", [])
            names = {o["name"] for o in options}
            for given in re.findall(r"(\w+):(?:\s|$)", span):
                assert given in names, f"{where}: {span}: no option {given}"
    assert seen > 20


# --- the command line ----------------------------------------------------------------------------


def cli_parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser `python -m bot` builds (caught as it parses)."""
    caught: list[argparse.ArgumentParser] = []
    parse = argparse.ArgumentParser.parse_args

    def catching(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        caught.append(self)
        return parse(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catching)
    cli.parse_args(["run"])
    return caught[0]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_cli_command_and_option_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = table_rows(section(PAGES["commands.md"], "Command line"), "| Command |")
    documented = {row[0].strip("`"): row[1] for row in rows}
    for name, parser in subparsers(cli_parser(monkeypatch)).items():
        row = documented.get(f"python -m bot {name}")
        assert row is not None, f"python -m bot {name} is not in the command-line table"
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        missing = [o for o in options if o not in ("--help", "--sandbox") and o not in row]
        assert not missing, (name, missing)


def test_every_cli_command_shown_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fenced `python -m bot ...` parses as written; an inline one names a real subcommand and
    real options; `python -m X` names a module; `python PATH` a file."""
    parser = cli_parser(monkeypatch)
    subs = subparsers(parser)
    fenced = {c for text in TEXTS.values() for c in fenced_commands(text)}
    checked = 0
    for command in every_command_shown():
        words = shlex.split(command)
        if words[:3] == ["python", "-m", "bot"]:
            checked += 1
            if command in fenced:
                cli.parse_args(words[3:])  # argparse exits on anything it does not know
                continue
            named = [w for w in words[3:] if not w.startswith("-")]
            assert not named or named[0] in subs, f"{command}: no such command"
            sub = subs[named[0]] if named else parser
            known = {o for a in sub._actions for o in a.option_strings} | {"--sandbox"}
            unknown = [w for w in words[3:] if w.startswith("--") and w not in known]
            assert not unknown, (command, unknown)
        elif words[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(words[2]) is not None, command
        elif words[0] == "python" and words[1].endswith(".py"):
            assert (REPO / words[1]).is_file(), command
    assert checked > 10


def test_every_repository_path_in_a_command_exists() -> None:
    """Paths the commands name (`deploy/wanbot.service`, `tests/unit`, the sample picture)."""
    for command in {c for text in TEXTS.values() for c in fenced_commands(text)}:
        for word in shlex.split(command):
            if re.fullmatch(r"(bot|cogs|tests|bench|deploy|docs)/[\w./-]+", word):
                assert (REPO / word).exists(), f"{command}: {word}"


REPO_PATH = re.compile(r"(?:bot|cogs|tests|bench|deploy|docs)/[\w./-]*")
FILE_NAME = re.compile(r"_*\w+\.py|\w+/")


def test_every_repository_path_the_docs_name_exists() -> None:
    """`cogs/surface/delivery.py`, `tests/unit/` and the like, wherever the docs name them."""
    named = 0
    for where, text in TEXTS.items():
        for span in code_spans(text):
            if REPO_PATH.fullmatch(span) and span != SAMPLE_RESULT:
                named += 1
                assert (REPO / span).exists(), f"{where}: {span}"
    assert named > 20


def test_every_file_a_folder_table_names_exists() -> None:
    """In a table whose first column names folders (the architecture's layout, the test groups),
    each file the row names is in one of the row's folders."""
    checked = 0
    for where, text in TEXTS.items():
        for row in table_rows(text, "| Folder |"):
            folders = [f for f in code_spans(row[0]) if f.endswith("/")]
            for name in code_spans(" | ".join(row[1:])):
                if FILE_NAME.fullmatch(name) and not REPO_PATH.fullmatch(name):
                    checked += 1
                    assert any((REPO / f / name).exists() for f in folders), (where, row[0], name)
    assert checked > 30


def test_every_fenced_command_is_covered() -> None:
    commands = {c for text in TEXTS.values() for c in fenced_commands(text)}
    assert NEWCOMER_EDIT in commands and "python -m pytest" in commands
    unknown = sorted(commands - set(COVERED))
    assert not unknown, f"commands no test or .ci/run covers (add them to COVERED): {unknown}"


def strings_used_by(module_name: str, function: str) -> set[str]:
    """The string literals of a test function and of the module's own functions it calls (one
    level: the helpers that build a command line, like `check()` in test_first_run_check)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    defs = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert function in defs, f"{module_name}::{function} is gone"

    def literals(node: ast.AST) -> set[str]:
        return {
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }

    found = literals(defs[function])
    for call in ast.walk(defs[function]):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            helper = defs.get(call.func.id)
            if helper is not None:
                found |= literals(helper)
    return found


def launch_words(command: str) -> list[str]:
    """What a test must pass to start `command`: the arguments after `python -m bot` (the
    helpers `run_cli`/`running_cli` add `-m bot`), or the module for any other `python -m`.
    Example values that name a database or server (`sqlite:///wanbot.db`, `postgresql://...`) are
    the reader's own, so the test passes its own there; a command that is not `python -m`
    (`curl` of the metrics endpoint) needs only its test to exist."""
    words = shlex.split(command)
    if words[:2] != ["python", "-m"]:
        return []
    words = words[3:] if words[2] == "bot" else words[2:3]
    return [w for w in words if "://" not in w]


@pytest.mark.parametrize(
    "command", sorted(c for c, (kind, _) in COVERED.items() if kind == "deploy")
)
def test_covering_deploy_test_exists(command: str) -> None:
    """Commands that need root, systemd or Docker: the test that checks their files exists."""
    module_name, function = COVERED[command][1].split("::")
    assert hasattr(importlib.import_module(module_name), function), f"{module_name}::{function}"


@pytest.mark.parametrize("command", sorted(c for c, (kind, _) in COVERED.items() if kind == "ci"))
def test_covering_ci_line_exists(command: str) -> None:
    _, where = COVERED[command]
    assert where in CI.splitlines(), f".ci/run no longer runs {where!r}"


@pytest.mark.parametrize("command", sorted(c for c, (kind, _) in COVERED.items() if kind == "test"))
def test_covering_test_runs_that_command(command: str) -> None:
    """The named test exists and really starts the command with its arguments: a test of that
    name that runs something else does not count."""
    module_name, function = COVERED[command][1].split("::")
    used = strings_used_by(module_name, function)
    missing = [word for word in launch_words(command) if word not in used]
    assert not missing, f"{module_name}::{function} does not pass {missing} for {command!r}"


def test_launch_words_are_what_a_test_passes() -> None:
    assert launch_words("python -m bot check --sandbox") == ["check", "--sandbox"]
    assert launch_words("python -m bot.sandbox") == ["bot.sandbox"]
    # A test that exists but runs another command is not coverage.
    used = strings_used_by("tests.e2e.test_first_run_sandbox", "test_sync_forces_a_command_sync")
    assert "sync" in used and "check" not in used


async def test_benchmark_commands_start() -> None:
    """Each benchmark script answers `--help`, and knows every option the docs give it."""
    benches = [(c, where) for c, (kind, where) in COVERED.items() if kind == "bench"]

    async def help_of(script: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            script,
            "--help",
            cwd=REPO,
            env=base_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode()

    answers = await asyncio.gather(*(help_of(script) for _, script in benches))
    for (command, script), (code, out) in zip(benches, answers, strict=True):
        assert code == 0 and "usage:" in out, f"{script} --help failed:\n{out}"
        for option in re.findall(r"(--[a-z][\w-]*)", command):
            assert option in out, f"{script} has no {option}"


def test_sandbox_tags_match_the_emulator() -> None:
    """Every demo tag the emulator documents is in the docs, and each one there does something."""
    documented = set(re.findall(r"`(\[[a-z]+(?::[A-Za-z]+)?\])`", SANDBOX_DOC or ""))
    shown = set(
        re.findall(r"^\| `(\[[a-z]+(?::[A-Za-z]+)?\])` \|", PAGES["getting-started.md"], re.M)
    )
    assert documented and documented == shown
    for tag in shown:
        assert PromptTags.parse(tag.replace("SECONDS", "5")) != PromptTags(), tag


# --- the README ----------------------------------------------------------------------------------


def test_the_readme_is_short_with_the_chinese_section_on_its_first_screen() -> None:
    lines = README.splitlines()
    assert len(lines) <= README_MAX_LINES
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    start = lines.index("## 中文说明")
    end = min(i for i in headings if i > start)
    assert start < FIRST_SCREEN and end <= FIRST_SCREEN + 5, (start, end)


def test_the_readme_gives_the_two_newcomer_commands_one_line_each() -> None:
    lines = README.splitlines()
    assert f"python -m pip install -e . && {NEWCOMER_EDIT}" in lines
    assert NEWCOMER_TESTS in lines
    # The test command is what CI runs.
    assert "python -m pytest" in CI.splitlines()


def test_the_readme_links_only_to_docs_pages_that_exist() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    for link in local:
        path, _, fragment = link.partition("#")
        assert path.startswith("docs/") and path.endswith(".md"), link
        page = path.removeprefix("docs/")
        assert page in PAGES, link
        assert not fragment or fragment in anchors(PAGES[page]), link


def test_anchor_is_what_mkdocs_makes() -> None:
    assert anchor("A DashScope API key and its region") == "a-dashscope-api-key-and-its-region"
    assert anchor("/wanquota") == "wanquota"
    assert anchor("Operations and troubleshooting") == "operations-and-troubleshooting"


def test_the_sample_is_a_small_picture_wan_accepts() -> None:
    path = REPO / SAMPLE
    assert 10_000 < path.stat().st_size < 100_000
    with Image.open(path) as image:
        assert image.format == "JPEG"
        width, height = image.size
    assert 384 <= min(width, height) and max(width, height) <= 5000


async def test_the_newcomer_edit_runs_on_the_shipped_sample(tmp_path: Path) -> None:
    """The README's first command after the install, exactly as written, in a folder holding only
    the shipped sample: no `.env`, no key, no token, no Discord."""
    words = ("edit", "docs/assets/sample.jpg", "--prompt", "make it snow", "--sandbox")
    assert shlex.split(NEWCOMER_EDIT) == ["python", "-m", "bot", *words]
    (tmp_path / "docs" / "assets").mkdir(parents=True)
    shutil.copy(REPO / SAMPLE, tmp_path / SAMPLE)
    result = await run_cli(*words, env=base_env(), cwd=tmp_path)
    assert result.returncode == 0, result.output
    written = tmp_path / SAMPLE_RESULT
    assert result.stdout.splitlines()[0] == str(written)
    with Image.open(written) as image:
        assert image.format == "PNG"
