"""pytest plugin for bench/mutation.py: the tests that reach a mutant run fastest first.

mutmut runs a mutant's tests with `-x`, so the first failure ends the run: ordering them by the
durations its stats pass measured (`mutmut-stats.json` in mutmut's working copy) lets a quick store
or unit test kill a mutant before any end-to-end test starts. Without that file (the stats pass
itself) the order is pytest's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
