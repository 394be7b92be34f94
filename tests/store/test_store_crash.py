"""A bot killed between any two steps of a job: reopening the file finds the job unfinished (or
the hold orphaned), and finishing it charges exactly once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot.store import JobState, Store
from tests.support.store import START, Clock, open_at, rows

ROOT = Path(__file__).resolve().parents[2]
G, U = 111, 501

# The job runner's steps, in order. The child runs steps 0..N and dies without closing anything.
CHILD = """
import asyncio, os, sys
from datetime import datetime
from bot.store import JobState, open_store

async def main(url, last_step, now):
    store = await open_store(url, clock=lambda: now)
    r = await store.reserve(111, 501, 3)
    if last_step >= 1:
        job = await store.create_job(scope=111, guild_id=111, channel_id=7, user_id=501,
            source="slash", prompt="p", options={"count": 3}, state=JobState.QUEUED,
            reservation_id=r.id)
    if last_step >= 2:
        await store.update_job(job.id, state=JobState.SUBMITTED)
    if last_step >= 3:
        await store.set_task_id(job.id, "task-123")
    if last_step >= 4:
        await store.update_job(job.id, state=JobState.RUNNING)
    if last_step >= 5:
        await store.update_job(job.id, state=JobState.DELIVERING)
    if last_step >= 6:
        await store.finish_job(job.id, JobState.DONE, generated=2, result_message_ids=[900, 901])
    os._exit(0)  # a crash: no close, no checkpoint, nothing flushed by us

asyncio.run(main(sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])))
"""

STATE_AFTER = {
    1: (JobState.QUEUED, None),
    2: (JobState.SUBMITTED, None),
    3: (JobState.SUBMITTED, "task-123"),
    4: (JobState.RUNNING, "task-123"),
    5: (JobState.DELIVERING, "task-123"),
}


async def crash_after(db: Path, step: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        f"sqlite:///{db}",
        str(step),
        START.isoformat(),
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()


async def used_and_held(store: Store) -> tuple[int, int]:
    status = await store.quota_status(G, U)
    return status.used, status.held


@pytest.mark.parametrize("step", sorted(STATE_AFTER))
async def test_crash_with_a_job_in_flight(tmp_path: Path, step: int) -> None:
    db = tmp_path / "wanbot.db"
    await crash_after(db, step)
    store = await open_at(db, Clock())
    try:
        [job] = await store.unfinished_jobs()
        assert (job.state, job.task_id) == STATE_AFTER[step]
        assert await used_and_held(store) == (0, 3)  # still held, nothing charged yet
        assert await store.release_orphaned_reservations() == 0  # the job owns the hold
        assert await store.finish_job(job.id, JobState.DONE, generated=2)
        assert not await store.finish_job(job.id, JobState.DONE, generated=2)
        assert await used_and_held(store) == (2, 0)
    finally:
        await store.close()
    again = await open_at(db, Clock())
    try:
        assert await again.unfinished_jobs() == []
        assert await used_and_held(again) == (2, 0)
        assert not await again.finish_job(job.id, JobState.DONE, generated=2)
    finally:
        await again.close()
    assert rows(db, "SELECT status, charged FROM reservations") == [("settled", 2)]


async def test_crash_between_reserve_and_create_job_leaves_an_orphan(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    await crash_after(db, 0)
    store = await open_at(db, Clock())
    try:
        assert await store.unfinished_jobs() == []
        assert await used_and_held(store) == (0, 3)
        assert await store.release_orphaned_reservations(timedelta(0)) == 1
        assert await store.release_orphaned_reservations(timedelta(0)) == 0
        assert await used_and_held(store) == (0, 0)
    finally:
        await store.close()


async def test_crash_after_finishing_charges_nothing_more(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    await crash_after(db, 6)
    store = await open_at(db, Clock())
    try:
        assert await store.unfinished_jobs() == []
        assert await used_and_held(store) == (2, 0)
        job = await store.job_for_message(901)
        assert job is not None and job.state == JobState.DONE
        assert not await store.finish_job(job.id, JobState.FAILED)
        assert await store.release_orphaned_reservations() == 0
        assert await used_and_held(store) == (2, 0)
    finally:
        await store.close()


async def test_orphans_younger_than_the_margin_are_kept(tmp_path: Path) -> None:
    clock = Clock()
    store = await open_at(tmp_path / "wanbot.db", clock)
    try:
        young = await store.reserve(G, U, 1)
        clock.advance(minutes=10)
        await store.reserve(G, U, 2)
        # Only the one older than 5 minutes: the other may be about to get its job.
        assert await store.release_orphaned_reservations(timedelta(minutes=5)) == 1
        assert await store.settle(young.id, 1) == 0  # it was the one released
        assert (await store.quota_status(G, U)).held == 2
    finally:
        await store.close()
