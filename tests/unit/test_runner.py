"""The job runner driven directly, in quick tests of the promises its branches keep: what a start
does with every unfinished job (`resume`), and a Wan error while a task is followed. The end-to-end
versions, through the fake Discord, are in test_promises_*.py; these are fast enough for every
mutant of the runner to meet them (bench/mutation.py).

The runner here is the shipped one, on a real sqlite file and the emulator over loopback; its
Surface is the terminal's `FileSurface` (results written beside the input files), so no Discord
is involved. The job rows are written as the runner writes them at each state.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import TERMINAL_SOURCE, JobRefused, JobRunner, JobSpec
from bot.sandbox import Emulator, FaultRule
from bot.store import Job, JobState, Store, open_store
from bot.terminal import FileSurface, load_files
from bot.wan import EditRequest, InputImage, WanClient
from cogs.utils.quota_words import refused_text
from tests.support.harness import API_KEY, FAST_WAN, png
from tests.support.store import eventually

SCOPE, CHANNEL = 1, 10


@pytest.fixture(name="store")
async def store_fixture(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    yield store
    await store.close()


@pytest.fixture(name="wan")
async def wan_fixture(emulator: Emulator) -> AsyncIterator[WanClient]:
    # The harness's timings for the emulator (its tasks take a fraction of a second, not Wan's
    # 30-120 s): jobs end in well under a second each.
    async with WanClient(API_KEY, emulator.base_url, transport="base64", **FAST_WAN) as wan:
        yield wan


async def left_job(
    store: Store,
    tmp_path: Path,
    user: int,
    state: JobState,
    *,
    source: str = "slash",
    task_id: str | None = None,
    sent_at: datetime | None = None,
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
        inputs=[{"path": str(photo), "filename": photo.name, "size": photo.stat().st_size}],
        state=JobState.VALIDATING if state == JobState.VALIDATING else JobState.QUEUED,
        reservation_id=reservation.id,
    )
    if state == JobState.SUBMITTED:
        # The runner stamps the send before the create goes out, then stores the task's id.
        sent = sent_at or datetime.now(UTC) - timedelta(minutes=30)
        job = await store.update_job(job.id, state=JobState.SUBMITTED, submitted_at=sent)
    if task_id is not None:
        await store.set_task_id(job.id, task_id)
    return job


async def wan_task(wan: WanClient) -> str:
    """A task made at Wan by the last run before it stopped (its id stored, not yet followed)."""
    image = InputImage(data=png(400, 400), mime="image/png")
    created = await wan.create_task(EditRequest(prompt="made before the stop", images=[image]))
    return created.task_id


async def ended_as(store: Store, job: Job, *states: JobState) -> Job:
    """The job's row once it is in one of `states`."""

    async def final() -> bool:
        row = await store.get_job(job.id)
        return row is not None and row.state in states

    await eventually(final, within=15.0)
    row = await store.get_job(job.id)
    assert row is not None
    return row


async def ended(store: Store, job: Job) -> Job:
    """The job's row once it is done or failed."""
    return await ended_as(store, job, JobState.DONE, JobState.FAILED)


@contextlib.asynccontextmanager
async def started(
    store: Store, wan: WanClient, **options: Any
) -> AsyncIterator[tuple[JobRunner, FileSurface]]:
    """The shipped runner, started, with the terminal's Surface (told everything, in memory);
    stopped again on the way out."""
    surface = FileSurface(out=io.StringIO())
    runner = JobRunner(store, wan, surface, **{"retry_delay": 0.01, **options})
    await runner.start()
    try:
        yield runner, surface
    finally:
        await runner.stop()


