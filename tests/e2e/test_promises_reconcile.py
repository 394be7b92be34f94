"""Promises kept when a create's answer never comes back (a timeout, a dropped connection): the task
it may have made is looked for in Wan's task list and adopted only when the match is certain; else
the job fails with its quota back. Never is the create sent again.

Real bot, fake Discord, the emulator's list endpoint; the emulator's `drop` fault carries a create
out (the task exists) and closes the connection without an answer.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.jobs.reconciler import Reconciler
from bot.sandbox import Emulator, FaultRule
from bot.store import JobState, open_store
from tests.support.harness import API_KEY, World, embed_text
from tests.support.promises import (
    CREATE_PATH,
    gate,
    job_ends,
    settled_to,
    start_bot,
)
from tests.support.wan import edit, emulator_config, make_client

CREATE = "/image-synthesis"
# Look for the task half a second after the window instead of five: the emulator's clock is ours.
FAST = {"reconcile_margin": 0.5}


def creates(w: World) -> int:
    return sum(1 for _t, m, p, _s in w.emu.request_log if m == "POST" and p.endswith(CREATE))


async def test_a_dropped_create_answer_is_adopted_and_delivered_exactly_once(world: World) -> None:
    """Promise: a result Wan made is not lost, and not paid twice. The create reaches Wan (the task
    exists) but its answer is lost: the job finds that task in the task list, follows it and
    delivers it once, charging the one image delivered; one create in all."""
    w = world
    await start_bot(w, FAST)
    w.emu.add_fault(FaultRule(op="create", drop=True))
    await w.wanedit(w.alice, "answer lost on the way back")
    await w.result_message(w.alice)
    job = await job_ends(w, 1, JobState.DONE)
    assert job.task_id in w.emu.tasks and job.generated == 1
    await settled_to(w, w.alice.id, 1)
    assert len(w.results_for(w.alice)) == 1
    assert w.emu.created_count == 1 and creates(w) == 1
    assert any(p.endswith("/tasks") for _t, m, p, _s in w.emu.request_log if m == "GET")


@pytest.mark.parametrize("rival", ["foreign-task", "second-unknown-create"])
async def test_an_ambiguous_window_is_failed_and_refunded(world: World, rival: str) -> None:
    """Promise: a task is adopted only when it can't be someone else's. With another task in the
    window that no job holds (made by another client of the account), or another job whose create
    also went unanswered there, no task is adopted: the jobs fail, refunded, with a plain word, and
    nothing is created again."""
    w = world
    # A rival create still under way is waited for (up to its timeout) before it counts: short here.
    await start_bot(w, FAST, {"request_timeout": 2.0})
    if rival == "foreign-task":
        async with make_client(w.emu.base_url, key=API_KEY) as other:
            await other.create_task(edit("someone else's edit"))
        w.emu.add_fault(FaultRule(op="create", drop=True))
        asked = [await w.wanedit(w.alice, "answer lost, and a stranger's task beside it")]
    else:
        w.emu.add_fault(FaultRule(op="create", drop=True, times=2))
        asked = [
            await w.wanedit(w.alice, "first answer lost"),
            await w.wanedit(w.bob, "second answer lost"),
        ]
    for ix in asked:
        told = await ix.wait_original(lambda m: "not sent again" in embed_text(m))
        assert "Nothing was charged" in embed_text(told)
    for job_id in range(1, len(asked) + 1):
        job = await job_ends(w, job_id, JobState.FAILED)
        assert (job.error_code, job.task_id) == ("CreateOutcomeUnknown", None)
    await settled_to(w, w.alice.id, 0)
    assert w.results_for(w.alice) == [] and w.results_for(w.bob) == []
    # The stranger's create and ours, or our two: each sent once, none again.
    assert creates(w) == w.emu.created_count == 2


async def test_a_create_that_never_reached_wan_is_failed_and_refunded(world: World) -> None:
    """Promise: nothing is charged for a task that doesn't exist. The connection breaks before the
    request reaches Wan: the task list shows no task for it, so the job fails, refunded, and the
    create is not sent again."""
    w = world
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        await start_bot(w, FAST, DASHSCOPE_BASE_URL=g.base_url)
        ix = await w.wanedit(w.alice, "lost before Wan")
        await create.wait_arrived()
        create.release(fail=(0, {}))  # cut, never passed on
        told = await ix.wait_original(lambda m: "not sent again" in embed_text(m))
        assert "Nothing was charged" in embed_text(told)
        job = await job_ends(w, 1, JobState.FAILED)
        assert (job.error_code, job.task_id) == ("CreateOutcomeUnknown", None)
        await settled_to(w, w.alice.id, 0)
        assert g.creates_passed() == 0 and w.emu.created_count == 0
        assert w.results_for(w.alice) == []


@pytest.mark.parametrize("rival_answered", [True, False], ids=["answered", "never-answered"])
async def test_a_create_still_under_way_is_waited_for_before_it_counts_as_a_rival(
    tmp_path: Path, rival_answered: bool
) -> None:
    """The rule for a rival create that is still under way (another process's): it is waited for
    until it can't be answered any more. Answered meanwhile, its job holds its task and the other
    task is adopted; never answered, it may own either task, so none is adopted. (A real sqlite
    store, the emulator, its task list.)"""
    async with (
        Emulator(emulator_config()) as emu,
        make_client(emu.base_url, request_timeout=1.0) as wan,
    ):
        store = await open_store(f"sqlite:///{tmp_path / 'wanbot.db'}")
        try:
            sent = time.time()
            jobs = [
                await store.create_job(
                    scope=1,
                    channel_id=10,
                    user_id=u,
                    source="slash",
                    prompt="p",
                    inputs=[{"size": 2000}],
                    state=JobState.SUBMITTED,
                )
                for u in (1, 2)
            ]
            for job in jobs:
                await store.update_job(job.id, submitted_at=datetime.fromtimestamp(sent, UTC))
            ours = (await wan.create_task(edit())).task_id  # its answer "lost"
            theirs = (await wan.create_task(edit())).task_id

            async def answer_the_rival() -> None:
                # After our look at the list, well before the rival could no longer be answered.
                await asyncio.sleep(0.6)
                await store.set_task_id(jobs[1].id, theirs)

            answering = asyncio.create_task(answer_the_rival()) if rival_answered else None
            found = await Reconciler(store, wan, margin=0.2).find(jobs[0], (sent, time.time()))
            if answering is not None:
                await answering
        finally:
            await store.close()
    if rival_answered:
        assert found is not None and found.task_id == ours
    else:
        assert found is None
