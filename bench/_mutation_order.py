"""pytest plugin for bench/mutation.py: which of a mutant's tests run, in which order, and which
mutants are not tested at all.

mutmut runs each mutant in a process forked from its own (where this plugin is loaded), with the
tests its stats pass saw reach the mutated function, and `-x`: the first failure ends the run, so
the order decides what a killed mutant costs, and a survivor costs every test it runs.

- Stats pass: each test's whole duration (setup, call and teardown: mutmut's own stats count only
  the call, and most of an end-to-end test's time is starting and stopping the bot) is written to
  `DURATIONS`, and the tests that passed are remembered in this process.
- Clean pass: the tests that passed in this process's stats pass moments ago are not run again
  (with the same code, unmutated); only the others run (none after a full stats pass).
- A mutant: a documented equivalent (`EQUIVALENTS`) runs no test and ends with mutmut's "skipped"
  exit code. The others run first the tests that killed other mutants of the same function in this
  run (`KILLERS`: mutants of one function run close together, six or more at a time, and most
  fall to the same few tests), then, for the job runner, the quick tests written against it
  (`DIRECT`), then the rest fastest first; only the first ones within `WANBOT_MUTATION_BUDGET`
  seconds of measured duration run (at least one; default 20, 0 runs them all), so a survivor
  costs at most that much.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Written in mutmut's working copy (`mutants/`, the tests' working directory).
DURATIONS = Path("wanbot-durations.json")
KILLERS = Path("wanbot-killers.txt")
EQUIVALENTS = Path(__file__).resolve().with_name("mutation_equivalents.md")
BUDGET = 20.0
SKIPPED = 34  # mutmut's exit code for "skipped"
TIMED_OUT = 36  # mutmut's exit code for "timeout"
WATCHDOG_GRACE = 10.0  # seconds past a test's own limit (`--timeout`) before the run is ended

# Per module prefix, test files that drive it directly in quick tests: every end-to-end test starts a
# bot (so it reaches `resume`) and most deliver a result, so by speed alone the budget would go on
# dozens of them before the one test that checks the branch.
DIRECT = {"bot.jobs.": ("tests/unit/test_runner.py",)}

_passed: set[str] = set()  # tests that passed in a stats pass of this process


def _mode() -> str:
    return os.environ.get("MUTANT_UNDER_TEST", "")


def _function(mutant: str) -> str:
    return mutant.partition("__mutmut_")[0]


# ---- documented equivalents ----------------------------------------------------------------------


@dataclass(frozen=True)
class Equivalent:
    """One entry of bench/mutation_equivalents.md: a function pattern and one mutant's change."""

    function: str  # mutmut's name of the function, `*` as in fnmatch
    change: tuple[tuple[str, str], ...]  # ("-" or "+", the line without its indentation)


_HEADING = re.compile(r"^#{2,4} `([^`]+)`")
_FENCE = re.compile(r"^```diff\s*$")


def read_equivalents(path: Path = EQUIVALENTS) -> list[Equivalent]:
    """Every ```diff block of the file, each under the last heading that names a function."""
    entries: list[Equivalent] = []
    function: str | None = None
    block: list[tuple[str, str]] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if block is not None:
            if line.startswith("```"):
                if function is None:
                    raise ValueError(f"{path.name}: a diff block before any function heading")
                entries.append(Equivalent(function, tuple(block)))
                block = None
            elif line[:1] in "-+":
                block.append((line[0], line[1:].strip()))
            continue
        heading = _HEADING.match(line)
        if heading:
            function = heading.group(1)
        elif _FENCE.match(line):
            block = []
    return entries


def change_of(diff: str) -> tuple[tuple[str, str], ...]:
    """The changed lines of a unified diff, as `Equivalent.change` holds them."""
    return tuple(
        (line[0], line[1:].strip())
        for line in diff.splitlines()
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    )


def matching(mutant: str, change: tuple[tuple[str, str], ...], entries: list[Equivalent]) -> bool:
    function = _function(mutant)
    return any(e.change == change and fnmatch.fnmatchcase(function, e.function) for e in entries)


