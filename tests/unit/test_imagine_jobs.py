"""Text-to-image jobs through the shipped job runner (a real sqlite file, the emulator over loopback,
the terminal's Surface), and `python -m bot imagine`.

A job's kind ("imagine") is kept in its options: the runner creates it on the text-to-image route
with no input, resumes it, finds its task in the text-to-image task list after a create whose
answer was lost, and charges the images delivered."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.config import load_settings
from bot.jobs import IMAGINE, JobRunner, JobSpec, kind_of
from bot.sandbox import Emulator, EmulatorConfig
from bot.store import JobState, Store, open_store
from bot.terminal import TERMINAL_SCOPE, TERMINAL_USER, FileSurface, ImagineArgs, run_imagine
from bot.wan import IMAGINE_MODEL, EditRequest, ImagineRequest, InputImage, WanClient
from tests.support.first_run import base_env, run_cli
from tests.support.harness import API_KEY, FAST_WAN, png
from tests.support.store import eventually

SCOPE, CHANNEL = 1, 10


@pytest.fixture(name="store")
async def store_fixture(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    yield store
    await store.close()


@contextlib.asynccontextmanager
async def running(
    store: Store, wan: WanClient, folder: Path, **options: Any
) -> AsyncIterator[tuple[JobRunner, FileSurface]]:
    surface = FileSurface(out=io.StringIO(), folder=folder)
    runner = JobRunner(store, wan, surface, **{"retry_delay": 0.01, **options})
    await runner.start()
    try:
        yield runner, surface
    finally:
        await runner.stop()


async def final(store: Store, job_id: int) -> Any:
    async def ended() -> bool:
        row = await store.get_job(job_id)
        return row is not None and row.finished

    await eventually(ended, within=15.0)
    return await store.get_job(job_id)


def imagine_spec(user: int, **fields: Any) -> JobSpec:
    spec = JobSpec(
        scope=SCOPE,
        guild_id=None,
        channel_id=CHANNEL,
        user_id=user,
        source="slash",
        prompt="a lighthouse at dusk",
        kind=IMAGINE,
    )
    for name, value in fields.items():
        setattr(spec, name, value)
    return spec


async def test_a_text_to_image_job_is_created_without_inputs_and_charged_what_it_delivered(
    store: Store, emulator: Emulator, tmp_path: Path
) -> None:
    async with (
        WanClient(API_KEY, emulator.base_url, **FAST_WAN) as wan,
        running(store, wan, tmp_path) as (runner, surface),
    ):
        job = await runner.submit(imagine_spec(5, count=2, seed=9, aspect="9:16"), [])
        row = await final(store, job.id)
    assert (row.state, row.generated, row.billed) == (JobState.DONE, 2, 2)
    assert kind_of(row) == IMAGINE and row.options["size"] == "960*1696"
    (task,) = emulator.tasks.values()
    assert task.request == {
        "model": IMAGINE_MODEL,
        "input": {"prompt": "a lighthouse at dusk"},
        "parameters": {
            "n": 2,
            "seed": 9,
            "size": "960*1696",
            "prompt_extend": True,
            "watermark": False,
        },
    }
    assert surface.written == [tmp_path / "imagine-1.png", tmp_path / "imagine-2.png"]
    assert Image.open(surface.written[0]).size == (960, 1696)
    status = await store.quota_status(SCOPE, 5)
    assert (status.used, status.held) == (2, 0)


async def test_without_a_ratio_a_text_to_image_job_is_square(
    store: Store, emulator: Emulator, tmp_path: Path
) -> None:
    async with (
        WanClient(API_KEY, emulator.base_url, **FAST_WAN) as wan,
        running(store, wan, tmp_path) as (runner, _surface),
    ):
        job = await runner.submit(imagine_spec(6), [])
        row = await final(store, job.id)
    assert row.state == JobState.DONE
    assert (row.options["aspect"], row.options["size"]) == ("1:1", "1280*1280")


async def test_resume_finds_the_text_to_image_task_of_an_unanswered_create(
    store: Store, emulator: Emulator, tmp_path: Path
) -> None:
    """The create was sent just before a stop and its answer never stored. An edit made in the
    same seconds does not confuse it: the text-to-image task list holds only its own task, which
    the next start adopts, follows and delivers; nothing is created again."""
    options = {**FAST_WAN, "request_timeout": 2.0}
    async with WanClient(API_KEY, emulator.base_url, **options) as wan:
        image = InputImage(data=png(400, 400), mime="image/png")
        await wan.create_task(EditRequest("someone else's edit", [image]))
        made = (await wan.create_task(ImagineRequest("lost answer"))).task_id
        sent = datetime.fromtimestamp(emulator.tasks[made].submitted_at - 0.2, UTC)
        reservation = await store.reserve(SCOPE, 7, 1)
        job = await store.create_job(
            scope=SCOPE,
            channel_id=CHANNEL,
            user_id=7,
            source="slash",
            prompt="lost answer",
            options=imagine_spec(7).options(),
            state=JobState.QUEUED,
            reservation_id=reservation.id,
        )
        await store.update_job(job.id, state=JobState.SUBMITTED, submitted_at=sent)
        async with running(store, wan, tmp_path, reconcile_margin=0.5) as (runner, surface):
            assert await runner.resume() == 1
            row = await final(store, job.id)
    assert (row.state, row.task_id, row.generated) == (JobState.DONE, made, 1)
    assert emulator.created_count == 2 and surface.written == [tmp_path / "imagine-1.png"]


def settings_for(emu: Emulator, db: Path) -> Any:
    return load_settings(
        {
            "DASHSCOPE_API_KEY": API_KEY,
            "DASHSCOPE_BASE_URL": emu.base_url,
            "DATABASE_URL": f"sqlite:///{db}",
            "WAN_PRICE_PER_IMAGE": "0.2",
            "WAN_PRICE_PER_IMAGE_T2I": "0.25",
        },
        dotenv_path=None,
        require_discord=False,
    )


async def test_imagine_writes_into_the_folder_and_prints_seed_time_and_cost(
    emulator: Emulator, tmp_path: Path
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = await run_imagine(
        settings_for(emulator, tmp_path / "w.db"),
        ImagineArgs("a red fox in snow", count=2, seed=3, aspect="16:9"),
        folder=tmp_path,
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[:2] == [str(tmp_path / "imagine-1.png"), str(tmp_path / "imagine-2.png")]
    assert lines[2].startswith("seed 3, 2 image(s) in ") and lines[2].endswith(", cost 0.5000 CNY")
    assert Image.open(tmp_path / "imagine-2.png").size == (1696, 960)
    assert "Wan is making the image" in err.getvalue()
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert (await store.quota_status(TERMINAL_SCOPE, TERMINAL_USER)).used == 2
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("prompt", "negative", "said"),
    [
        ("   ", None, "the prompt is empty: say what to make"),
        ("x" * 2001, None, "the prompt is 2001 characters; the limit is 2000"),
        ("ok", "n" * 501, "the negative prompt is 501 characters; the limit is 500"),
    ],
)
async def test_imagine_refuses_bad_prompts_before_anything_is_reserved(
    emulator: Emulator, tmp_path: Path, prompt: str, negative: str | None, said: str
) -> None:
    err = io.StringIO()
    args = ImagineArgs(prompt, negative_prompt=negative)
    code = await run_imagine(settings_for(emulator, tmp_path / "w.db"), args, err=err)
    assert code == 1 and err.getvalue() == f"wanbot: {said}\n"
    assert emulator.created_count == 0 and not (tmp_path / "w.db").exists()


async def test_a_model_the_key_may_not_use_is_explained_in_one_line(tmp_path: Path) -> None:
    config = EmulatorConfig(api_keys={API_KEY}, denied_models={IMAGINE_MODEL})
    async with Emulator(config) as emu:
        err = io.StringIO()
        code = await run_imagine(
            settings_for(emu, tmp_path / "w.db"), ImagineArgs("a fox"), folder=tmp_path, err=err
        )
    last = err.getvalue().strip().splitlines()[-1]
    assert code == 1
    assert last == (
        "wanbot: The bot's DashScope workspace may not use this model; please tell the bot's "
        "admin. Nothing was charged."
    )
    assert "Traceback" not in err.getvalue() and not (tmp_path / "imagine-1.png").exists()


async def test_the_readme_imagine_runs_from_the_command_line(tmp_path: Path) -> None:
    """The command as the README gives it: no key, no cost, files in the current folder; and
    turned off by the owner, it says so."""
    args = ["imagine", "--prompt", "a lighthouse on a cliff at dusk", "--aspect", "16:9"]
    args += ["--count", "2", "--sandbox"]
    result = await run_cli(*args, env=base_env(), cwd=tmp_path)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [str(tmp_path / "imagine-1.png"), str(tmp_path / "imagine-2.png")]
    assert Image.open(tmp_path / "imagine-1.png").size == (1696, 960)
    assert lines[2].startswith("seed ") and lines[2].endswith(", no cost (sandbox)")
    off = await run_cli(*args, env=base_env(WAN_TEXT_TO_IMAGE="false"), cwd=tmp_path)
    assert off.returncode == 1
    assert off.stderr.strip() == "wanbot: text-to-image is turned off (WAN_TEXT_TO_IMAGE=false)"
