"""The README stays true: its settings table, its commands, its sandbox tags, its links and sections.

Every shell command the README shows (fenced `bash` blocks, and inline `python ...` spans) must be one
that a test or `.ci/run` runs: `COVERED` says which, and this file checks that the named test exists,
that `.ci/run` really has the named line, and that each benchmark script answers `--help`.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import VARIABLES
from bot.sandbox import __doc__ as SANDBOX_DOC
from bot.sandbox.faults import PromptTags
from tests.support.fake_discord import FakeDiscord
from tests.support.first_run import REPO, TOKEN, base_env, run_cli

README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()

# command -> how it is covered: ("test", "module::function"), ("ci", "exact line of .ci/run"),
# ("bench", "script path"): a benchmark, too slow for the suite; its `--help` must work, or
# ("deploy", "module::function"): a command that needs root, systemd as PID 1 or a Docker engine,
# which test machines lack; the named test checks the file it installs or starts instead.
COVERED: dict[str, tuple[str, str]] = {
    # .ci/run installs the project with the dev extra: a superset of the plain install.
    "python -m pip install -e .": ("ci", "python -m pip install -q -e '.[dev]'"),
    "python -m pip install -e '.[dev]'": ("ci", "python -m pip install -q -e '.[dev]'"),
    "python -m pytest": ("ci", "python -m pytest"),
    "ruff check .": ("ci", "ruff check ."),
    'eval "$(python tests/support/pgcluster.py start)"': (
        "ci",
        'eval "$(python tests/support/pgcluster.py start)"',
    ),
    'python tests/support/pgcluster.py stop "$WANBOT_TEST_PG_DIR"': (
        "test",
        "tests.support.test_pgcluster::test_start_and_stop",
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
    'python -m bot edit photo.jpg --prompt "make it snow" --sandbox': (
        "test",
        "tests.e2e.test_terminal::test_the_readme_quick_start_edit_runs_from_the_command_line",
    ),
    "python -m bot sync": (
        "test",
        "tests.e2e.test_first_run_sandbox::test_sync_forces_a_command_sync",
    ),
    "python -m bot usage": (
        "test",
        "tests.e2e.test_owner_e2e::test_usage_numbers_equal_what_the_emulator_billed",
    ),
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
    "python bench/e2e.py --mode both": ("bench", "bench/e2e.py"),
    "python bench/e2e.py --mode account --repeat 2": ("bench", "bench/e2e.py"),
    "python bench/e2e.py --mode account --trace": ("bench", "bench/e2e.py"),
    "python bench/cluster.py": ("bench", "bench/cluster.py"),
    **{
        command: (
            "deploy",
            "tests.project.test_deploy_systemd::test_readme_install_steps_match_the_unit",
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
    "python bench/timing.py": ("bench", "bench/timing.py"),
    "python bench/loaded.py --runs 5": ("bench", "bench/loaded.py"),
    "python bench/mutation.py": ("bench", "bench/mutation.py"),
}

# Issue 7's order for the two readers: what it does, quick start, then the admin's path, then the rest.
SECTIONS = [
    "中文说明",
    "What it does",
    "Quick start",
    "Creating the Discord application",
    "Getting a DashScope API key and choosing the region",
    "Settings",
    "Controlling cost",
    "Quotas and the admin commands",
    "Costs",
    "Image transport per region",
    "Sandbox mode (try it for free)",
    "Running as a service",
    "Running more than one process",
    "Troubleshooting",
    "Benchmarks",
    "Architecture",
]


def settings_table() -> str:
    """The README's settings table, made from `bot.config.VARIABLES`."""
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    for v in VARIABLES:
        default = f"`{v.default}`" if v.default is not None else "(none)"
        rows.append(f"| `{v.name}` | {default} | {v.description} |")
    return "\n".join(rows)


