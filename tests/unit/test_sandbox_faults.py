"""Emulator fault injection: the programmatic queue, prompt tags and the HTTP control endpoint."""

from __future__ import annotations

import aiohttp
import pytest

from bot.sandbox import FaultRule
from tests.support.sandbox_fixtures import CREATE, SEED_PARTIAL, create_body, sandbox

PARTIAL_MESSAGE = SEED_PARTIAL["output"]["results"][1]["message"]


async def test_http_faults_hit_the_next_matching_requests_only() -> None:
    async with sandbox() as (emu, api):
        task_id = await api.create_id()
        emu.add_fault(FaultRule(op="get", status=503, code="ServiceUnavailable", times=2))
        emu.add_fault(FaultRule(op="list", status=500, message="boom"))
        for _ in range(2):
            status, body = await api.get(task_id)
            assert (status, body["code"]) == (503, "ServiceUnavailable")
            assert body.keys() == {"code", "message", "request_id"}
        assert (await api.get(task_id))[0] == 200
        status, body = await api.list()
        assert (status, body["code"], body["message"]) == (500, "InternalError", "boom")
        assert (await api.list())[0] == 200
        assert emu.faults.pending() == []


async def test_create_fault_makes_no_task() -> None:
    async with sandbox() as (emu, api):
        emu.add_fault(FaultRule(op="create", status=500))
        status, body = await api.create()
        assert (status, body["code"]) == (500, "InternalError")
        assert "internal error" in body["message"]
        assert emu.created_count == 0
        assert (await api.create())[0] == 200


async def test_dropped_create_still_creates_the_task() -> None:
    async with sandbox() as (emu, api):
        await api.get("warm-up")  # the create then goes over a reused keep-alive connection
        emu.add_fault(FaultRule(op="create", drop=True))
        with pytest.raises(aiohttp.ClientError):
            await api.create()
        assert emu.created_count == 1  # and aiohttp did not resend the POST
        (task,) = emu.tasks.values()
        assert (await api.finished(task.task_id))["output"]["task_status"] == "SUCCEEDED"
        assert emu.request_log[1][1:] == ("POST", "/api/v1" + CREATE, 0)


async def test_dropped_get_gives_no_answer() -> None:
    async with sandbox() as (emu, api):
        task_id = await api.create_id()
        # times=2: aiohttp resends an idempotent GET once when a kept-alive connection drops.
        emu.add_fault(FaultRule(op="get", drop=True, times=2))
        with pytest.raises(aiohttp.ClientError):
            await api.get(task_id)
        assert (await api.get(task_id))[0] == 200


async def test_task_fault_moderation_failure() -> None:
    async with sandbox() as (emu, api):
        emu.add_fault(FaultRule(op="task", task_code="DataInspectionFailed"))
        failed = await api.finished(await api.create_id(create_body(n=2)))
        out = failed["output"]
        assert (out["task_status"], out["code"]) == ("FAILED", "DataInspectionFailed")
        assert out["message"] == "Input or output data may contain inappropriate content."
        assert out["task_metrics"] == {"TOTAL": 2, "SUCCEEDED": 0, "FAILED": 2}
        assert "usage" not in failed
        assert (await api.finished(await api.create_id()))["output"]["task_status"] == "SUCCEEDED"

        emu.add_fault(
            FaultRule(op="task", task_code="IPInfringementSuspect", task_message="custom")
        )
        out = (await api.finished(await api.create_id()))["output"]
        assert (out["code"], out["message"]) == ("IPInfringementSuspect", "custom")


async def test_task_fault_partial_failure_matches_the_documented_shape() -> None:
    async with sandbox() as (emu, api):
        emu.add_fault(FaultRule(op="task", partial_failures=1))
        data = await api.finished(await api.create_id(create_body(n=2)))
        out = data["output"]
        assert out["task_status"] == "SUCCEEDED"
        assert out["task_metrics"] == SEED_PARTIAL["output"]["task_metrics"]
        assert data["usage"] == SEED_PARTIAL["usage"]
        good, bad = out["results"]
        assert "url" in good
        assert bad == {"code": "InternalError.Timeout", "message": PARTIAL_MESSAGE}
        assert bad.keys() == SEED_PARTIAL["output"]["results"][1].keys()


async def test_partial_failure_of_every_image_fails_the_task() -> None:
    async with sandbox() as (emu, api):
        emu.add_fault(FaultRule(op="task", partial_failures=2))
        out = (await api.finished(await api.create_id(create_body(n=2))))["output"]
        assert (out["task_status"], out["code"]) == ("FAILED", "InternalError.Timeout")


