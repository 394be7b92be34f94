"""`python -m bot edit` and `python -m bot imagine`: one edit, or one image made from a prompt,
from the terminal, through the same job runner the bot uses.

`FileSurface` is the runner's `Surface` for a terminal: progress goes to stderr, an edit's results
are written next to the first input (`NAME.wan-1.png`, ...), an imagined one's in the current folder
(`imagine-1.png`, ...). No Discord is involved. The job is this process's alone: it holds it in the
store while it runs (so no other process takes it for abandoned), and on PostgreSQL it waits for a
Wan slot and keeps DashScope's limits with the bot processes on the database, which never run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot import images
from bot.config import Settings, store_limits
from bot.images import CheckedImage, ImageRejected
from bot.jobs import (
    IMAGINE,
    TERMINAL_SOURCE,
    Delivery,
    JobRefused,
    JobRunner,
    JobSpec,
    Posted,
    Progress,
    kind_of,
)
from bot.jobs.models import TERMINAL_INTERRUPTED
from bot.jobs.outages import store_trouble
from bot.jobs.shared import shared_parts
from bot.store import Job, JobState, LeaseLost, Store, StoreError, open_store
from bot.store.models import BOT_SCOPE
from bot.wan import PollConfig, WanClient
from bot.wan.models import MAX_NEGATIVE, MAX_PROMPT

log = logging.getLogger(__name__)

# The terminal's jobs live beside the bot's in the same store, in the owner's own scope (server ids
# are positive snowflakes, DMs are 0): no member limit, but the bot-wide cap and the pause apply,
# and they count in the usage report.
TERMINAL_SCOPE = BOT_SCOPE
TERMINAL_USER = 0
INTERRUPTED = TERMINAL_INTERRUPTED
STAGES = {
    "queued": "queued, waiting for a free Wan slot",
    "pending": "sent to Wan, waiting for a free slot",
    "running": "Wan is editing",
    "delivering": "downloading the results",
}


@dataclass
class FileSurface:
    """Writes an edit's results next to its first input (an imagined image's in `folder`) and tells
    the terminal how the job goes."""

    out: TextIO = sys.stderr
    folder: Path = field(default_factory=Path.cwd)
    written: list[Path] = field(default_factory=list)
    failure: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    delivery: Delivery | None = None
    _last: str = ""

    async def progress(self, job: Job, progress: Progress) -> None:
        line = STAGES.get(progress.stage, progress.stage)
        if progress.stage == "running" and kind_of(job) == IMAGINE:
            line = "Wan is making the image"
        if progress.stage == "queued" and progress.position:
            line = f"queued (position {progress.position})"
        if line != self._last:
            self._last = line
            print(f"job #{job.id}: {line}", file=self.out, flush=True)

    async def deliver(self, job: Job, delivery: Delivery) -> Posted:
        paths = []
        for index, result in enumerate(delivery.files, start=1):
            # The file type is what Wan sent, whatever the input was.
            suffix = ".png" if result.head.startswith(b"\x89PNG") else ".jpg"
            if kind_of(job) == IMAGINE:
                path = self.folder / f"imagine-{index}{suffix}"
            else:
                first = Path(job.inputs[0]["path"])
                path = first.with_name(f"{first.stem}.wan-{index}{suffix}")
            await asyncio.to_thread(shutil.copyfile, result.path, path)
            paths.append(path)
        self.written = paths
        self.delivery = delivery
        self.ended.set()
        return Posted([])

    async def delivered(self, job: Job, message_ids: list[int]) -> None:
        pass  # the files are written: nothing to touch up

    async def finished_without_result(self, job: Job, text: str) -> None:
        self.failure = text
        self.ended.set()

    def forget(self, job_id: int) -> None:
        pass  # nothing kept per job

    async def fetch_inputs(self, job: Job) -> list[CheckedImage]:
        return await load_files([Path(row["path"]) for row in job.inputs])


async def load_files(paths: list[Path]) -> list[CheckedImage]:
    """Read and check the input files like the bot checks attachments (decoding in a thread)."""
    checked = []
    for index, path in enumerate(paths, start=1):
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as err:
            raise ImageRejected(f"Image {index} ({path}): {err.strerror or err}") from None
        images.precheck(index, path.name, None, len(data))
        checked.append(await images.check(index, path.name, data))
    return checked


async def follow(
    store: Store, runner: JobRunner, surface: FileSurface, job_id: int, owner: str, ttl: float
) -> None:
    """Wait for the job's end, renewing this process's hold on it every third of `ttl`, so that
    no other process takes it for abandoned. Also returns when the hold is gone and the runner no
    longer runs the job: another process ended it (this one had stalled past its hold)."""
    while not surface.ended.is_set():
        try:
            held = job_id in await store.hold_jobs(owner, [job_id], ttl)
        except Exception as err:
            # Tried again next beat (the hold lasts three): the database away for a moment is
            # logged once, at each edge of the outage.
            if store_trouble(err):
                runner.outage.failed(err)
            else:
                log.exception("job %d: could not renew its hold", job_id)
            held = True
        else:
            runner.outage.ok()
        if not held and not runner.following(job_id):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(surface.ended.wait(), ttl / 3)


@dataclass(frozen=True)
class EditArgs:
    paths: list[Path]
    prompt: str
    count: int = 1
    seed: int | None = None
    negative_prompt: str | None = None
    aspect: str | None = None


@dataclass(frozen=True)
class ImagineArgs:
    prompt: str
    count: int = 1
    seed: int | None = None
    negative_prompt: str | None = None
    aspect: str | None = None  # None: square


async def run_edit(
    settings: Settings,
    args: EditArgs,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    sandbox: bool = False,
) -> int:
    """Run one edit to its end; 0 when the results were written, 1 with one line otherwise."""
    try:
        checked = await load_files(args.paths)
    except ImageRejected as rejected:
        print(f"wanbot: {rejected}", file=err)
        return 1
    spec = _spec(args.prompt, args.count, args.seed, args.negative_prompt, args.aspect)
    spec.inputs = [{"path": str(p.resolve()), "filename": p.name} for p in args.paths]
    surface = FileSurface(out=err)
    return await _run(settings, spec, checked, surface, out=out, err=err, sandbox=sandbox)


async def run_imagine(
    settings: Settings,
    args: ImagineArgs,
    *,
    folder: Path | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    sandbox: bool = False,
) -> int:
    """Make images from `args.prompt` (text-to-image) into `folder` (default: the current one);
    0 when they were written, 1 with one line otherwise."""
    prompt = args.prompt.strip()
    negative = (args.negative_prompt or "").strip() or None
    problem = (
        "the prompt is empty: say what to make"
        if not prompt
        else f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT}"
        if len(prompt) > MAX_PROMPT
        else f"the negative prompt is {len(negative)} characters; the limit is {MAX_NEGATIVE}"
        if negative is not None and len(negative) > MAX_NEGATIVE
        else None
    )
    if problem is not None:
        print(f"wanbot: {problem}", file=err)
        return 1
    spec = _spec(prompt, args.count, args.seed, negative, args.aspect)
    spec.kind = IMAGINE
    surface = FileSurface(out=err, folder=folder or Path.cwd())
    return await _run(settings, spec, [], surface, out=out, err=err, sandbox=sandbox)


def _spec(
    prompt: str, count: int, seed: int | None, negative: str | None, aspect: str | None
) -> JobSpec:
    return JobSpec(
        scope=TERMINAL_SCOPE,
        guild_id=None,
        channel_id=0,
        user_id=TERMINAL_USER,
        source=TERMINAL_SOURCE,
        prompt=prompt,
        count=count,
        negative_prompt=negative,
        seed=seed if seed is not None else random.randint(0, 2**31 - 1),
        aspect=aspect,
    )


async def _run(
    settings: Settings,
    spec: JobSpec,
    checked: list[CheckedImage],
    surface: FileSurface,
    *,
    out: TextIO,
    err: TextIO,
    sandbox: bool,
) -> int:
    """Submit one job and follow it to its end; print the files written, then the seed, the time
    and the cost (none in the sandbox)."""
    try:
        store: Store = await open_store(
            settings.database_url,
            default_daily_limit=settings.default_daily_limit,
            limits=store_limits(settings),
        )
    except StoreError as refused:
        print(f"wanbot: {refused}", file=err)
        return 1
    # On PostgreSQL: the database's Wan slots and DashScope limits, with every bot process on it.
    queue, gates = shared_parts(store, settings, own_jobs=True)
    owner = queue.owner if queue is not None else uuid.uuid4().hex
    assert settings.dashscope_api_key is not None
    wan = WanClient(
        settings.dashscope_api_key,
        settings.dashscope_base_url,
        model=settings.wan_model,
        transport="base64",  # files on this machine: Wan can't fetch them by URL
        query_qps=settings.query_qps,
        request_timeout=settings.request_timeout,
        poll_config=PollConfig.for_tasks(*settings.task_seconds),
        **gates,
    )
    # No member limits for the owner's own tool: jobs one at a time, however many are left over.
    runner = JobRunner(store, wan, surface, max_concurrent=1, max_jobs_per_user=1_000, queue=queue)
    started = time.monotonic()
    job: Job | None = None
    final: Job | None = None
    try:
        # What killed edits left: only jobs whose process no longer holds them, never those of
        # another edit still running on this database.
        await runner.end_abandoned()
        await wan.start()
        await runner.start()
        try:
            job = await runner.submit(spec, checked)
        except JobRefused as refused:
            print(f"wanbot: {refused}", file=err)
            return 1
        await follow(store, runner, surface, job.id, owner, settings.lease_seconds)
        # The runner settles the job just after the delivery; stop lets that finish.
        await runner.stop()
        final = await store.get_job(job.id)
    finally:
        # Taken before the stop hands it back: the job's own end is then fenced like any write.
        lease = runner.queue.lease(job.id) if job is not None else None
        await runner.stop()
        if job is not None and final is None:
            # Ctrl-C: end the job here (refunded), since no bot process will deliver it. (Lost:
            # another process has ended it already, the same way.) A task Wan had already taken
            # may still be billed: every image asked for counts against the caps.
            fresh = await store.get_job(job.id) or job
            started_at_wan = bool(job.task_id or fresh.task_id)
            billed = fresh.billed if fresh.billed is not None or not started_at_wan else spec.count
            with contextlib.suppress(LeaseLost):
                await store.finish_job(
                    job.id,
                    JobState.FAILED,
                    error_code="Interrupted",
                    error_message=INTERRUPTED,
                    billed=billed,
                    lease=lease,
                )
            if started_at_wan:
                print(f"wanbot: {INTERRUPTED}", file=err)
        await wan.close()
        await store.close()
    if surface.failure is not None or final is None or final.state != JobState.DONE:
        reason = surface.failure or (final and final.error_message) or "the job did not finish"
        print(f"wanbot: {reason}", file=err)
        return 1
    for path in surface.written:
        print(path, file=out)
    elapsed = time.monotonic() - started
    images_made = len(surface.written)
    # What Wan billed for this task (its usage), at the configured price of its model.
    billed = final.billed if final.billed is not None else images_made
    price = settings.price_for(spec.kind)
    spent = (
        ", no cost (sandbox)"
        if sandbox
        else f", cost {billed * price:.4f} {settings.price_currency}"
        if price is not None
        else ", cost unknown (set WAN_PRICE_PER_IMAGE)"
    )
    print(f"seed {spec.seed}, {images_made} image(s) in {elapsed:.0f} s{spent}", file=out)
    return 0
