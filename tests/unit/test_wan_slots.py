"""Memory and throughput at intake, the parts a test can pin down: a Wan slot is
given back the moment the task ends (the next job's create does not wait for the previous delivery),
a job whose turn came fetches its inputs without waiting behind the requests coming in, and a job's
inputs fetched again are not decoded twice. The numbers are in bench/e2e.py."""

from __future__ import annotations

from bot import images
from bot.images import ImageRejected, inspect, reinspect
from tests.support.harness import World, png, wait_until


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


async def test_a_queued_job_fetches_its_images_while_new_requests_are_taken_in(
    world: World,
) -> None:
    """Guards: Wan's slots stay busy while requests come in. With one Wan slot, job 4 waits in the
    queue beyond the jobs fetched ahead, so it fetches its images again when its turn comes. Two
    newer requests are being taken in meanwhile, their downloads from the CDN held (a slow upload):
    job 4 still goes to Wan, instead of waiting behind them (with one limit for both, Wan's slots
    sat idle until every request had been taken in)."""
    w = world
    await w.start_bot(WAN_MAX_CONCURRENT_TASKS="1")
    w.emu.hold("running")
    users = [w.alice, w.bob, w.users[2], w.add_member("dave")]
    for number, user in enumerate(users, start=1):
        await w.wanedit(user, f"job {number}")
        await wait_until(lambda n=number: w.bots[-1].store.get_job(n))
    await w.emu.wait_for_task_count(1)
    # As many newer requests as may be taken in at once, each stuck downloading its image.
    busy = images.MAX_PARALLEL_LOADS
    slow = w.fd.hold("GET", r"^/cdn/.*/slow-\d+\.png", times=busy)
    for number in range(1, busy + 1):
        late = w.add_member(f"late{number}")
        await w.wanedit(late, "arriving", [w.upload(png(), f"slow-{number}.png")])
    await slow.wait_arrived()
    w.emu.release("running")
    await w.emu.wait_for_task_count(4, timeout=15)
    assert w.emu.created_count == 4 and slow.parked == busy  # the newer ones: still downloading
    slow.release()
    for user in users:
        await w.result_message(user)


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