def shell_commands(text: str) -> list[str]:
    """Each command of the fenced bash blocks (split at `&&`), and inline `python ...` spans."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in line.split("&&")]
    for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text):
        if re.match(r"(python|ruff) ", span) and "[" not in span.replace("'.[dev]'", ""):
            commands += [part.strip() for part in span.split("&&")]
    return commands


def test_settings_table_matches_config() -> None:
    match = re.search(
        r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", README, re.S
    )
    assert match, "the README lost its settings-table markers"
    expected = settings_table()
    assert match.group(1) == expected, f"paste this table into README.md:\n{expected}"


def test_sections_in_order() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings == SECTIONS


def test_internal_links_point_at_headings() -> None:
    def anchor(heading: str) -> str:
        return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")

    anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", README, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", README)
    assert links and set(links) <= anchors


def test_every_command_is_covered() -> None:
    commands = shell_commands(README)
    assert "python -m pytest" in commands and "python -m bot --sandbox" in commands
    unknown = sorted(set(commands) - set(COVERED))
    assert not unknown, (
        f"README commands no test or .ci/run covers (add them to COVERED): {unknown}"
    )


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
    """Each benchmark script answers `--help`, and knows every option the README gives it."""
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
    """Every demo tag the emulator documents is in the README, and each README tag does something."""
    documented = set(re.findall(r"`(\[[a-z]+(?::[A-Za-z]+)?\])`", SANDBOX_DOC or ""))
    in_readme = set(re.findall(r"^\| `(\[[a-z]+(?::[A-Za-z]+)?\])` \|", README, re.M))
    assert documented and documented == in_readme
    for tag in in_readme:
        assert PromptTags.parse(tag.replace("SECONDS", "5")) != PromptTags(), tag


def test_env_example_matches_the_table() -> None:
    """`.env.example` is the file the quick start copies: same variables, same defaults."""
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example == {v.name: v.default or "" for v in VARIABLES}


def command_table() -> dict[str, str]:
    """The README's command table: first cell -> the rest of the row."""
    match = re.search(
        r"^\| Command \| Example \| What happens \|\n\|[-|]+\|\n((?:\|.*\n)+)", README, re.M
    )
    assert match, "the README lost its command table"
    rows = {}
    for line in match.group(1).splitlines():
        first, rest = line.strip("|").split("|", 1)
        rows[first.strip()] = rest
    return rows


def usages(commands: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """From the registered commands: the slash usages as the table writes them (`/wanquota set
    user [limit]`), the context-menu names, and each plain slash command's option names."""
    slash: list[str] = []
    menus: list[str] = []
    options: dict[str, list[str]] = {}
    for command in commands:
        if command["type"] != 1:
            menus.append(command["name"])
            continue
        subs = [o for o in command.get("options", []) if o["type"] == 1]
        if not subs:
            slash.append(f"/{command['name']}")
            options[command["name"]] = [o["name"] for o in command.get("options", [])]
        for sub in subs:
            words = [
                o["name"] if o.get("required") else f"[{o['name']}]" for o in sub.get("options", [])
            ]
            slash.append(" ".join([f"/{command['name']}", sub["name"], *words]))
    return slash, menus, options


async def test_every_registered_command_is_documented(tmp_path: Path) -> None:
    """What `python -m bot sync` registers with Discord is exactly what the README's command
    table lists: one row per slash usage and per context menu, and the /wanedit row names every
    option, in the order Discord shows them."""
    async with FakeDiscord(token=TOKEN) as fd:
        env = base_env(
            DISCORD_TOKEN=TOKEN,
            DISCORD_API_BASE=fd.api_base,
            DATABASE_URL=f"sqlite:///{tmp_path / 'wanbot.db'}",
        )
        result = await run_cli("sync", "--sandbox", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.output
        commands = fd.commands()
    slash, menus, options = usages(commands)
    assert {"/wanedit", "/wanquota show [user]"} <= set(slash) and menus == ["Edit with Wan"]
    table = command_table()
    listed_slash = [
        cell.strip("`") for cell in table if cell.startswith("`/") and cell.endswith("`")
    ]
    listed_menus = [cell.strip("*") for cell in table if cell.startswith("**")]
    assert sorted(listed_slash) == sorted(slash)
    assert listed_menus == menus
    for name, names in options.items():
        row = table[f"`/{name}`"]
        assert "Options:" in row, name
        documented = re.findall(r"`(\w+)`(?: \(|,|\.| )", row.split("Options:", 1)[1])
        assert documented == names, (name, documented)


def test_command_table_reader_sees_each_row() -> None:
    table = command_table()
    assert "`/wanedit`" in table and "**Edit with Wan**" in table and "Reply edits" in table
    assert usages(
        [
            {"type": 3, "name": "Menu"},
            {
                "type": 1,
                "name": "q",
                "options": [
                    {
                        "type": 1,
                        "name": "set",
                        "options": [{"name": "user", "required": True}, {"name": "limit"}],
                    }
                ],
            },
        ]
    ) == (["/q set user [limit]"], ["Menu"], {})