def mutant_diff(mutant: str, root: Path) -> str:
    """The mutant's change, as `mutmut show` prints it (`root`: the project, holding `mutants/`)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import get_module_from_key

    path = Path(*get_module_from_key(mutant).split(".")).with_suffix(".py")
    here = Path.cwd()
    os.chdir(root)
    try:
        return get_diff_for_mutant(mutant, path=path)
    finally:
        os.chdir(here)


def is_equivalent(mutant: str, root: Path) -> bool:
    entries = [e for e in read_equivalents() if fnmatch.fnmatchcase(_function(mutant), e.function)]
    return bool(entries) and matching(mutant, change_of(mutant_diff(mutant, root)), entries)


# ---- durations and killers ------------------------------------------------------------------------


def _durations() -> dict[str, float]:
    if DURATIONS.exists():
        return json.loads(DURATIONS.read_text())
    return {}


def _killers(function: str) -> Iterator[str]:
    if not KILLERS.exists():
        return
    for line in KILLERS.read_text().splitlines():
        name, _, test = line.partition("\t")
        if name == function:
            yield test


class _StatsRecorder:
    """Each test's whole duration and outcome during a stats pass."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self.failed: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.add(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        merged = {**_durations(), **self.durations}
        DURATIONS.write_text(json.dumps(merged, indent=1, sort_keys=True))
        _passed.update(set(self.durations) - self.failed)


class _KillerRecorder:
    """Notes the test that failed on this mutant, for the next mutants of its function."""

    def __init__(self, function: str) -> None:
        self.function = function

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            # One short line, appended: whole even with several processes appending at once.
            with KILLERS.open("a") as out:
                out.write(f"{self.function}\t{report.nodeid}\n")


class _Watchdog:
    """Ends the run when one test, with its fixtures, outlasts `seconds`: pytest-timeout stops
    timing a test once it has failed, so a teardown the mutant hangs (a store that never closes)
    would wait for mutmut's own limit, minutes later. A failure seen before is the exit status,
    else mutmut's "timeout"."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.failed = False

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        timer = threading.Timer(self.seconds, self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.failed = self.failed or report.failed

    def _expire(self) -> None:
        os._exit(1 if self.failed else TIMED_OUT)


class _Skip:
    """Ends the session with an exit status of our choosing once nothing was left to run."""

    def __init__(self, status: int) -> None:
        self.status = status

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.testscollected == 0:
            session.exitstatus = self.status


# ---- the hooks ------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    mode = _mode()
    if mode == "stats":
        config.pluginmanager.register(_StatsRecorder(), "wanbot-stats")
    elif "__mutmut_" in mode:
        config.pluginmanager.register(_KillerRecorder(_function(mode)), "wanbot-killers")
        limit = config.getoption("timeout", None) or 30.0
        config.pluginmanager.register(_Watchdog(float(limit) + WATCHDOG_GRACE), "wanbot-watchdog")


def _order(items: list[pytest.Item], mutant: str) -> None:
    durations = _durations()
    killers = set(_killers(_function(mutant)))
    direct = next((files for prefix, files in DIRECT.items() if mutant.startswith(prefix)), ())
    items.sort(
        key=lambda item: (
            item.nodeid not in killers,
            not item.nodeid.startswith(direct) if direct else False,
            durations.get(item.nodeid, 0.0),
        )
    )


def _deselect(config: pytest.Config, items: list[pytest.Item], keep: list[pytest.Item]) -> None:
    gone = [item for item in items if item not in keep]
    if gone:
        config.hook.pytest_deselected(items=gone)
    items[:] = keep


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mode = _mode()
    if mode == "":
        # The clean pass: what the stats pass ran green moments ago with the same code is not run
        # again; mutmut only needs an exit status of 0 from it.
        if _passed:
            _deselect(config, items, [item for item in items if item.nodeid not in _passed])
            config.pluginmanager.register(_Skip(pytest.ExitCode.OK), "wanbot-clean")
        return
    if mode == "fail":
        # mutmut's check that a failure is seen: the quickest test shows it.
        durations = _durations()
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
        return
    if "__mutmut_" not in mode:
        return
    if is_equivalent(mode, Path.cwd().parent):
        _deselect(config, items, [])
        config.pluginmanager.register(_Skip(SKIPPED), "wanbot-equivalent")
        return
    _order(items, mode)
    budget = float(os.environ.get("WANBOT_MUTATION_BUDGET", BUDGET))
    if budget <= 0:
        return
    durations = _durations()
    keep, spent = len(items), 0.0
    for index, item in enumerate(items):
        spent += durations.get(item.nodeid, 0.0)
        if spent > budget and index > 0:
            keep = index
            break
    _deselect(config, items, items[:keep])
