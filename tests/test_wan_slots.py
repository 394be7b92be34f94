"""Memory and throughput at intake (issue 12 item 8), the parts a test can pin down: a Wan slot is
given back the moment the task ends (the next job's create does not wait for the previous delivery),
and a job's inputs fetched again are not decoded twice. The numbers are in bench/e2e.py."""

from __future__ import annotations

from bot.images import ImageRejected, inspect, reinspect
from tests.harness import World, png


async def test_next_job_goes_to_wan_while_the_previous_one_is_delivered(world: World) -> None:
    """Guards: with one Wan slot, job 2 is created while Discord still holds job 1's result back
    (a 3 s rate limit on the post), instead of after it: Wan's slots stay busy."""
    w = world
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.fd.inject_failure(
        "POST",
        r"^/channels/\d+/messages$",
        429,
        body={"message": "You are being rate limited.", "retry_after": 3.0, "global": False},
    )
    await w.wanedit(w.alice, "first")
    await w.wanedit(w.bob, "second")
    await w.emu.wait_for_task_count(2, timeout=10)
    assert w.results_for(w.alice) == []  # job 1 still waiting to be posted
    await w.result_message(w.alice)
    await w.result_message(w.bob)


def test_inputs_fetched_again_are_not_decoded_twice() -> None:
    """Guards: the same bytes as checked at intake (same SHA-256) reuse that check; other bytes are
    checked from scratch, so a changed file is still refused."""
    data = png(500, 400)
    checked = inspect(1, "a.png", data)
    row = {"sha256": checked.sha256, "content_type": "image/png", "width": 7, "height": 9}
    again = reinspect(1, "a.png", data, None, row)
    assert (again.width, again.height, again.data) == (7, 9, data)  # from the row: not decoded
    other = reinspect(1, "a.png", png(600, 400), None, row)
    assert (other.width, other.height) == (600, 400)
    try:
        reinspect(1, "a.png", data[:200], None, row)
    except ImageRejected as err:
        assert "can't be read" in str(err)
    else:
        raise AssertionError("a truncated file passed")
