"""pytest plugin for bench/mutation.py: a mutant's tests run fastest first, within a time budget.

mutmut runs a mutant's tests with `-x`, so the first failure ends the run: ordering them by the
durations its stats pass measured (`mutmut-stats.json` in mutmut's working copy) lets a quick store
or unit test kill a mutant before any end-to-end test starts (the files in `DIRECT` go first
whatever their speed). A mutant that survives would run every test that reaches its function (a
minute of end-to-end tests for the runner's functions), so only the first ones that fit in
`WANBOT_MUTATION_BUDGET` seconds of measured time run (at least one; default 25). The stats and
clean passes run every test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Test files that drive the runner, the quota rules and the Wan errors directly, in quick tests.
DIRECT = (
    "tests/unit/test_runner.py",
    "tests/unit/test_quota_rules.py",
    "tests/unit/test_wan_errors.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    # The tests written to drive the mutated code directly come first: every end-to-end test
    # starts a bot (so it reaches `resume`) and most deliver a result, so by speed alone the
    # budget would be spent on dozens of them before the one test that checks the branch.
    items.sort(
        key=lambda item: (
            not item.nodeid.startswith(DIRECT),
            durations.get(item.nodeid, 0.0),
        )
    )
    budget = float(os.environ.get("WANBOT_MUTATION_BUDGET", "25"))
    # Only a mutant's own run is cut short, never the stats or the clean pass.
    if budget <= 0 or "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    keep, spent = len(items), 0.0
    for index, item in enumerate(items):
        spent += durations.get(item.nodeid, 0.0)
        if spent > budget and index > 0:
            keep = index
            break
    if keep < len(items):
        config.hook.pytest_deselected(items=items[keep:])
        del items[keep:]
