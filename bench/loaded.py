"""The whole test suite, several times in a row, while other processes keep every core busy.

The suite must not depend on an idle machine: no test may race a fixed task time or bound a
latency tightly (those numbers live in bench/timing.py). This runs `python -m pytest -q -x`
`--runs` times (default 5) with one busy-looping process per core beside it, stops at the first
failing run, and exits with that run's status (0 when all passed).

    python bench/loaded.py [--runs 5] [--burners N] [-- extra pytest arguments]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BURN = "while True: pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="suite runs in a row (default 5)")
    parser.add_argument(
        "--burners",
        type=int,
        default=os.cpu_count() or 2,
        help="busy-looping processes beside the suite (default: one per core)",
    )
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    status = 0
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            command = [sys.executable, "-m", "pytest", "-q", "-x", *args.pytest_args]
            status = subprocess.run(command, cwd=REPO, check=False).returncode
            took = time.monotonic() - started
            sys.stdout.write(f"run {run}/{args.runs}: exit {status} in {took:.0f} s\n")
            sys.stdout.flush()
            if status != 0:
                break
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    sys.exit(status)


if __name__ == "__main__":
    main()
