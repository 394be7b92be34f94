"""Emulator task lifecycle over real loopback HTTP: states, slots, cancel, expiry, results."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from bot.sandbox import EmulatedTask, Emulator, EmulatorConfig
from bot.sandbox.clock import WAN_TZ
from tests.support.sandbox_fixtures import (
    SEED_CREATE,
    SEED_SUCCEEDED,
    SEED_UNKNOWN,
    TIME_RE,
    UUID_RE,
    create_body,
    data_uri,
    image_bytes,
    png_size,
    sandbox,
)


async def test_task_goes_pending_running_succeeded() -> None:
    async with sandbox() as (emu, api):
        # Each stage is held until the test has looked at it: no race with the task's timers.
        emu.hold("pending")
        emu.hold("running")
        status, created = await api.create()
        assert status == 200
        assert created.keys() == SEED_CREATE.keys()
        assert created["output"] == {
            "task_status": "PENDING",
            "task_id": created["output"]["task_id"],
        }
        task_id = created["output"]["task_id"]
        assert re.match(UUID_RE, task_id) and re.match(UUID_RE, created["request_id"])

        _, pending = await api.get(task_id)
        assert pending["output"]["task_status"] == "PENDING"
        assert re.match(TIME_RE, pending["output"]["submit_time"])
        assert "end_time" not in pending["output"] and "usage" not in pending

        emu.release("pending")
        await emu.wait_for_status(task_id, "RUNNING")
        _, running = await api.get(task_id)
        assert running["output"]["task_status"] == "RUNNING"
        assert running["output"]["task_metrics"] == {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 0}
        assert re.match(TIME_RE, running["output"]["scheduled_time"])

        emu.release("running")
        done = await api.finished(task_id)
        out = done["output"]
        assert out["task_status"] == "SUCCEEDED"
        assert done.keys() == SEED_SUCCEEDED.keys()
        assert out.keys() == SEED_SUCCEEDED["output"].keys()
        assert out["results"][0].keys() == SEED_SUCCEEDED["output"]["results"][0].keys()
        assert out["task_metrics"] == {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0}
        assert done["usage"] == {"image_count": 1}
        assert out["submit_time"] <= out["scheduled_time"] <= out["end_time"]


async def test_times_are_beijing_time_now() -> None:
    async with sandbox() as (_emu, api):
        data = await api.finished(await api.create_id())
        for name in ("submit_time", "scheduled_time", "end_time"):
            value = data["output"][name]
            assert re.match(TIME_RE, value), value
            moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=WAN_TZ)
            assert abs((datetime.now(WAN_TZ) - moment).total_seconds()) < 10


async def test_every_response_has_a_fresh_request_id() -> None:
    async with sandbox() as (_emu, api):
        task_id = await api.create_id()
        ids = {(await api.get(task_id))[1]["request_id"] for _ in range(3)}
        assert len(ids) == 3 and all(re.match(UUID_RE, i) for i in ids)


async def test_unknown_task_id_answers_200_unknown() -> None:
    async with sandbox() as (_emu, api):
        status, data = await api.get("no-such-task")
        assert status == 200
        assert data["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}
        assert data.keys() == SEED_UNKNOWN.keys()


async def test_task_id_expires_to_unknown_after_task_ttl() -> None:
    async with sandbox() as (emu, api):
        task_id = await api.create_id()
        assert (await api.finished(task_id))["output"]["task_status"] == "SUCCEEDED"
        assert (await api.list())[1]["total"] == 1
        # The TTL is judged at query time: shortening it makes the same id too old at once,
        # with no race against a short TTL on a busy machine.
        emu.config.task_ttl_seconds = 0.0
        assert (await api.get(task_id))[1]["output"]["task_status"] == "UNKNOWN"
        _, listed = await api.list()
        assert listed["total"] == 0


async def test_result_url_serves_png_then_expires() -> None:
    async with sandbox() as (emu, api):
        data = await api.finished(await api.create_id())
        fresh = data["output"]["results"][0]["url"]
        assert "Expires=" in fresh
        status, png = await api.download(fresh)
        assert status == 200 and png.startswith(b"\x89PNG")
        # A URL's life is fixed when the result is published: results published with a TTL of
        # 0 are past it at once (no race with a short TTL on a busy machine).
        emu.config.result_ttl_seconds = 0.0
        data = await api.finished(await api.create_id())
        url = data["output"]["results"][0]["url"]
        assert (await api.download(url))[0] == 403
        assert (await api.download(fresh))[0] == 200  # the older one keeps its own TTL
        async with api.session.get(url) as resp:
            assert "AccessDenied" in await resp.text()
        tampered = re.sub(r"Expires=\d+", "Expires=9999999999", url)
        assert (await api.download(tampered))[0] == 403
        assert (await api.download(url.replace("/results/", "/results/0"))).__getitem__(0) == 404


async def test_max_running_limit_queues_extra_tasks_fifo() -> None:
    """Beyond 5 tasks in progress a create waits PENDING in FIFO order (over_capacity="queue")."""
    async with sandbox(max_running=5) as (emu, api):
        emu.hold("running")  # the first five stay RUNNING until released: no race with their time
        ids = [await api.create_id() for _ in range(7)]
        await emu.wait_for(lambda: sum(emu.tasks[i].status.value == "RUNNING" for i in ids) == 5)
        assert [emu.tasks[i].status.value for i in ids[5:]] == ["PENDING", "PENDING"]
        assert (await api.get(ids[5]))[1]["output"]["task_status"] == "PENDING"
        assert emu.scheduler.in_progress == 7 and emu.scheduler.running_count == 5
        emu.release("running")
        for task_id in ids:
            await emu.wait_for_status(task_id, "SUCCEEDED")

        tasks: list[EmulatedTask] = [emu.tasks[i] for i in ids]
        first_end = min(t.ended_at or 0 for t in tasks[:5])
        for queued in tasks[5:]:
            assert queued.scheduled_at is not None
            assert queued.scheduled_at >= first_end  # it only started once a slot was free
        starts = [t.scheduled_at or 0 for t in tasks]
        assert starts == sorted(starts)  # FIFO
        # Never more than 5 running at any moment.
        for t in tasks:
            overlapping = [
                u
                for u in tasks
                if (u.scheduled_at or 0) <= (t.scheduled_at or 0) < (u.ended_at or 0)
            ]
            assert len(overlapping) <= 5


async def test_over_capacity_refuse_answers_429_throttling_and_makes_no_task() -> None:
    """With over_capacity="refuse" a create beyond 5 in progress is refused, not queued; a slot
    that frees up admits the next create."""
    async with sandbox(max_running=5, over_capacity="refuse") as (emu, api):
        emu.hold("running")
        ids = [await api.create_id() for _ in range(5)]
        status, body = await api.create()
        assert (status, body["code"]) == (429, "Throttling")
        assert body.keys() == {"code", "message", "request_id"}
        assert emu.created_count == 5 and len(emu.tasks) == 5
        emu.release("running")
        await emu.wait_for_status(ids[0], "SUCCEEDED")
        await emu.wait_for(lambda: emu.scheduler.in_progress < 5)
        assert (await api.create())[0] == 200
        assert emu.created_count == 6


async def test_refused_creates_count_pending_tasks_as_in_progress() -> None:
    async with sandbox(max_running=2, over_capacity="refuse") as (emu, api):
        emu.hold("pending")
        await api.create_id()
        await api.create_id()
        assert emu.scheduler.running_count == 0  # both held PENDING, each holding a slot
        assert (await api.create())[0] == 429
        emu.release("pending")


def test_over_capacity_must_be_queue_or_refuse() -> None:
    with pytest.raises(ValueError, match="over_capacity"):
        EmulatorConfig(over_capacity="drop")  # type: ignore[arg-type]


async def test_cancel_pending_task() -> None:
    async with sandbox(max_running=1) as (emu, api):
        emu.hold("running")  # the blocker keeps the only slot until released
        blocker = await api.create_id()
        waiting = await api.create_id()
        await emu.wait_for_status(blocker, "RUNNING")
        status, data = await api.cancel(waiting)
        assert status == 200
        assert data["output"] == {"task_id": waiting, "task_status": "CANCELED"}
        assert re.match(UUID_RE, data["request_id"])
        _, got = await api.get(waiting)
        assert got["output"]["task_status"] == "CANCELED"
        assert re.match(TIME_RE, got["output"]["end_time"])
        assert "scheduled_time" not in got["output"]
        emu.release("running")
        assert (await api.finished(blocker))["output"]["task_status"] == "SUCCEEDED"
        assert emu.tasks[waiting].scheduled_at is None  # it never ran
        # A second cancel of the now-CANCELED task is refused.
        status, data = await api.cancel(waiting)
        assert (status, data["code"]) == (400, "UnsupportedOperation")


async def test_cancel_during_pending_delay_frees_the_slot() -> None:
    async with sandbox(max_running=1) as (emu, api):
        emu.hold("pending")  # the first keeps the only slot, still PENDING, until released
        first = await api.create_id()
        second = await api.create_id()
        assert emu.scheduler.in_progress == 2 and emu.tasks[second].scheduled_at is None
        assert (await api.cancel(first))[0] == 200
        emu.release("pending")
        done = await api.finished(second)
        assert done["output"]["task_status"] == "SUCCEEDED"
        assert emu.tasks[first].status.value == "CANCELED"
        assert emu.tasks[first].scheduled_at is None


async def test_cancel_running_finished_and_unknown_tasks_is_refused() -> None:
    async with sandbox() as (emu, api):
        emu.hold("running")
        task_id = await api.create_id()
        await emu.wait_for_status(task_id, "RUNNING")
        status, data = await api.cancel(task_id)
        assert (
            status == 400
            and data["code"] == "UnsupportedOperation"
            and "RUNNING" in data["message"]
        )
        assert data.keys() == {"code", "message", "request_id"}
        emu.release("running")
        await api.finished(task_id)
        assert (await api.cancel(task_id))[1]["code"] == "UnsupportedOperation"
        assert emu.tasks[task_id].status.value == "SUCCEEDED"
        status, data = await api.cancel("no-such-task")
        assert (status, data["code"]) == (404, "NotFound")


async def test_results_follow_size_seed_and_last_image() -> None:
    wide = data_uri(image_bytes(1200, 600))
    square = data_uri(image_bytes(500, 500))
    async with sandbox(result_area=200 * 200) as (_emu, api):
        sized = await api.finished(await api.create_id(create_body(size="1280*720")))
        _, png = await api.download(sized["output"]["results"][0]["url"])
        assert png_size(png) == (1280, 720)

        # No size: the last image's aspect (2:1) at result_area pixels.
        by_aspect = await api.finished(
            await api.create_id(create_body(images=[square, wide], seed=5, n=2))
        )
        urls = [r["url"] for r in by_aspect["output"]["results"]]
        (_, a), (_, b) = await api.download(urls[0]), await api.download(urls[1])
        width, height = png_size(a)
        assert abs(width / height - 2.0) < 0.05 and abs(width * height - 40000) < 1000
        assert a != b  # seed 5 and seed 6 differ

        again = await api.finished(
            await api.create_id(create_body(images=[square, wide], seed=5, n=1))
        )
        _, a2 = await api.download(again["output"]["results"][0]["url"])
        assert a2 == a  # same inputs and seed: same picture


async def test_n_defaults_to_four_and_prompt_extend_adds_actual_prompt() -> None:
    async with sandbox() as (_emu, api):
        body = create_body(prompt="Add a red hat")
        del body["parameters"]
        data = await api.finished(await api.create_id(body))
        results = data["output"]["results"]
        assert len(results) == 4 and data["usage"] == {"image_count": 4}
        assert len({r["url"] for r in results}) == 4
        for result in results:
            assert result["orig_prompt"] == "Add a red hat"
            assert result["actual_prompt"].startswith("Add a red hat.")
            assert len(result["actual_prompt"]) > len(result["orig_prompt"]) + 20
        assert data["output"]["task_metrics"] == {"TOTAL": 4, "SUCCEEDED": 4, "FAILED": 0}


async def test_running_seconds_callable_sees_the_task() -> None:
    seen: list[int] = []

    def running(task: EmulatedTask) -> float:
        seen.append(task.params.n)
        return 0.02

    async with sandbox(running_seconds=running) as (emu, api):
        task_id = await api.create_id(create_body(n=3))
        await api.finished(task_id)
        assert seen == [3]
        assert emu.tasks[task_id].running_seconds == 0.02


async def test_start_errors_are_clean() -> None:
    async with sandbox() as (emu, _api):
        other = Emulator(EmulatorConfig(port=emu.port))
        with pytest.raises(RuntimeError):
            _ = other.base_url  # not started
        with pytest.raises(OSError):
            await other.start()  # the port is taken
        await other.close()
        with pytest.raises(RuntimeError):
            await emu.start()  # already running
