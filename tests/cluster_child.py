"""One bot process of the several-process tests and `bench/cluster.py`: the real bot (settings from
the environment, `launcher.run`, signals, logging), with the fast test timings of `tests/harness.py`
and a short lease, so a killed process's jobs are taken over within seconds instead of 15.

Run as `python -m tests.cluster_child` with PYTHONPATH at the repository root.
"""

from __future__ import annotations

import asyncio
import os
import sys

from bot.config import load_settings
from bot.logs import setup_logging
from bot.wan import PollConfig

# Like tests.harness.FAST_WAN, but polling as the production scheduler does (its floors: a RUNNING
# task at least every 3 s), with a prior for tasks of a few seconds (the bench's are 2 s), so polls
# go where the learned running times say a task ends. (Floors of 0.5 s, tried before, asked 10
# queries/s for 5 running tasks on their own: the whole WAN_QUERY_QPS, spent on polls that are early.)
FAST_WAN = {
    "retry_base": 0.01,
    "retry_cap": 0.05,
    "request_timeout": 5.0,
    "poll_config": PollConfig(prior=(0.2, 3.0), pending_max_interval=2.0),
}


def main() -> int:
    from cogs.utils import launcher

    settings = load_settings(dotenv_path=None)
    setup_logging(settings)
    lease = float(os.environ.get("CLUSTER_LEASE_SECONDS", "3"))
    options = {
        "wan_options": dict(FAST_WAN),
        "runner_options": {"retry_delay": 0.05},
        "queue_options": {"ttl": lease, "poll_interval": 0.5},
        "guild_ready_timeout": 0.1,
    }
    return asyncio.run(launcher.run(settings, sandbox=False, sync_only=False, options=options))


if __name__ == "__main__":
    sys.exit(main())
