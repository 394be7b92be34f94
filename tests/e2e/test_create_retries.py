"""One retry policy for creates, end to end: the real bot, the fake Discord and the
emulator. Every create POST may bill a task, so the emulator counts what it received for one job."""

from __future__ import annotations

from bot.sandbox import FaultRule
from tests.e2e.test_wanedit_e2e import settled_to
from tests.support.harness import World, embed_text
from tests.support.wan import requests_to

CREATE = "/services/aigc/image2image/image-synthesis"


def create_posts(w: World) -> list[int]:
    """The HTTP status of every create POST the emulator received (0 = connection dropped)."""
    return [r[3] for r in requests_to(w.emu, "POST", CREATE)]


async def test_failing_creates_stop_at_four_posts(bot_world: World) -> None:
    """Guards: at most 4 create POSTs for one job, client and runner together (was up to 24), and
    the member is told plainly and charged nothing."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="create", status=503, code="ServiceUnavailable", times=30))
    ix = await w.wanedit(w.alice, "Wan keeps failing")
    original = await ix.wait_original(lambda m: "No result" in embed_text(m))
    assert "Nothing was charged" in embed_text(original)
    assert create_posts(w) == [503] * 4
    assert w.emu.created_count == 0
    await settled_to(w, w.alice.id, 0)


async def test_throttled_creates_retry_within_four_posts(bot_world: World) -> None:
    """Guards: a 429 proves no task was made, so it is retried, and the fourth POST still counts."""
    w = bot_world
    w.emu.add_fault(FaultRule(op="create", status=429, code="Throttling.RateQuota", times=3))
    await w.wanedit(w.alice, "after three 429s")
    await w.result_message(w.alice)
    assert create_posts(w) == [429, 429, 429, 200]
    assert w.emu.created_count == 1
    await settled_to(w, w.alice.id, 1)


async def test_dropped_create_is_posted_once(world: World) -> None:
    """Guards: a create whose answer never came back is never sent again, by client or runner
    (later faults queued for creates are never met); the task it made is found in the task list
    and delivered, charged once."""
    w = world
    await w.start_bot(runner_options={"reconcile_margin": 0.5})
    w.emu.add_fault(FaultRule(op="create", drop=True))
    w.emu.add_fault(FaultRule(op="create", status=503, code="ServiceUnavailable", times=5))
    await w.wanedit(w.alice, "the answer gets lost")
    await w.result_message(w.alice)
    assert create_posts(w) == [0]
    assert w.emu.created_count == 1
    await settled_to(w, w.alice.id, 1)
