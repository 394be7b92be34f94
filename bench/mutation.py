"""Mutation testing of the modules that hold the money and the jobs, with mutmut 3.

    python bench/mutation.py [--max-children 8] [--keep | --survivors] [--diff] [--all]
                             [--sqlite-only]

mutmut changes one small thing at a time in the code (a `<` into `<=`, a `True` into `False`, an
argument dropped) and runs the tests that reach the changed function; a change no test notices
("survived") is a promise nothing guards. Its settings are `[tool.mutmut]` in pyproject.toml:

- mutated: the functions in `SCOPE` below, where the bot decides about money and jobs: resuming a
  job without a task id, the per-user cap, settling after delivery, how a job ends, the queue, the
  quota rules and the store's argument checks (`bot/store/quota.py`, `checks.py`), the store's
  reservation, settlement and finishing of a job (`ledger.py`, `jobs.py`, one implementation for
  both engines), the Wan error classification and retry policy; mutmut itself prepares the whole
  files in `[tool.mutmut] only_mutate`;
- not mutated: lines that only log or count metrics (`do_not_mutate_patterns`), and the admin
  settings, audit log, reports and history listing (`admin.py` is not in `only_mutate`: they move
  no money);
- not tested: the mutants bench/mutation_equivalents.md shows to be equivalent (they behave as the
  code they change, for every input): reported apart, never counted as killed nor in the total;
- the tests: an explicit list of in-process tests (`pytest_add_cli_args_test_selection`), the
  store's on both engines and the shared queue's and the bot's on PostgreSQL, on a throwaway server
  this script starts (tests/support/pgcluster.py) or the one WANBOT_TEST_PG_DSN names
  (`--sqlite-only`: none; those tests skip). Tests that start the bot or the CLI in a subprocess
  would import the code without the mutant switched on, and `tests/e2e/test_terminal.py` writes to
  the stdout mutmut captures, so they are left out. mutmut's stats pass records which tests reach
  which function; each mutant runs only those, the ones that killed other mutants of its function
  first, then the rest fastest first, within 20 s of the durations the stats pass measured
  (bench/_mutation_order.py; `WANBOT_MUTATION_BUDGET` seconds, 0 runs them all): a surviving runner
  mutant would otherwise run minutes of end-to-end tests.

Each run starts from a clean copy (`mutants/`) unless `--keep` is given (mutmut then keeps its
copy and stats, and tests the scope again). After adding tests for survivors, `--survivors` tests
again only the mutants the last run did not kill, and prints the score of the whole scope.

The score counts a mutant as killed when a test failed or timed out on it (a mutant that makes the
bot wait forever); everything else (survived, no test reaches it, suspicious) is listed as a
survivor. Eight mutants are tested at once by default: the end-to-end tests mostly wait on loopback
sockets, so eight keep two cores busy. Printed: the survivors, the score of each module and of the
store together, the wall time with the load average, and PASS or MISS beside each target (the run
within 15 minutes; at least 90.4% killed overall and in the store, what the store scored before it
was one implementation for both engines). The last line is always
`mutation score: K/M killed (P%), E equivalent not tested`.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from _mutation_order import (
    EQUIVALENTS,
    change_of,
    matching,
    mutant_diff,
    read_equivalents,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import pgcluster  # noqa: E402

PG_DSN = "WANBOT_TEST_PG_DSN"

# The functions whose mutants are tested (mutmut's names, `*` as in fnmatch): where the bot decides
# about money and jobs. The rest of those files (constructors, progress and text, cancel, the poll
# loop) is left out so a run fits in 30 minutes on two shared cores; `--all` tests every mutant of
# the files in `[tool.mutmut] only_mutate` (hours).
SCOPE = (
    # the job runner: resume without a task id, the per-user cap, settling, how a job ends
    "bot.jobs.job_life.xǁJobLifeǁrun__mutmut_*",
    "bot.jobs.creator.xǁCreatorǁunknown_outcome__mutmut_*",
    "bot.jobs.creator.xǁCreatorǁcancelled_meanwhile__mutmut_*",
    "bot.jobs.dispatcher.xǁDispatcherǁ_admit__mutmut_*",
    "bot.jobs.dispatcher.xǁDispatcherǁ_precheck__mutmut_*",
    "bot.jobs.deliverer.xǁDelivererǁ_post_and_settle__mutmut_*",
    "bot.jobs.deliverer.xǁDelivererǁ_remaining_after__mutmut_*",
    "bot.jobs.outcomes.xǁOutcomesǁfail__mutmut_*",
    "bot.jobs.outcomes.xǁOutcomesǁfinish__mutmut_*",
    "bot.jobs.runner.xǁJobRunnerǁresume__mutmut_*",
    "bot.jobs.queue.*",
    # the quota rules and the store's checks
    "bot.store.quota.*",
    "bot.store.checks.*",
    # the store (one implementation for both engines, run on sqlite): reserve, settle, orphaned
    # holds, finishing a job
    "bot.store.ledger.x_make_snapshot__mutmut_*",
    "bot.store.ledger.x_apply__mutmut_*",
    "bot.store.ledger.x__reserve__mutmut_*",
    "bot.store.ledger.x__close__mutmut_*",
    "bot.store.ledger.x__flush__mutmut_*",
    "bot.store.ledger.x_release_orphans__mutmut_*",
    "bot.store.jobs.x_finish__mutmut_*",
    "bot.store.jobs.x_set_task_id__mutmut_*",
    "bot.store.jobs.x_active_count__mutmut_*",
    # Wan: which errors are retried, how answers become errors, the retry policy
    "bot.wan.errors.x_is_retryable__mutmut_*",
    "bot.wan.errors.x_error_from_response__mutmut_*",
    "bot.wan.errors.xǁCreateOutcomeUnknownǁ*",
    "bot.wan.retry.*",
)


def in_scope(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SCOPE)


LOG = REPO / "bench" / "out" / "mutation.log"
KILLED = {"killed", "timeout", "caught by type check"}
EQUIVALENT = "skipped"  # mutmut's status for the documented equivalents (bench/_mutation_order.py)
# Targets: the whole run within 15 minutes on two cores; at least the score the store had before it
# was one implementation for both engines (991 of 1,096 mutants killed), overall and in the store.
TARGET_MINUTES = 15.0
TARGET_SCORE = 90.4


def mutmut_command() -> list[str]:
    """The `mutmut` entry point next to this interpreter (mutmut warns against `python -m`)."""
    exe = Path(sys.executable).with_name("mutmut")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed: python -m pip install -e '.[dev]'")
    return [found]


def results() -> dict[str, str]:
    """Every mutant's status, from `mutmut results --all true` ("    name: status" lines)."""
    out = subprocess.run(
        [*mutmut_command(), "results", "--all", "true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            statuses[name] = status
    return statuses


def mutmut_run(max_children: int, names: list[str], dsn: str | None) -> bool:
    """`mutmut run` on `names` (all mutants when empty), its output appended to LOG; the store tests
    and the PostgreSQL bot tests run on the server `dsn` names (None: they skip)."""
    # Under CI the PostgreSQL tests fail without a server instead of skipping: CI goes.
    env = {k: v for k, v in os.environ.items() if k not in (PG_DSN, "CI")}
    if dsn is not None:
        env[PG_DSN] = dsn
    with LOG.open("a") as log:
        run = subprocess.run(
            [*mutmut_command(), "run", "--max-children", str(max_children), *names],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode}); see {LOG}", file=sys.stderr)
        tail = LOG.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
    return run.returncode == 0


@contextlib.contextmanager
def postgres(wanted: bool) -> Iterator[str | None]:
    """The PostgreSQL server the tests use: the one WANBOT_TEST_PG_DSN names, else a throwaway one
    for this run (tests/support/pgcluster.py); None when not `wanted`."""
    if not wanted:
        yield None
        return
    given = os.environ.get(PG_DSN, "").strip()
    if given:
        yield given
        return
    dsn, folder = pgcluster.start()
    try:
        yield dsn
    finally:
        pgcluster.stop(folder)


def diff_of(name: str) -> str:
    return subprocess.run(
        [*mutmut_command(), "show", name], cwd=REPO, capture_output=True, text=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-children", type=int, default=8, help="mutants tested at once (default 8: see above)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="reuse mutants/ and the results already in it"
    )
    parser.add_argument("--diff", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--all", action="store_true", help="every mutant of the mutated files, not only SCOPE"
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="test again only the mutants the last run did not kill (implies --keep)",
    )
    parser.add_argument(
        "--sqlite-only",
        action="store_true",
        help="no PostgreSQL server: its tests skip (mutants only it tells apart survive)",
    )
    args = parser.parse_args()

    names: list[str] = [] if args.all else list(SCOPE)
    if args.survivors:
        args.keep = True
        names = [n for n, status in results().items() if status not in KILLED and in_scope(n)]
        if not names:
            sys.exit("no survivors to test again (run without --survivors first)")
    if not args.keep:
        shutil.rmtree(REPO / "mutants", ignore_errors=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text("")
    load_at_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.monotonic()
    print(f"mutmut run (output in {LOG.relative_to(REPO)}) ...", flush=True)
    with postgres(not args.sqlite_only) as dsn:
        if not mutmut_run(args.max_children, names, dsn):
            return 1
        if args.survivors:
            # mutmut forgets the results of a function whose code changed since: test those too.
            unchecked = [n for n, s in results().items() if s == "not checked" and in_scope(n)]
            if unchecked and not mutmut_run(args.max_children, unchecked, dsn):
                return 1
    wall = time.monotonic() - started

    statuses = {n: s for n, s in results().items() if args.all or in_scope(n)}
    counts = Counter(statuses.values())
    survivors = sorted(n for n, s in statuses.items() if s not in KILLED and s != EQUIVALENT)
    print(f"\n{len(survivors)} mutant(s) not killed:")
    for name in survivors:
        print(f"  {name}: {statuses[name]}")
        if args.diff:
            print(diff_of(name))
    report_stale_equivalents([n for n, s in statuses.items() if s == EQUIVALENT])
    print("\nby status: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
    print("\nby module (killed/tested, equivalent not tested):")
    modules = sorted({module_of(n) for n in statuses})
    rows = [(m, score([s for n, s in statuses.items() if module_of(n) == m])) for m in modules]
    store = score([s for n, s in statuses.items() if module_of(n).startswith("bot.store.")])
    everything = score(list(statuses.values()))
    for module, tally in [*rows, ("the store (bot.store.*)", store)]:
        print(f"  {module:32} {tally}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    minutes = wall / 60
    engines = "sqlite" if args.sqlite_only else "sqlite and PostgreSQL"
    print(
        f"wall time {minutes:.1f} min with {args.max_children} children on {os.cpu_count()} cores"
        f" ({engines}); load average at the start {load_at_start}, now {load}"
    )
    targets = [
        (f"wall time {minutes:.1f} min <= {TARGET_MINUTES:g} min", minutes <= TARGET_MINUTES),
        (f"score {everything.percent:.1f}% >= {TARGET_SCORE}%", everything.percent >= TARGET_SCORE),
        (f"store {store.percent:.1f}% >= {TARGET_SCORE}%", store.percent >= TARGET_SCORE),
    ]
    for what, passed in targets:
        print(f"{'PASS' if passed else 'MISS'}  {what}")
    print(f"mutation score: {everything}")
    return 0


class Tally(NamedTuple):
    killed: int
    tested: int
    equivalent: int

    @property
    def percent(self) -> float:
        return 100 * self.killed / self.tested if self.tested else 0.0

    def __str__(self) -> str:
        return (
            f"{self.killed}/{self.tested} killed ({self.percent:.1f}%),"
            f" {self.equivalent} equivalent not tested"
        )


def score(statuses: list[str]) -> Tally:
    equivalent = statuses.count(EQUIVALENT)
    killed = sum(s in KILLED for s in statuses)
    return Tally(killed, len(statuses) - equivalent, equivalent)


def module_of(name: str) -> str:
    """`bot.store.ledger` of `bot.store.ledger.x__close__mutmut_3` (or of `...xǁClassǁf__mutmut_1`)."""
    parts = name.split(".")
    for index, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:index])
    return name.rpartition(".")[0]


def report_stale_equivalents(left_out: list[str]) -> None:
    """Entries of bench/mutation_equivalents.md that matched none of the mutants left out."""
    entries = read_equivalents()
    changes = [(name, change_of(mutant_diff(name, REPO))) for name in left_out]
    stale = [e for e in entries if not any(matching(n, c, [e]) for n, c in changes)]
    for entry in stale:
        change = " / ".join(sign + text for sign, text in entry.change)
        print(f"stale entry in {EQUIVALENTS.name}: {entry.function}: {change}")


if __name__ == "__main__":
    sys.exit(main())
