"""`python -m bot edit`: one edit from the terminal through the bot's own job path."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from bot.config import load_settings
from bot.jobs import TERMINAL_SOURCE
from bot.sandbox import Emulator, FaultRule
from bot.store import Job, JobState, open_store
from bot.terminal import TERMINAL_SCOPE, TERMINAL_USER, EditArgs, run_edit
from tests.support.harness import API_KEY, World, png
from tests.support.store import Database, eventually, rows


def settings_for(emu: Emulator, db: Path | str, **env: str):  # type: ignore[no-untyped-def]
    return load_settings(
        {
            "DASHSCOPE_API_KEY": API_KEY,
            "DASHSCOPE_BASE_URL": emu.base_url,
            "DATABASE_URL": db if isinstance(db, str) else f"sqlite:///{db}",
            **env,
        },
        dotenv_path=None,
        require_discord=False,
    )


async def test_edit_writes_the_results_next_to_the_first_input(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The owner's main job in one command: the results land beside the input, the seed and time
    are printed, and the job is stored and settled like the bot's."""
    photo = tmp_path / "photo.jpg"
    Image.open(io.BytesIO(png(600, 400))).convert("RGB").save(photo, "JPEG")
    out, err = io.StringIO(), io.StringIO()
    code = await run_edit(
        settings_for(emulator, tmp_path / "w.db"),
        EditArgs(paths=[photo], prompt="make it snow", count=2, seed=7, aspect="16:9"),
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    written = [tmp_path / "photo.wan-1.png", tmp_path / "photo.wan-2.png"]
    assert out.getvalue().splitlines()[:2] == [str(p) for p in written]
    assert [Image.open(p).size for p in written] == [(1280, 720), (1280, 720)]
    assert out.getvalue().splitlines()[2].startswith("seed 7, 2 image(s) in ")
    assert "Wan is editing" in err.getvalue()
    assert emulator.created_count == 1
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        status = await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)
        assert status.used == 2 and status.held == 0
    finally:
        await store.close()


async def test_edit_says_what_went_wrong_in_one_line_and_exits_non_zero(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A missing file is refused before anything is sent; a task Wan fails ends with its reason."""
    settings = settings_for(emulator, tmp_path / "w.db")
    err = io.StringIO()
    code = await run_edit(settings, EditArgs([tmp_path / "nope.png"], "x"), err=err)
    assert code == 1 and err.getvalue().startswith("wanbot: Image 1 (")
    assert emulator.created_count == 0

    photo = tmp_path / "p.png"
    photo.write_bytes(png())
    emulator.add_fault(FaultRule(op="task", task_code="DataInspectionFailed"))
    err = io.StringIO()
    code = await run_edit(settings, EditArgs([photo], "something refused"), err=err)
    last = err.getvalue().strip().splitlines()[-1]
    assert code == 1 and last.startswith("wanbot: ") and "Nothing was charged" in last
    assert not (tmp_path / "p.wan-1.png").exists()


async def terminal_job(
    db: Path, prompt: str, *, task_id: str | None = None, held_for: float | None = None
) -> Job:
    """An unfinished terminal job (with its Wan task, if given), held by its `edit` for
    `held_for` more seconds (negative: a hold that ran out; None: never held)."""
    # A hold that ran out: taken a minute ago.
    ago = timedelta(minutes=1) if held_for is not None and held_for < 0 else timedelta(0)
    store = await open_store(f"sqlite:///{db}", clock=lambda: datetime.now(UTC) - ago)
    try:
        reservation = await store.reserve(TERMINAL_SCOPE, TERMINAL_USER, 1)
        job = await store.create_job(
            scope=TERMINAL_SCOPE,
            guild_id=None,
            channel_id=0,
            user_id=TERMINAL_USER,
            source=TERMINAL_SOURCE,
            prompt=prompt,
            options={"count": 1},
            inputs=[],
            state=JobState.QUEUED,
            reservation_id=reservation.id,
        )
        if task_id is not None:
            await store.set_task_id(job.id, task_id)
        if held_for is not None:
            assert await store.hold_jobs(prompt, [job.id], abs(held_for)) == {job.id}
        return job
    finally:
        await store.close()


async def test_the_next_edit_ends_the_job_a_killed_edit_left(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`edit` killed with kill -9 mid-task leaves its job held by a process that is gone: once
    that hold has run out, the next `edit` fails it, refunded."""
    from tests.support.first_run import base_env, running_cli

    db = tmp_path / "w.db"
    env = base_env(
        DASHSCOPE_API_KEY=API_KEY,
        DASHSCOPE_BASE_URL=emulator.base_url,
        DATABASE_URL=f"sqlite:///{db}",
        WANBOT_LEASE_SECONDS="1",
        WAN_TASK_SECONDS="0.1-1",
    )
    (tmp_path / "killed.png").write_bytes(png())
    emulator.hold("running")
    args = ("edit", "killed.png", "--prompt", "killed mid-task")
    async with running_cli(*args, env=env, cwd=tmp_path) as edit:
        await edit.wait_for_line("Wan is editing")
        edit.process.kill()
        await edit.process.wait()
    emulator.release("running")
    [left] = rows(db, "SELECT id, state, lease_owner FROM jobs")
    assert left[1] == "running" and left[2] is not None  # held by the killed process

    def hold_ran_out() -> bool:
        [(expires,)] = rows(db, "SELECT lease_expires_at FROM jobs WHERE id = ?", left[0])
        return datetime.fromisoformat(expires) < datetime.now(UTC)

    await eventually(hold_ran_out, within=10)
    photo = tmp_path / "p.png"
    photo.write_bytes(png())
    assert await run_edit(settings_for(emulator, db), EditArgs([photo], "again")) == 0
    store = await open_store(f"sqlite:///{db}")
    try:
        ended = await store.get_job(left[0])
        assert ended is not None and ended.state == JobState.FAILED
        assert ended.error_code == "Interrupted"
        # Its task was at Wan, followed by nobody: what it asked for counts as billed (caps).
        assert ended.billed == 1
        status = await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)
        assert (status.used, status.held) == (1, 0)
    finally:
        await store.close()


