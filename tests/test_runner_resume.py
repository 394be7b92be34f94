"""`JobRunner.resume` at the runner's own level: what a start does with every unfinished job the
store holds, in one quick test per promise (the end-to-end restarts are in test_promises_resume.py).

The runner here is the shipped one, on a real sqlite file and the emulator over loopback; its
Surface is the terminal's `FileSurface` (results written beside the input files), so no Discord
is involved. The job rows are written as the runner writes them at each state.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs import TERMINAL_SOURCE, JobRunner
from bot.sandbox import Emulator
from bot.store import Job, JobState, Store, open_store
from bot.terminal import FileSurface
from bot.wan import EditRequest, InputImage, WanClient
from tests.harness import API_KEY, png
from tests.test_store_support import eventually

SCOPE, CHANNEL = 1, 10


@pytest.fixture(name="store")
async def store_fixture(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    yield store
    await store.close()


@pytest.fixture(name="wan")
async def wan_fixture(emulator: Emulator) -> AsyncIterator[WanClient]:
    async with WanClient(API_KEY, emulator.base_url, transport="base64") as wan:
        yield wan


async def left_job(
    store: Store,
    tmp_path: Path,
    user: int,
    state: JobState,
    *,
    source: str = "slash",
    task_id: str | None = None,
) -> Job:
    """A job a stopped process left at `state`, with its quota held and its input on disk."""
    photo = tmp_path / f"in-{user}.png"
    photo.write_bytes(png(400, 400))
    reservation = await store.reserve(SCOPE, user, 1)
    job = await store.create_job(
        scope=SCOPE,
        channel_id=CHANNEL,
        user_id=user,
        source=source,
        prompt=f"left by the last run ({state.value})",
        options={"count": 1},
        inputs=[{"path": str(photo), "filename": photo.name}],
        state=JobState.VALIDATING if state == JobState.VALIDATING else JobState.QUEUED,
        reservation_id=reservation.id,
    )
    if state == JobState.SUBMITTED:
        # The runner stamps the send before the create goes out, then stores the task's id.
        job = await store.update_job(job.id, state=JobState.SUBMITTED)
    if task_id is not None:
        await store.set_task_id(job.id, task_id)
    return job


async def wan_task(wan: WanClient) -> str:
    """A task made at Wan by the last run before it stopped (its id stored, not yet followed)."""
    image = InputImage(data=png(400, 400), mime="image/png")
    created = await wan.create_task(EditRequest(prompt="made before the stop", images=[image]))
    return created.task_id


async def ended(store: Store, job: Job) -> Job:
    """The job's row once it is done or failed."""

    async def final() -> bool:
        row = await store.get_job(job.id)
        return row is not None and row.state in (JobState.DONE, JobState.FAILED)

    await eventually(final, within=15.0)
    row = await store.get_job(job.id)
    assert row is not None
    return row


async def test_resume_takes_up_every_kind_of_left_job_and_skips_the_terminals(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: a restart loses no job and creates no task twice. Every unfinished job is taken
    up, whatever comes before it in the store: one left VALIDATING is failed with its quota back
    (its request was never accepted); one QUEUED is queued again and run; one SUBMITTED with a task
    id follows that task (no new create). A job of the owner's terminal (`python -m bot edit`) is
    left to the terminal, and the scan goes on past it. The count says how many were taken up.
    A second resume takes up nothing already in hand."""
    terminal = await left_job(store, tmp_path, 9, JobState.QUEUED, source=TERMINAL_SOURCE)
    validating = await left_job(store, tmp_path, 1, JobState.VALIDATING)
    queued = await left_job(store, tmp_path, 2, JobState.QUEUED)
    task_id = await wan_task(wan)
    following = await left_job(store, tmp_path, 3, JobState.SUBMITTED, task_id=task_id)
    assert emulator.created_count == 1

    surface = FileSurface(out=io.StringIO())
    runner = JobRunner(store, wan, surface, retry_delay=0.01)
    emulator.hold("running")  # both Wan tasks stay running until the second resume below
    await runner.start()
    try:
        assert await runner.resume() == 3
        assert (await ended(store, validating)).error_code == "Interrupted"
        await emulator.wait_for_task_count(2, timeout=10)
        # Resume again while those two are in hand (a second start-up pass, a reconnect): they
        # are not taken up twice, and a job left behind them still is.
        late = await left_job(store, tmp_path, 4, JobState.VALIDATING)
        assert await runner.resume() == 1
        assert (await ended(store, late)).error_code == "Interrupted"
        emulator.release("running")
        row = await ended(store, queued)
        assert row.state == JobState.DONE, (row.error_code, row.error_message)
        finished = await ended(store, following)
        assert finished.state == JobState.DONE and finished.task_id == task_id
    finally:
        await runner.stop()
    # One task for the queued job; the followed one was not made again.
    assert emulator.created_count == 2
    left = await store.get_job(terminal.id)
    assert left is not None and left.state == JobState.QUEUED
    # Charged only what was delivered: the refunded member nothing, the others one image each.
    assert [(await store.quota_status(SCOPE, u)).used for u in (1, 2, 3, 4)] == [0, 1, 1, 0]
    assert [(await store.quota_status(SCOPE, u)).held for u in (1, 2, 3, 4)] == [0, 0, 0, 0]
    assert (tmp_path / "in-2.wan-1.png").exists() and (tmp_path / "in-3.wan-1.png").exists()