async def test_task_fault_slow_task() -> None:
    async with sandbox() as (emu, api):
        emu.add_fault(FaultRule(op="task", running_seconds=30))
        slow = await api.create_id()
        quick = await api.create_id()
        await api.finished(quick)
        assert (await api.get(slow))[1]["output"]["task_status"] == "RUNNING"
        assert emu.tasks[slow].running_seconds == 30


async def test_download_and_upload_faults_use_oss_errors() -> None:
    async with sandbox() as (emu, api):
        url = (await api.finished(await api.create_id()))["output"]["results"][0]["url"]
        emu.add_fault(
            FaultRule(op="download", status=500, code="InternalError", message="oss down")
        )
        async with api.session.get(url) as resp:
            assert resp.status == 500 and "<Code>InternalError</Code>" in await resp.text()
        assert (await api.download(url))[0] == 200

        emu.add_fault(FaultRule(op="upload", status=503, code="ServiceUnavailable", message="busy"))
        async with api.session.post(
            emu.origin + "/oss-upload", data=aiohttp.FormData({"a": "b"})
        ) as resp:
            assert resp.status == 503 and "busy" in await resp.text()


@pytest.mark.parametrize(
    ("tag", "code"),
    [("[fail:moderation]", "DataInspectionFailed"), ("[FAIL:ERROR]", "InternalError.Algo")],
)
async def test_prompt_tags_fail_tasks(tag: str, code: str) -> None:
    async with sandbox() as (_emu, api):
        prompt = f"Make it blue {tag}"
        out = (await api.finished(await api.create_id(create_body(prompt=prompt))))["output"]
        assert (out["task_status"], out["code"]) == ("FAILED", code)


async def test_prompt_tag_partial_keeps_orig_prompt() -> None:
    async with sandbox() as (_emu, api):
        prompt = "Add snow [fail:partial]"
        data = await api.finished(await api.create_id(create_body(prompt=prompt, n=4)))
        results = data["output"]["results"]
        assert [("url" in r) for r in results] == [True, True, False, False]
        assert results[0]["orig_prompt"] == prompt
        assert data["usage"]["image_count"] == 2


async def test_prompt_tag_slow() -> None:
    async with sandbox() as (emu, api):
        slow = await api.create_id(create_body(prompt="Zoom out [slow:20]"))
        quick = await api.create_id()
        await api.finished(quick)
        assert emu.tasks[slow].status.value == "RUNNING" and emu.tasks[slow].running_seconds == 20


async def test_prompt_tag_throttle_hits_the_next_create() -> None:
    async with sandbox() as (emu, api):
        assert (await api.create(create_body(prompt="Sepia [throttle]")))[0] == 200
        status, body = await api.create()
        assert (status, body["code"]) == (429, "Throttling.RateQuota")
        assert (await api.create())[0] == 200
        assert emu.created_count == 2


async def test_control_endpoint_adds_faults_and_reports_state() -> None:
    async with sandbox() as (emu, api):
        task_id = await api.create_id()
        await emu.wait_for_status(task_id)
        rules = [
            {"op": "get", "status": 502, "code": "BadGateway"},
            {"op": "task", "task_code": "DataInspectionFailed"},
        ]
        async with api.session.post(emu.origin + "/sandbox/faults", json=rules) as resp:
            assert resp.status == 200 and (await resp.json())["pending_faults"] == 2
        assert (await api.get(task_id))[0] == 502
        failed = await api.finished(await api.create_id())
        assert failed["output"]["code"] == "DataInspectionFailed"

        async with api.session.get(emu.origin + "/sandbox/state") as resp:
            state = await resp.json()
        assert state["created_count"] == 2
        assert state["tasks"]["SUCCEEDED"] == 1 and state["tasks"]["FAILED"] == 1
        assert state["pending_faults"] == []

        for bad in (
            {"op": "nope"},
            {"op": "get", "status": "500"},
            {"op": "get", "colour": 1},
            {"op": "get", "times": 0},
        ):
            async with api.session.post(emu.origin + "/sandbox/faults", json=bad) as resp:
                assert resp.status == 400, bad
        async with api.session.post(
            emu.origin + "/sandbox/faults", json={"op": "list", "times": 3}
        ) as resp:
            assert resp.status == 200
        async with api.session.delete(emu.origin + "/sandbox/faults") as resp:
            assert resp.status == 200
        assert emu.faults.pending() == []