async def test_resume_takes_up_every_kind_of_left_job_and_skips_the_terminals(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: a restart loses no job and creates no task twice. Every unfinished job is taken
    up, whatever comes before it in the store: one left VALIDATING is failed with its quota back
    (its request was never accepted); one QUEUED is queued again and run; one SUBMITTED with a task
    id follows that task (no new create); one SUBMITTED without one (the create's answer was never
    stored) is looked for in Wan's task list and, not found there, failed with its quota back,
    never created again. A job of the owner's terminal (`python -m bot edit`) is
    left to the terminal, and the scan goes on past it. The count says how many were taken up.
    A second resume takes up nothing already in hand."""
    emulator.hold("running")  # both Wan tasks stay running until the second resume below
    terminal = await left_job(store, tmp_path, 9, JobState.QUEUED, source=TERMINAL_SOURCE)
    validating = await left_job(store, tmp_path, 1, JobState.VALIDATING)
    queued = await left_job(store, tmp_path, 2, JobState.QUEUED)
    task_id = await wan_task(wan)
    following = await left_job(store, tmp_path, 3, JobState.SUBMITTED, task_id=task_id)
    # Sent half an hour ago, its answer never stored, and no task of it in Wan's list.
    unanswered = await left_job(store, tmp_path, 5, JobState.SUBMITTED)
    assert emulator.created_count == 1

    async with started(store, wan) as (runner, _):
        assert await runner.resume() == 4
        told = await ended(store, validating)
        assert (told.error_code, told.error_message) == (
            "Interrupted",
            "The bot restarted before this job was queued. Nothing was charged.",
        )
        assert (await ended(store, unanswered)).error_code == "CreateOutcomeUnknown"
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
    # A stopped runner takes up nothing more (a resume racing the shutdown).
    after_stop = await left_job(store, tmp_path, 6, JobState.VALIDATING)
    assert await runner.resume() == 0
    untouched = await store.get_job(after_stop.id)
    assert untouched is not None and untouched.state == JobState.VALIDATING
    # One task for the queued job; the followed one was not made again.
    assert emulator.created_count == 2
    left = await store.get_job(terminal.id)
    assert left is not None and left.state == JobState.QUEUED
    # Charged only what was delivered: the refunded member nothing, the others one image each.
    members = (1, 2, 3, 4, 5)
    assert [(await store.quota_status(SCOPE, u)).used for u in members] == [0, 1, 1, 0, 0]
    assert [(await store.quota_status(SCOPE, u)).held for u in members] == [0, 0, 0, 0, 0]
    assert (tmp_path / "in-2.wan-1.png").exists() and (tmp_path / "in-3.wan-1.png").exists()


async def test_resume_adopts_the_task_an_unanswered_create_made_and_delivers_it(
    store: Store, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: a result Wan made is not lost, and its task is not made twice. The create was sent
    just before the stop and its answer never stored; Wan's task list shows the one task it made,
    so the next start adopts that task, follows it and delivers it (charged one image)."""
    # A short create timeout: the window the start looks in closes soon after the send.
    options = {**FAST_WAN, "request_timeout": 2.0}
    async with WanClient(API_KEY, emulator.base_url, transport="base64", **options) as wan:
        made = await wan_task(wan)  # the create's answer, lost with the process
        # The send as the runner stamps it, just before Wan took the request (however long this
        # busy machine took to get it there).
        sent = datetime.fromtimestamp(emulator.tasks[made].submitted_at - 0.2, UTC)
        job = await left_job(store, tmp_path, 1, JobState.SUBMITTED, sent_at=sent)
        async with started(store, wan, reconcile_margin=0.5) as (runner, surface):
            assert await runner.resume() == 1
            row = await ended(store, job)
    assert (row.state, row.task_id, row.generated) == (JobState.DONE, made, 1)
    assert emulator.created_count == 1 and surface.written == [tmp_path / "in-1.wan-1.png"]
    status = await store.quota_status(SCOPE, 1)
    assert (status.used, status.held) == (1, 0)


def request(tmp_path: Path, user: int, **fields: Any) -> JobSpec:
    """A member's one-image request (its image on disk), with `fields` changed."""
    photo = tmp_path / f"req-{user}.png"
    if not photo.exists():
        photo.write_bytes(png(400, 400))
    spec = JobSpec(
        scope=SCOPE,
        guild_id=None,
        channel_id=CHANNEL,
        user_id=user,
        source="slash",
        prompt="an edit",
        inputs=[{"path": str(photo), "filename": photo.name}],
    )
    return replace(spec, **fields)


async def submitted(runner: JobRunner, tmp_path: Path, user: int, **fields: Any) -> Job:
    """A member's request, accepted by the runner (quota held, queued)."""
    spec = request(tmp_path, user, **fields)
    return await runner.submit(spec, await load_files([Path(spec.inputs[0]["path"])]))


async def test_after_a_restart_a_queued_job_waits_behind_the_task_wan_still_runs(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: a restart keeps the owner's limit on tasks at Wan. With one Wan slot (and no job
    fetching ahead), the job left following a task Wan still runs is followed at once, and the job
    left queued keeps its place in the queue until that task ends; then it runs."""
    emulator.hold("running")
    task_id = await wan_task(wan)
    following = await left_job(store, tmp_path, 17, JobState.SUBMITTED, task_id=task_id)
    queued = await left_job(store, tmp_path, 18, JobState.QUEUED)
    async with started(store, wan, max_concurrent=1, prefetch=0) as (runner, _):
        assert await runner.resume() == 2
        assert runner.following(following.id)
        assert await runner.position(queued.id) == 1
        emulator.release("running")
        assert (await ended(store, following)).state == JobState.DONE
        assert (await ended(store, queued)).state == JobState.DONE
    assert emulator.created_count == 2


async def test_a_bug_of_ours_while_a_job_runs_ends_it_refunded_with_its_number(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: a bug of ours never leaves a job hanging or charged. A job the runner fails on
    unexpectedly (here its input row lacks the file the terminal's Surface reads, as a row
    written for another Surface would) ends FAILED as `InternalBotError`, its hold released, and
    the member is told, with the job's number for the owner to look up."""
    job = await left_job(store, tmp_path, 16, JobState.QUEUED)
    await store.update_job(job.id, inputs=[{"filename": "in-16.png"}])
    async with started(store, wan) as (runner, surface):
        assert await runner.resume() == 1
        row = await ended(store, job)
        await eventually(lambda: surface.failure is not None, within=10.0)
    text = f"Something went wrong on our side (job #{job.id}). Nothing was charged."
    assert (row.state, row.error_code, row.error_message) == (
        JobState.FAILED,
        "InternalBotError",
        text,
    )
    assert surface.failure == text
    status = await store.quota_status(SCOPE, 16)
    assert (status.used, status.held) == (0, 0)
    assert emulator.created_count == 0


async def test_a_wan_error_while_following_the_task_fails_the_job_refunded(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: faults never charge the member. Following the task fails for good (the key is
    refused mid-task): the job ends FAILED under Wan's code, the member is told why in plain
    words and that nothing was charged, and the hold is released."""
    emulator.hold("running")
    async with started(store, wan) as (runner, surface):
        job = await submitted(runner, tmp_path, 5)
        await emulator.wait_for_task_count(1, timeout=10)
        emulator.add_fault(FaultRule(op="get", status=401, code="InvalidApiKey", times=50))
        row = await ended(store, job)
        # The member is told just after the row is written.
        await eventually(lambda: surface.failure is not None, within=10.0)
    assert (row.state, row.error_code) == (JobState.FAILED, "InvalidApiKey")
    assert surface.failure is not None
    assert "API key was refused" in surface.failure and "Nothing was charged" in surface.failure
    status = await store.quota_status(SCOPE, 5)
    assert (status.used, status.held) == (0, 0)
    assert emulator.created_count == 1


async def test_a_client_closed_under_a_followed_task_leaves_the_job_for_the_next_start(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: a restart mid-job loses nothing. The Wan client closing under a followed task (a
    shutdown) is not the task's failure: the job keeps its task id and its hold, for the next
    start to follow, and the member is told nothing yet."""
    emulator.hold("running")
    async with started(store, wan) as (runner, surface):
        job = await submitted(runner, tmp_path, 6)
        await emulator.wait_for_task_count(1, timeout=10)

        async def has_task() -> bool:
            row = await store.get_job(job.id)
            return row is not None and row.task_id is not None

        await eventually(has_task, within=10.0)
        await wan.close()

        async def let_go() -> bool:
            return job.id not in runner.inflight.running

        await eventually(let_go, within=10.0)
    row = await store.get_job(job.id)
    assert row is not None and row.state in (JobState.SUBMITTED, JobState.RUNNING)
    assert row.task_id is not None and row.error_code is None
    assert surface.failure is None
    assert (await store.quota_status(SCOPE, 6)).held == 1


async def test_the_result_says_what_is_left_today_counting_back_what_wan_did_not_make(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: the member is charged only for images delivered, and the result says so. Two
    images asked of a member with 10 a day, Wan made one: the result, posted before the job is
    settled, already counts the unmade image back ("9 left today", not the 8 the hold shows), and
    settling charges exactly that one. A job made in full counts nothing back. The metrics count
    the images delivered."""
    emulator.add_fault(FaultRule(op="task", partial_failures=1))
    async with started(store, wan) as (runner, surface):
        photo = tmp_path / "two.png"
        photo.write_bytes(png(400, 400))
        spec = JobSpec(
            scope=SCOPE,
            guild_id=None,
            channel_id=CHANNEL,
            user_id=7,
            source="slash",
            prompt="two, please",
            count=2,
            inputs=[{"path": str(photo), "filename": photo.name}],
        )
        job = await runner.submit(spec, await load_files([photo]))
        row = await ended(store, job)
        assert row.state == JobState.DONE and row.generated == 1
        assert surface.delivery is not None and len(surface.delivery.files) == 1
        assert surface.delivery.remaining == 9
        status = await store.quota_status(SCOPE, 7)
        assert (status.used, status.held, status.remaining) == (1, 0, 9)
        # One more, made in full: nothing to count back.
        again = await runner.submit(replace(spec, count=1), await load_files([photo]))
        assert (await ended(store, again)).generated == 1
        assert surface.delivery.remaining == 8
        # The owner's metrics count the images delivered, as the member was charged (just after
        # the row is written).
        metrics = runner.metrics.registry
        await eventually(
            lambda: metrics.get_sample_value("wanbot_images_generated_total") == 2, within=10.0
        )


async def refusal_of(call: Awaitable[object]) -> JobRefused:
    """The JobRefused an awaited call raises (the test fails if it raises nothing)."""
    with pytest.raises(JobRefused) as info:
        await call
    return info.value


async def test_the_per_member_cap_refuses_the_request_over_it_before_any_hold(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: one member can't fill the queue. With 2 jobs each, a member with two unfinished
    jobs is refused a third, early (before any download) and at submit, saying how many they
    have and the limit, and nothing more is held; below the cap a request passes both."""
    emulator.hold("running")
    # Two images a day: the third request is over both bounds, and the cap is the one told (when
    # a job ends, failed and refunded, its image comes back).
    await store.set_user_limit(SCOPE, 1, 8, 2)
    async with started(store, wan, max_jobs_per_user=2) as (runner, _):
        await runner.precheck(SCOPE, 8, 1)
        await submitted(runner, tmp_path, 8)
        await runner.precheck(SCOPE, 8, 1)  # one unfinished job of two: still welcome
        await submitted(runner, tmp_path, 8)
        early = await refusal_of(runner.precheck(SCOPE, 8, 1))
        late = await refusal_of(submitted(runner, tmp_path, 8))
        for refused in (early, late):
            assert refused.reason == "busy"
            assert str(refused) == (
                "You already have 2 jobs queued or running (the limit is 2). "
                "Wait for one to finish. Nothing was charged."
            )
        assert (await store.quota_status(SCOPE, 8)).held == 2
        assert await store.active_job_count(8) == 2
        await runner.precheck(SCOPE, 9, 1)  # someone else is not held up by it
        emulator.release("running")


async def test_two_requests_of_one_member_at_once_are_admitted_one_at_a_time(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: the per-member cap holds for requests that come together (a double click). With
    a cap of one job and one image left today, of two requests submitted at once one is queued
    and the other is told the member has a job running, holding nothing."""
    emulator.hold("running")
    await store.set_user_limit(SCOPE, 1, 14, 1)
    async with started(store, wan, max_jobs_per_user=1) as (runner, _):
        spec = request(tmp_path, 14)
        images = await load_files([Path(spec.inputs[0]["path"])])
        both = await asyncio.gather(
            runner.submit(spec, list(images)),
            runner.submit(spec, list(images)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Job) for r in both) == 1
        assert [r.reason for r in both if isinstance(r, JobRefused)] == ["busy"]
        assert (await store.quota_status(SCOPE, 14)).held == 1
        emulator.release("running")


async def test_a_request_the_store_cannot_write_holds_nothing(
    store: Store, wan: WanClient, tmp_path: Path
) -> None:
    """Promise: no images held for nothing. A request whose job the store refuses to write (here
    an interaction expiry without a time zone: a bug of ours, not the member's) fails with the
    store's error, and the images reserved for it are given back at once, not left for the
    sweep of orphaned holds."""
    async with started(store, wan) as (runner, _):
        naive = datetime(2030, 1, 1, 12, 0)
        with pytest.raises(ValueError, match="token_expires_at"):
            await submitted(runner, tmp_path, 15, token_expires_at=naive)
        status = await store.quota_status(SCOPE, 15)
        assert (status.used, status.held) == (0, 0)
        assert await store.active_job_count(15) == 0


async def test_quota_refusals_name_the_limit_early_and_at_submit_and_count_role_limits(
    store: Store, wan: WanClient, tmp_path: Path
) -> None:
    """Promise: a request over the member's allowance is refused before anything is downloaded
    or held, in the store's words plus "Nothing was charged". The allowance is the member's with
    their roles: a role's limit of 2 refuses 3 images even where the default is 10, and
    exactly what is left still passes."""
    role = 77
    await store.set_role_limit(SCOPE, 1, role, 2)
    async with started(store, wan) as (runner, _):
        early = await refusal_of(runner.precheck(SCOPE, 4, 3, roles=(role,)))
        late = await refusal_of(submitted(runner, tmp_path, 4, count=3, roles=(role,)))
        for refused in (early, late):
            assert refused.reason == "daily_limit"
            assert re.fullmatch(
                r"You have 2 images left today and this needs 3\. Your allowance resets"
                r" <t:\d+:R>\. Nothing was charged\.",
                refused_text(refused),
            ), refused_text(refused)
            # What `python -m bot edit` prints of it: the store's words, and that nothing was charged.
            printed = str(refused)
            assert printed.startswith("quota refused (daily_limit): 2 left, 3 requested")
            assert printed.endswith("Nothing was charged.")
        await runner.precheck(SCOPE, 4, 2, roles=(role,))  # exactly what is left
        await runner.precheck(SCOPE, 4, 3)  # without the role: the default of 10
        status = await store.quota_status(SCOPE, 4, roles=(role,))
        assert (status.used, status.held) == (0, 0)
        await store.block_user(SCOPE, 1, 4)
        blocked = await refusal_of(runner.precheck(SCOPE, 4, 1))
        assert (blocked.reason, refused_text(blocked)) == (
            "blocked",
            "You're blocked from using Wan in this server. Nothing was charged.",
        )


async def test_a_submitted_job_row_keeps_what_the_member_asked(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """The job row is the request, whole: what the runner and a restart will act on (the thread
    to answer in, the negative prompt to send to Wan, the options, the job a Reroll came from)."""
    emulator.hold("running")
    async with started(store, wan) as (runner, _):
        job = await submitted(
            runner, tmp_path, 3, thread_id=55, negative_prompt="blurry", count=2, seed=4
        )
        # A Reroll of its second image: it names the job and image it came from.
        reroll = await submitted(
            runner, tmp_path, 3, parent_job_id=job.id, parent_index=2, extra={"via": "reroll"}
        )
        emulator.release("running")
    row = await store.get_job(job.id)
    assert row is not None
    assert (row.thread_id, row.negative_prompt, row.user_id) == (55, "blurry", 3)
    assert (row.options["count"], row.options["seed"]) == (2, 4)
    child = await store.get_job(reroll.id)
    assert child is not None
    assert (child.parent_job_id, child.parent_index, child.extra) == (job.id, 2, {"via": "reroll"})


async def test_a_job_cancelled_while_it_waits_for_a_wan_slot_never_reaches_wan(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Promise: cancel before the task starts costs nothing. With one Wan slot busy, the next job
    fetches its inputs ahead and waits for the slot; cancelled meanwhile, it ends CANCELLED before
    any create (seen within half a second, or when the slot frees), is told so, holds nothing,
    and no task is made for it."""
    emulator.hold("running")
    async with started(store, wan, max_concurrent=1) as (runner, surface):
        first = await submitted(runner, tmp_path, 1)
        await emulator.wait_for_task_count(1, timeout=10)
        waiting = await submitted(runner, tmp_path, 2)
        await eventually(lambda: waiting.id in runner.inflight.running, within=10.0)
        assert await runner.cancel(waiting.id) == "Cancelled. Nothing was charged."
        emulator.release("running")
        cancelled = await ended_as(store, waiting, JobState.CANCELLED)
        assert (await ended(store, first)).state == JobState.DONE
        # The member is told just after the row is written.
        await eventually(lambda: surface.failure is not None, within=10.0)
    assert cancelled.task_id is None and emulator.created_count == 1
    assert surface.failure == "Cancelled before it started. Nothing was charged."
    status = await store.quota_status(SCOPE, 2)
    assert (status.used, status.held) == (0, 0)


async def test_nothing_of_the_members_served_stays_in_memory(
    store: Store, wan: WanClient, tmp_path: Path
) -> None:
    """Memory does not grow with the members ever served: once three members' jobs have ended,
    the runner keeps no admission lock of theirs and nothing of their jobs."""
    async with started(store, wan) as (runner, _surface):
        jobs = [await submitted(runner, tmp_path, user) for user in (11, 12, 13)]
        for job in jobs:
            assert (await ended(store, job)).state == JobState.DONE
        await eventually(lambda: not runner.inflight.running, within=10.0)
        assert len(runner.dispatcher._user_locks) == 0
        assert not runner.outcomes.shown_position and not runner.outcomes.postponed
        assert not runner.inflight.images


async def test_a_place_shown_for_a_job_another_process_took_is_forgotten(
    store: Store, wan: WanClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A waiting job whose place this process showed, taken from the queue by another process
    (as on a shared queue), is forgotten here at the next move of the queue: the places shown
    do not pile up with the jobs other processes ran."""
    emulator.hold("running")
    async with started(store, wan, max_concurrent=1, prefetch=0) as (runner, _surface):
        await submitted(runner, tmp_path, 21)
        await emulator.wait_for_task_count(1, timeout=10)
        await submitted(runner, tmp_path, 22)
        taken = await submitted(runner, tmp_path, 23)
        assert taken.id in runner.outcomes.shown_position
        assert await runner.queue.remove(taken.id)  # what the other process's claim does here
        emulator.release("running")
        await eventually(lambda: taken.id not in runner.outcomes.shown_position, within=15.0)
