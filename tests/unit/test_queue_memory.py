"""The one-process queue (`MemoryQueue`): first in, first out, and the places it reports.

The end-to-end queue tests (tests/e2e/test_promises_queue.py) watch positions through Discord; these
pin the queue's own answers, which `JobRunner.position`, cancel and the announcements rely on.
"""

from __future__ import annotations

from bot.jobs.queue import MemoryQueue


async def test_jobs_leave_in_the_order_they_came_and_report_their_places() -> None:
    """Promise: the queue is FIFO and a job's place is 1-based, None once it is not waiting."""
    queue = MemoryQueue()
    assert (queue.shared, queue.poll_interval) == (False, None)
    assert [await queue.push(job) for job in (7, 8, 9)] == [1, 2, 3]
    assert (len(queue), 8 in queue, 6 in queue) == (3, True, False)
    assert [await queue.position(job) for job in (7, 8, 9, 6)] == [1, 2, 3, None]
    assert await queue.positions() == [(7, 1), (8, 2), (9, 3)]
    assert await queue.pop() == (7, None)
    assert [await queue.position(job) for job in (7, 8, 9)] == [None, 1, 2]
    assert await queue.positions() == [(8, 1), (9, 2)]


async def test_a_removed_job_is_gone_and_only_a_waiting_one_can_be_removed() -> None:
    """Promise: a cancel takes a waiting job out exactly once; the jobs behind it move up."""
    queue = MemoryQueue()
    for job in (1, 2, 3):
        await queue.push(job)
    assert await queue.remove(2) is True
    assert await queue.remove(2) is False
    assert (2 in queue, len(queue), await queue.position(3)) == (False, 2, 2)
    assert await queue.pop() == (1, None)
    assert await queue.pop() == (3, None)
    assert await queue.pop() is None
    assert await queue.take_over() == []
    assert (queue.lease(3), queue.release(3)) == (None, None)
