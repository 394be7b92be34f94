"""The job queue shared by processes on PostgreSQL: claims within the Wan slots, leases and their
fencing, takeover of a dead process's jobs, shared positions, the shared rate buckets and the
per-member cap across stores. Each store here stands for one bot process (its own pool)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.store import ActiveJobLimit, JobState, LeaseLost, Store, open_store
from tests.support.store import (
    eventually,
)


@pytest.fixture(name="stores")
async def stores_fixture(pg_url: str) -> AsyncIterator[list[Store]]:
    opened = [await open_store(pg_url) for _ in range(2)]
    assert all(s.shared for s in opened)
    yield opened  # type: ignore[misc]
    for s in opened:
        await s.close()


async def queued_job(
    store: Store, user: int = 1, images: int = 1, *, scope: int = 1, source: str = "slash"
) -> int:
    reservation = await store.reserve(scope, user, images)
    job = await store.create_job(
        scope=scope,
        channel_id=10 if scope else 0,
        user_id=user,
        source=source,
        prompt="p",
        state=JobState.QUEUED,
        reservation_id=reservation.id,
        options={"count": images},
    )
    return job.id


async def test_claims_never_exceed_the_slots_of_all_processes(
    stores: list[Store],
) -> None:
    """Two processes claiming at once take each queued job once and never more than the slots."""
    a, b = (s.job_queue(max_slots=3) for s in stores)
    ids = [await queued_job(stores[0], user=u) for u in range(1, 7)]
    claims = await asyncio.gather(*(q.pop() for q in (a, b, a, b, a, b)))
    taken = [c[0] for c in claims if c is not None]
    assert sorted(taken) == ids[:3]  # oldest first, three slots, no job twice
    # The other three wait, and their places are places in the one shared queue.
    assert [await b.position(j) for j in ids[3:]] == [1, 2, 3]
    assert await a.position(ids[0]) is None
    # A job moving on to delivery frees its slot for whichever process claims next.
    await stores[0].update_job(taken[0], state=JobState.SUBMITTED, lease=a.lease(taken[0]))
    assert await b.pop() is None
    await stores[0].update_job(taken[0], state=JobState.DELIVERING, lease=a.lease(taken[0]))
    claim = await b.pop()
    assert claim is not None and claim[0] == ids[3]


async def terminal_job(store: Store, owner: str, ttl: float) -> int:
    """A job of `python -m bot edit` (the owner's scope, no channel), held by its process."""
    job_id = await queued_job(store, user=0, scope=0, source="terminal")
    assert await store.hold_jobs(owner, [job_id], ttl) == {job_id}
    return job_id


async def test_a_terminal_job_waits_apart_for_a_slot_shared_with_the_bots(
    stores: list[Store],
) -> None:
    """The terminal's queue and a bot's share the Wan slots; the bot's never takes the terminal's
    job, the terminal's only ever takes its own, and a job held while it waits holds no slot."""
    bot = stores[0].job_queue(max_slots=1)
    terminal = stores[1].job_queue(max_slots=1, own_jobs=True)
    other_terminal = stores[1].job_queue(max_slots=1, own_jobs=True)
    mine = await terminal_job(stores[1], terminal.owner, ttl=30)
    assert await terminal.push(mine) is None
    member = await queued_job(stores[0])
    # The waiting terminal job has no place in the bots' queue, and takes no slot; a job another
    # terminal holds is never claimed, even with a free slot.
    assert await bot.position(mine) is None and await bot.position(member) == 1
    await other_terminal.push(mine)
    assert await other_terminal.pop() is None
    claim = await bot.pop()
    assert claim is not None and claim[0] == member
    assert await terminal.pop() is None  # the one slot is the member's
    await stores[0].finish_job(member, JobState.FAILED, lease=bot.lease(member))
    claim = await terminal.pop()
    assert claim is not None and claim[0] == mine and terminal.lease(mine) is not None
    # Claimed, it holds the slot like any job: a member's next job waits for it.
    second = await queued_job(stores[0], user=2)
    assert await bot.pop() is None
    assert await bot.take_over() == [] and await terminal.take_over() == []
    await stores[1].update_job(mine, state=JobState.DELIVERING, lease=terminal.lease(mine))
    claim = await bot.pop()
    assert claim is not None and claim[0] == second


async def test_a_dead_terminals_job_is_never_taken_by_a_bot_but_ended_and_its_slot_freed(
    stores: list[Store],
) -> None:
    """A killed terminal stops renewing: its job is never claimed by a bot (which could only post
    its result to no channel), but ended, refunded, which frees the Wan slot it held."""
    bot = stores[0].job_queue(max_slots=1, ttl=0.3)
    terminal = stores[1].job_queue(max_slots=1, ttl=0.3, own_jobs=True)
    mine = await terminal_job(stores[1], terminal.owner, ttl=0.3)
    await terminal.push(mine)
    assert await terminal.pop() is not None
    await stores[1].set_task_id(mine, "task-of-the-terminal", lease=terminal.lease(mine))
    member = await queued_job(stores[0])
    ended: list[int] = []

    async def swept() -> bool:
        assert await bot.pop() is None  # the killed job's slot, until it is ended
        assert await bot.take_over() == []
        ended.extend(
            await stores[0].end_abandoned_jobs("terminal", error_code="X", error_message="x")
        )
        return bool(ended)

    await eventually(swept, within=5)
    assert ended == [mine]
    assert (await stores[0].quota_status(0, 0)).held == 0
    claim = await bot.pop()
    assert claim is not None and claim[0] == member


async def test_a_dead_process_loses_its_job_and_its_late_writes_are_fenced(
    stores: list[Store],
) -> None:
    """After the lease runs out another process takes the job over (same task id); the first one's
    writes then raise LeaseLost and settle nothing."""
    a = stores[0].job_queue(max_slots=5, ttl=0.3)
    b = stores[1].job_queue(max_slots=5, ttl=5.0)
    job_id = await queued_job(stores[0], images=2)
    claim = await a.pop()
    assert claim is not None
    old = a.lease(job_id)
    await stores[0].update_job(job_id, state=JobState.SUBMITTED, lease=old)
    await stores[0].set_task_id(job_id, "task-1", lease=old)
    assert await b.take_over() == []  # still leased
    # `a` stops renewing (killed): after its lease b takes the job over, task id and all.
    await eventually(b.take_over, within=5.0)
    new = b.lease(job_id)
    assert new is not None and new.epoch == old.epoch + 1
    job = await stores[1].get_job(job_id)
    assert job is not None and job.task_id == "task-1" and job.state == JobState.SUBMITTED
    with pytest.raises(LeaseLost):
        await stores[0].update_job(job_id, state=JobState.RUNNING, lease=old)
    with pytest.raises(LeaseLost):
        await stores[0].finish_job(job_id, JobState.DONE, generated=2, lease=old)
    status = await stores[0].quota_status(1, 1)
    assert status.used == 0 and status.held == 2  # the stale settle charged nothing
    assert await stores[1].finish_job(job_id, JobState.DONE, generated=2, lease=new)
    status = await stores[0].quota_status(1, 1)
    assert status.used == 2 and status.held == 0


async def test_a_job_left_validating_is_taken_over_once_its_lease_time_passed(
    stores: list[Store],
) -> None:
    """A job a process left VALIDATING (it stopped before queueing it) is not swept while it is
    fresh (its process may still be at it), then claimed by one process with a lease, which fences
    the failing of it: the other process can't claim it too, and a late write of the loser fails."""
    a = stores[0].job_queue(max_slots=5, ttl=0.3)
    b = stores[1].job_queue(max_slots=5, ttl=0.3)
    reservation = await stores[0].reserve(1, 1, 1)
    job = await stores[0].create_job(
        scope=1, channel_id=10, user_id=1, source="slash", prompt="p", reservation_id=reservation.id
    )
    assert job.state == JobState.VALIDATING
    assert await a.take_over() == []  # fresh
    claims: list[tuple[int, object]] = []

    async def claimed() -> bool:
        claims.extend(await a.take_over())
        return bool(claims)

    await eventually(claimed, within=5)
    assert [c[0] for c in claims] == [job.id]
    assert await b.take_over() == []  # leased to `a` now
    lease = a.lease(job.id)
    assert lease is not None
    assert await stores[0].finish_job(
        job.id, JobState.FAILED, error_code="Interrupted", lease=lease
    )
    assert (await stores[1].quota_status(1, 1)).held == 0
    assert await b.take_over() == []  # finished: nothing left to sweep


async def test_renewal_keeps_the_lease_and_reports_a_lost_one(stores: list[Store]) -> None:
    """A started queue renews its leases (no takeover while alive); a lease taken anyway (a stall)
    is reported to the dispatcher through `lost`."""
    a = stores[0].job_queue(max_slots=5, ttl=0.6)
    b = stores[1].job_queue(max_slots=5, ttl=5.0)
    lost: list[int] = []
    await a.start(lambda: None, lost.append)
    try:
        job_id = await queued_job(stores[0])
        assert await a.pop() is not None
        await stores[0].update_job(job_id, state=JobState.RUNNING, lease=a.lease(job_id))
        await asyncio.sleep(1.2)  # two lease lengths: renewed meanwhile
        assert await b.take_over() == []
        # Another process claims it anyway (as after a stall of ours past the lease).
        await stores[1].driver.pool.execute(  # type: ignore[union-attr]
            "UPDATE jobs SET lease_owner = 'other', lease_epoch = lease_epoch + 1"
        )
        await eventually(lambda: lost == [job_id], within=3.0)
        assert a.lease(job_id) is None
    finally:
        await a.close()


async def test_a_clean_stop_hands_jobs_over_at_once(stores: list[Store]) -> None:
    """`close` ends this process's leases, so another takes its running job without waiting."""
    a = stores[0].job_queue(max_slots=5, ttl=60.0)
    b = stores[1].job_queue(max_slots=5, ttl=60.0)
    await a.start(lambda: None, lambda job_id: None)
    job_id = await queued_job(stores[0])
    assert await a.pop() is not None
    await stores[0].set_task_id(job_id, "task-9", lease=a.lease(job_id))
    await a.close()
    assert [c[0] for c in await b.take_over()] == [job_id]


async def test_cancel_claims_only_a_waiting_job(stores: list[Store]) -> None:
    """`remove` takes a waiting job for the canceller (fenced finish), never a claimed one."""
    a, b = (s.job_queue(max_slots=5) for s in stores)
    first, second = await queued_job(stores[0], 1), await queued_job(stores[0], 2)
    assert await a.pop() is not None
    assert not await b.remove(first)
    assert await b.remove(second)
    assert await stores[1].finish_job(second, JobState.CANCELLED, lease=b.lease(second))


async def test_notify_wakes_the_other_process(stores: list[Store]) -> None:
    """A job queued by one process wakes another's dispatcher (LISTEN/NOTIFY)."""
    a, b = (s.job_queue(max_slots=5) for s in stores)
    woken = asyncio.Event()
    await b.start(woken.set, lambda job_id: None)
    try:
        job_id = await queued_job(stores[0])
        await a.push(job_id)
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await b.close()


async def test_a_job_ending_in_a_wan_slot_wakes_the_other_process(stores: list[Store]) -> None:
    """A job that ends while it holds a Wan slot (submitted or running) wakes the other processes'
    dispatchers at once (LISTEN/NOTIFY): the slot it frees is taken without waiting for a poll."""
    a, b = (s.job_queue(max_slots=5) for s in stores)
    woken = asyncio.Event()
    await b.start(woken.set, lambda job_id: None)
    try:
        job_id = await queued_job(stores[0])
        assert await a.pop() is not None
        await stores[0].update_job(job_id, state=JobState.RUNNING, lease=a.lease(job_id))
        ended = await stores[0].finish_job(
            job_id, JobState.DONE, generated=1, lease=a.lease(job_id)
        )
        assert ended
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await b.close()


async def test_a_lost_listener_is_replaced_and_the_store_still_closes(pg_url: str) -> None:
    """The server drops the LISTEN connection (a restart, an idle timeout): the queue listens
    again on a new one and wakes on the next NOTIFY (the pool has taken the dropped one back, and
    asking it whether it is closed raises), and the process still stops."""
    store = await open_store(pg_url)
    assert store.shared
    other = await open_store(pg_url)
    assert other.shared
    try:
        woken = asyncio.Event()
        queue = store.job_queue(max_slots=5, ttl=0.3)
        await queue.start(woken.set, lambda job_id: None)
        first = queue._listener
        assert first is not None
        await other.driver.pool.execute(  # type: ignore[attr-defined]
            "SELECT pg_terminate_backend($1)", first.get_server_pid()
        )
        await eventually(lambda: queue._listener not in (None, first), within=5.0)
        woken.clear()
        await other.job_queue(max_slots=5).push(await queued_job(other))
        await asyncio.wait_for(woken.wait(), 5)
        await queue.close()
        await asyncio.wait_for(store.close(), 10)
    finally:
        await other.close()


async def test_the_per_member_cap_holds_across_processes(stores: list[Store]) -> None:
    """Two processes admitting one member's jobs at once: only `max_active` are written."""

    async def admit(store: Store) -> object:
        try:
            job = await store.create_job(
                scope=1,
                channel_id=1,
                user_id=7,
                source="slash",
                prompt="p",
                state=JobState.QUEUED,
                max_active=1,
            )
        except ActiveJobLimit as err:
            return err
        return job

    results = await asyncio.gather(*(admit(stores[i % 2]) for i in range(6)))
    assert sum(not isinstance(r, ActiveJobLimit) for r in results) == 1
    assert await stores[0].active_job_count(7) == 1


async def test_the_shared_rate_is_one_budget_for_all_processes(
    stores: list[Store],
) -> None:
    """Gates of two processes on one bucket together grant no more than the limit in a second."""
    gates = [s.shared_rate("query", 10.0) for s in stores]
    stamps: list[float] = []

    async def worker(gate: object) -> None:
        for _ in range(8):
            await gate()  # type: ignore[operator]
            stamps.append(time.monotonic())

    await asyncio.gather(*(worker(g) for g in gates))
    stamps.sort()
    assert len(stamps) == 16
    # Any one-second window of grants holds at most 10.
    assert max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps) <= 10
