"""Mutation testing of the modules that hold the money and the jobs, with mutmut 3.

    python bench/mutation.py [--max-children 6] [--keep] [--diff]

mutmut changes one small thing at a time in the code (a `<` into `<=`, a `True` into `False`, an
argument dropped) and runs the tests that reach the changed function; a change no test notices
("survived") is a promise nothing guards. Its settings are `[tool.mutmut]` in pyproject.toml:

- mutated: the job runner (`bot/jobs/`: runner, dispatch, queue, life, creating, delivering,
  endings), the quota rules (`bot/store/quota.py`), the store's argument checks (`checks.py`), the
  sqlite reservation, settlement and job rows (`sqlite_quota.py`, `sqlite_jobs.py`), the Wan error
  classification and retry policy (`bot/wan/errors.py`, `retry.py`);
- not mutated: lines that only log or count metrics (`do_not_mutate_patterns`), and in
  `sqlite_quota.py` / `sqlite_jobs.py` the admin settings, audit log, reports and history listing
  (`# pragma: no mutate` regions there: they move no money, and bound the run to 30 minutes);
- the tests: an explicit list of in-process test files (`pytest_add_cli_args_test_selection`).
  Tests that start the bot or the CLI in a subprocess would import the code without the mutant
  switched on, and `tests/test_terminal.py` writes to the stdout mutmut captures, so they are left
  out. mutmut's stats pass records which tests reach which function; each mutant runs only those.

Each run starts from a clean copy (`mutants/`) unless `--keep` is given, in which case mutmut
reuses the results it has and runs only what changed. The score counts a mutant as killed when a
test failed or timed out on it (a mutant that makes the bot wait forever); everything else (survived,
no test reaches it, suspicious) is listed as a survivor. The last line is always
`mutation score: K/M killed (P%)`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG = REPO / "bench" / "out" / "mutation.log"
KILLED = {"killed", "timeout", "caught by type check"}


def mutmut_command() -> list[str]:
    """The `mutmut` entry point next to this interpreter (mutmut warns against `python -m`)."""
    exe = Path(sys.executable).with_name("mutmut")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed: python -m pip install -e '.[bench]'")
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


def diff_of(name: str) -> str:
    return subprocess.run(
        [*mutmut_command(), "show", name], cwd=REPO, capture_output=True, text=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-children", type=int, default=6, help="mutants tested at once (default 6: see above)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="reuse mutants/ and the results already in it"
    )
    parser.add_argument("--diff", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()

    if not args.keep:
        shutil.rmtree(REPO / "mutants", ignore_errors=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"mutmut run (output in {LOG.relative_to(REPO)}) ...", flush=True)
    with LOG.open("w") as log:
        run = subprocess.run(
            [*mutmut_command(), "run", "--max-children", str(args.max_children)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.monotonic() - started
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode}); see {LOG}", file=sys.stderr)
        tail = LOG.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        return 1

    statuses = results()
    counts = Counter(statuses.values())
    survivors = sorted(name for name, status in statuses.items() if status not in KILLED)
    print(f"\n{len(survivors)} mutant(s) not killed:")
    for name in survivors:
        print(f"  {name}: {statuses[name]}")
        if args.diff:
            print(diff_of(name))
    print("\nby status: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"wall time {wall / 60:.1f} min with {args.max_children} children on "
        f"{os.cpu_count()} cores; load average now {load}"
    )
    total = len(statuses)
    killed = sum(counts[s] for s in KILLED)
    percent = 100 * killed / total if total else 0.0
    print(f"mutation score: {killed}/{total} killed ({percent:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
