"""Images a job holds while it waits live in its temporary folder, not in memory:
its inputs until the create is answered, its results until they are posted. These tests guard what
that must not cost: the bytes Wan and Discord receive, a create that runs on through a shutdown, and
folders left behind.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot import images
from bot.sandbox import FaultRule
from bot.store import JobState
from bot.wan.body import SLICE, InlineImage, StreamedBody
from tests.e2e.test_output_shape import fetch_attachments
from tests.support.harness import REDELIVER_SOON, World, png, wait_until
from tests.support.promises import (
    CREATE_PATH,
    gate,
    job_ends,
    refuse_posts,
    settled_to,
    start_bot,
)
from tests.support.wan import loopback_server, make_client

THROTTLED = {
    "code": "Throttling.RateQuota",
    "message": "Requests rate limit exceeded",
    "request_id": "r1",
}


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp folder for this test alone, so leftover job folders can be counted."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def job_folders(spool_dir: Path) -> list[str]:
    return sorted(p.name for p in spool_dir.glob("wanbot-*-job*"))


async def test_a_create_retried_while_the_bot_stops_still_sends_its_images(
    world: World, spool_dir: Path
) -> None:
    """Promise: a Wan task is never lost or created twice. The create's images wait in the job's
    folder and are read while the POST goes out. The bot stops while the first POST is at Wan,
    which answers 429 (no task made); the create runs on through the shutdown and its retry still
    reads the images (the folder goes only when the create is done): one task, made from the exact
    bytes the member sent, and no folder left."""
    w = world
    image = png(640, 480, (200, 30, 90))
    async with gate(w) as g:
        create = g.hold("POST", CREATE_PATH)
        bot = await start_bot(w, DASHSCOPE_BASE_URL=g.base_url)
        await w.wanedit(w.alice, "sent while stopping", [image])
        await create.wait_arrived()
        assert len(job_folders(spool_dir)) == 1  # the inputs, on disk while the create is out
        stopping = asyncio.create_task(w.stop_bot(bot))
        # The job's own task is cancelled by the shutdown; its create call is not.
        await wait_until(lambda: 1 not in bot.runner.inflight.running)
        create.release(fail=(429, THROTTLED))
        await stopping
        assert g.creates_passed() == 1 and w.emu.created_count == 1
    (task,) = w.emu.tasks.values()
    sent = task.request["input"]["images"]
    assert sent == [f"data:image/png;base64,{base64.b64encode(image).decode()}"]
    await wait_until(lambda: job_folders(spool_dir) == [])


async def test_delivered_and_failed_jobs_leave_no_folder(world: World, spool_dir: Path) -> None:
    """Promise: the file posted is the image Wan made, and the bot does not fill the disk. The
    result is downloaded to the job's folder and posted from there: the member gets Wan's image
    with its metadata spliced in after the PNG header. A job's folders (inputs, results) are gone
    when their step ends: after a delivered result, after a create Wan refused, and after a
    delivery no place accepted."""
    w = world
    await start_bot(w, REDELIVER_SOON)
    await w.wanedit(w.alice, "delivered")
    result = await w.result_message(w.alice)
    (task,) = w.emu.tasks.values()
    async with aiohttp.ClientSession() as session:
        async with session.get(task.results[0]["url"]) as response:
            made = await response.read()
    ((_, posted),) = await fetch_attachments(result)
    header = images.END_OF_HEADER
    assert posted[:header] == made[:header] and posted.endswith(made[header:])
    assert len(posted) > len(made)  # the metadata chunks
    await job_ends(w, 1, JobState.DONE)
    await wait_until(lambda: job_folders(spool_dir) == [])

    w.emu.add_fault(FaultRule(op="create", status=400, code="InvalidParameter", times=1))
    await w.wanedit(w.bob, "refused by Wan")
    await job_ends(w, 2, JobState.FAILED)
    await wait_until(lambda: job_folders(spool_dir) == [])

    refuse_posts(w, 10_000)
    await w.wanedit(w.alice, "nowhere to go")
    # Three quick tries and three postponements, each its own folder: slow on a busy machine.
    await job_ends(w, 3, JobState.FAILED, timeout=60)
    await wait_until(lambda: job_folders(spool_dir) == [])
    await settled_to(w, w.alice.id, 1)


async def test_a_download_cut_short_is_written_again_from_the_start(tmp_path: Path) -> None:
    """Promise: the file posted is the image Wan made. A result download cut off halfway is
    retried, and the retry rewrites the file instead of adding to the half already there."""
    image = png(700, 500, (10, 200, 60)) * 3
    calls = 0

    async def result(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(image)
        await response.prepare(request)
        if calls == 1:
            await response.write(image[: len(image) // 2])
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-body
            return response
        await response.write(image)
        await response.write_eof()
        return response

    async with loopback_server({("GET", "/r.png"): result}) as origin:
        async with make_client(origin + "/api/v1") as client:
            path = tmp_path / "result"
            size = await client.download_to(origin + "/r.png", path)
    assert calls == 2
    assert size == len(image) and path.read_bytes() == image


async def test_a_body_read_from_files_equals_one_from_memory(tmp_path: Path) -> None:
    """Promise: Wan receives the images the member sent. A create body whose images are read from
    their files while it is sent is byte for byte the body built from the bytes in memory, for
    sizes around the slice and read boundaries."""
    sizes = [1, SLICE - 1, SLICE, SLICE + 1, 4 * SLICE, 4 * SLICE + 2, 9 * SLICE + 5]
    for size in sizes:
        data = bytes((i * 7) % 256 for i in range(size))
        path = tmp_path / f"image-{size}"
        path.write_bytes(data)
        in_memory = StreamedBody({"images": [InlineImage("image/png", data)]})
        on_disk = StreamedBody({"images": [InlineImage("image/png", None, path)]})
        streamed = b"".join([c async for c in on_disk.chunks()])
        assert streamed == in_memory.to_bytes() == on_disk.to_bytes(), size
        assert len(on_disk) == len(in_memory) == len(streamed)


REPO = str(Path(__file__).resolve().parents[2])
# A bot run making one job folder, as a separate process: it exits at once ("exit", as a killed
# run: nothing cleaned up), or waits until its stdin closes ("wait", a run still going).
ANOTHER_RUN = """
import asyncio, os, sys, tempfile
tempfile.tempdir = sys.argv[1]
from bot.jobs.job_folders import JobFolder
path = asyncio.run(JobFolder(7, "results").__aenter__())
(path / "result-1").write_bytes(b"left behind")
print(path, flush=True)
if sys.argv[2] == "wait":
    sys.stdin.read()
os._exit(0)
"""


async def another_run(spool_dir: Path, mode: str) -> tuple[asyncio.subprocess.Process, Path]:
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ANOTHER_RUN,
        str(spool_dir),
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert run.stdout is not None
    return run, Path((await run.stdout.readline()).decode().strip())


async def test_a_start_removes_what_a_killed_run_left_and_nothing_else(
    world: World, spool_dir: Path
) -> None:
    """Promise: the bot does not fill the disk, and never pulls files from under a job. A run
    killed mid-job leaves its folders behind: the next start removes them, but not the folders of
    a run still going (several bot processes may share one temporary folder). Folders are named
    by a token drawn at each start, not by the process id: in a container every run is PID 1."""
    killed, left = await another_run(spool_dir, "exit")
    await killed.wait()
    alive, running = await another_run(spool_dir, "wait")
    # What a run killed in a container leaves: its process id was the one this run has now.
    same_pid = spool_dir / f"wanbot-{os.getpid()}-job8-inputs-def"
    same_pid.mkdir()
    try:
        assert left.is_dir() and running.is_dir()
        await start_bot(world)
        assert not left.exists() and not same_pid.exists() and running.exists()
    finally:
        assert alive.stdin is not None
        alive.stdin.close()
        await alive.wait()
