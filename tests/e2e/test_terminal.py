"""`python -m bot edit`: one edit from the terminal through the bot's own job path."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bot.config import load_settings
from bot.jobs import TERMINAL_SOURCE
from bot.sandbox import Emulator, FaultRule
from bot.store import Job, JobState, open_store
from bot.terminal import TERMINAL_SCOPE, TERMINAL_USER, EditArgs, run_edit
from tests.support.harness import API_KEY, World, png


def settings_for(emu: Emulator, db: Path):  # type: ignore[no-untyped-def]
    return load_settings(
        {
            "DASHSCOPE_API_KEY": API_KEY,
            "DASHSCOPE_BASE_URL": emu.base_url,
            "DATABASE_URL": f"sqlite:///{db}",
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


async def left_by_a_killed_edit(db: Path, prompt: str, *, task_id: str | None = None) -> Job:
    """An unfinished terminal job, as a killed `edit` leaves it (with its Wan task, if given)."""
    store = await open_store(f"sqlite:///{db}")
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
        return job
    finally:
        await store.close()


async def test_the_next_edit_ends_the_job_a_killed_edit_left(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A killed `edit` leaves its job unfinished, and no bot takes it up (next test): the next
    `edit` fails it, refunded."""
    db = tmp_path / "w.db"
    left = await left_by_a_killed_edit(db, "killed")
    photo = tmp_path / "p.png"
    photo.write_bytes(png())
    assert await run_edit(settings_for(emulator, db), EditArgs([photo], "again")) == 0
    store = await open_store(f"sqlite:///{db}")
    try:
        ended = await store.get_job(left.id)
        assert ended is not None and ended.state == JobState.FAILED
        assert ended.error_code == "Interrupted"
        assert (await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)).used == 1
    finally:
        await store.close()


async def test_a_bot_on_the_same_database_leaves_terminal_jobs_alone(world: World) -> None:
    """The bot's resume must not follow (or post to Discord) a job of `python -m bot edit`."""
    job = await left_by_a_killed_edit(
        world.db_path, "in a terminal", task_id="task-of-the-terminal"
    )
    bot = await world.start_bot()
    assert await bot.runner.resume() == 0
    stored = await bot.store.get_job(job.id)
    assert stored is not None and stored.state == JobState.SUBMITTED
    assert bot.runner.inflight.running == {}


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