async def test_an_edit_stopped_while_wan_works_counts_its_images_against_the_caps(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Ctrl-C while Wan edits: the job ends here, the owner is told it may still be billed, and
    the images asked for count against the bot-wide day (nobody will follow the task)."""
    db = tmp_path / "w.db"
    photo = tmp_path / "stop.png"
    photo.write_bytes(png())
    err = io.StringIO()
    emulator.hold("running")
    edit = asyncio.create_task(
        run_edit(settings_for(emulator, db), EditArgs([photo], "stopped", count=2), err=err)
    )
    await emulator.wait_for_task_count(1, timeout=15)
    await eventually(lambda: "Wan is editing" in err.getvalue(), within=15)
    edit.cancel()  # what asyncio.run does on Ctrl-C
    try:
        await edit
    except asyncio.CancelledError:
        pass
    emulator.release("running")
    assert "may still be billed" in err.getvalue()
    store = await open_store(f"sqlite:///{db}")
    try:
        [job] = await store.jobs_for_user(TERMINAL_USER, limit=1)
        assert job.state == JobState.FAILED and job.billed == 2
        status = await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)
        assert (status.used, status.held) == (0, 0)
        assert (await store.server_totals(TERMINAL_SCOPE)).billed == 2
    finally:
        await store.close()


async def test_two_edits_at_once_on_one_database_both_finish(
    emulator: Emulator, database: Database, tmp_path: Path
) -> None:
    """An edit started while another runs on the same database ends only jobs whose process is
    gone, never the running one's: both finish, each charged once."""
    settings = settings_for(emulator, database.url, WAN_MAX_CONCURRENT_TASKS="2")
    paths = [tmp_path / "one.png", tmp_path / "two.png"]
    for path in paths:
        path.write_bytes(png())
    errs = [io.StringIO(), io.StringIO()]
    emulator.hold("running")
    first = asyncio.create_task(
        run_edit(settings, EditArgs([paths[0]], "first"), out=io.StringIO(), err=errs[0])
    )
    await emulator.wait_for_task_count(1, timeout=15)
    second = asyncio.create_task(
        run_edit(settings, EditArgs([paths[1]], "second"), out=io.StringIO(), err=errs[1])
    )
    await emulator.wait_for_task_count(2, timeout=15)
    emulator.release("running")
    assert await first == 0, errs[0].getvalue()
    assert await second == 0, errs[1].getvalue()
    assert (tmp_path / "one.wan-1.png").is_file() and (tmp_path / "two.wan-1.png").is_file()
    store = await open_store(database.url)
    try:
        status = await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)
        assert (status.used, status.held) == (2, 0)
    finally:
        await store.close()


async def test_a_bot_on_the_same_database_leaves_terminal_jobs_alone(world: World) -> None:
    """The bot's resume never follows (or posts to Discord) a job of `python -m bot edit`; it
    ends, refunded, only one whose process is gone (its hold ran out)."""
    running = await terminal_job(
        world.db_path, "running", task_id="task-of-the-terminal", held_for=60
    )
    unheld = await terminal_job(world.db_path, "never held", task_id="task-2")
    killed = await terminal_job(world.db_path, "killed", task_id="task-3", held_for=-1)
    bot = await world.start_bot()
    assert await bot.runner.resume() == 0
    for job in (running, unheld):
        stored = await bot.store.get_job(job.id)
        assert stored is not None and stored.state == JobState.SUBMITTED
    ended = await bot.store.get_job(killed.id)
    assert ended is not None and ended.state == JobState.FAILED
    assert ended.error_code == "Interrupted"
    assert bot.runner.inflight.running == {}
    assert (await bot.store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)).held == 2


async def test_the_readme_quick_start_edit_runs_from_the_command_line(tmp_path: Path) -> None:
    """The README's first try of Wan without Discord, exactly as written (sandbox timings)."""
    from tests.support.first_run import base_env, run_cli

    Image.open(io.BytesIO(png(600, 450))).convert("RGB").save(tmp_path / "photo.jpg", "JPEG")
    result = await run_cli(
        "edit", "photo.jpg", "--prompt", "make it snow", "--sandbox", env=base_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.output
    assert (tmp_path / "photo.wan-1.png").is_file()
    assert result.stdout.splitlines()[0] == str(tmp_path / "photo.wan-1.png")
    assert "image(s) in" in result.stdout and "Wan is editing" in result.stderr
