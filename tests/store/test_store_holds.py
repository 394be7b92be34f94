"""Jobs only the process that made them follows (`python -m bot edit`): its hold on them, and their
end, refunded, once that process is gone, never while it still renews its hold."""

from __future__ import annotations

from typing import Any

from bot.store import Store
from bot.store.models import JobState
from tests.store.test_store_jobs import U, new_job
from tests.support.store import Clock, eventually

TERMINAL = "terminal"


async def end_abandoned(store: Store) -> list[int]:
    return await store.end_abandoned_jobs(
        TERMINAL, error_code="Interrupted", error_message="its process is gone"
    )


async def test_only_a_job_whose_hold_ran_out_is_ended_and_refunded(
    store: Store, clock: Clock
) -> None:
    running = await new_job(store, source=TERMINAL)
    killed = await new_job(store, source=TERMINAL)
    of_a_bot = await new_job(store)  # never held: the bots' queue takes care of those
    assert await store.hold_jobs("alive", [running.id], ttl=60) == {running.id}
    assert await store.hold_jobs("killed", [killed.id], ttl=0.3) == {killed.id}
    # A job held by one process is not another's to hold.
    assert await store.hold_jobs("another", [running.id], ttl=60) == set()
    assert await end_abandoned(store) == []
    # "killed" renews no more: its hold runs out (sqlite: on the store's clock; PostgreSQL: on
    # the server's, a moment later).
    clock.advance(seconds=1)
    ended: list[int] = []

    async def ends() -> bool:
        ended.extend(await end_abandoned(store))
        return bool(ended)

    await eventually(ends, within=5.0)
    assert ended == [killed.id]
    gone = await store.get_job(killed.id)
    assert gone is not None and gone.state == JobState.FAILED
    assert gone.error_code == "Interrupted" and gone.error_message == "its process is gone"
    # Its hold came back; the running one's and the bot job's are still held.
    assert (await store.quota_status(running.scope, U)).held == 4
    for job in (running, of_a_bot):
        left: Any = await store.get_job(job.id)
        assert left.state == JobState.QUEUED
    # An ended job can't be held again: its process, were it only slow, learns it is gone.
    assert await store.hold_jobs("killed", [killed.id], ttl=60) == set()
    assert await store.hold_jobs("alive", [running.id], ttl=60) == {running.id}


async def test_a_job_never_held_is_ended_only_once_it_is_old(store: Store, clock: Clock) -> None:
    """A process killed between making its job and holding it, or an older wanbot's job: no hold
    says whether its process lives, so only its age does."""
    job = await new_job(store, source=TERMINAL)
    assert await end_abandoned(store) == []
    clock.advance(minutes=11)
    assert await end_abandoned(store) == [job.id]
    assert (await store.quota_status(job.scope, U)).held == 0


async def test_an_abandoned_job_wan_had_taken_counts_what_it_asked_for_against_the_caps(
    store: Store, clock: Clock
) -> None:
    """Nobody follows the task of a killed edit: whatever Wan makes of it may be billed, so the
    images it asked for count against the server's and the bot-wide day (the member is charged
    nothing). One that never reached Wan counts nothing."""
    at_wan = await new_job(store, images=3, source=TERMINAL)
    await store.set_task_id(at_wan.id, "task-of-a-killed-edit")
    never_sent = await new_job(store, images=2, source=TERMINAL)
    clock.advance(minutes=11)
    assert sorted(await end_abandoned(store)) == [at_wan.id, never_sent.id]
    assert [(await store.get_job(j.id)).billed for j in (at_wan, never_sent)] == [3, None]  # type: ignore[union-attr]
    member = await store.quota_status(at_wan.scope, U)
    assert (member.used, member.held) == (0, 0)
    server = await store.server_totals(at_wan.scope)
    assert (server.used, server.held, server.billed) == (3, 0, 3)
