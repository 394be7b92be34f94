"""End to end under load: N users run /wanedit at once; how much time does the bot add?

    python bench/e2e.py [--jobs 50] [--mode account|burst|both] [--running 2.0]

(about 75 s per mode on 2 cores)

The bot runs as a subprocess (`python -m bot`, cwd a temp folder so no .env is read, its own sqlite
file) against the loopback fake Discord and the Wan emulator, which both run in this process. Each of
N distinct users sends `/wanedit` with three noise PNGs of 3-4 MB (1600-2000 px) at the same moment.
Every Wan task runs `--running` seconds, and both clients are told so (WAN_TASK_SECONDS from half to
1.5 times it); results are ~1280*1280 PNGs (the real service's size).

Added latency of a job = the Wan task ended on the emulator (`ended_at`) -> the bot's result message
with its files is stored by the fake Discord. It is split into `detect` (ended -> the first status
query after the end reaches the emulator) and `deliver` (that query -> files visible).

Modes:
- `account` (the default): the real account's limits: 5 tasks run at once at Wan, 5 creates/s,
  20 queries/s, and the bot's defaults (WAN_MAX_CONCURRENT_TASKS=5, WAN_QUERY_QPS=10). 50 jobs are
  in the bot at once, 45 of them in its own queue; results arrive 5 at a time.
- `burst` (a stress, same targets): all N tasks at Wan at once (max_running=N,
  WAN_MAX_CONCURRENT_TASKS=N, WAN_QUERY_QPS=20), so N results land within a fraction of a second
  and N deliveries overlap. No real account runs 50 tasks at once, and on 2 cores the emulator's
  own work (decoding 3N inputs, rendering N results) competes with the bot for the CPU.

Baseline, side by side in the same run: the same N tasks on a fresh emulator with the same settings,
created, waited on and downloaded by a bare `WanClient` in a subprocess (bench/_e2e_baseline.py),
with the same concurrency cap. `bot - bare` is what the bot adds over the minimum.

Targets (at 50 jobs, in every mode run; exit status 1 if one is missed or a job is not delivered):
p95 added latency at most 0.8 s, peak RSS (VmHWM) of the bot process at most 150 MB, the bot's
wall time at most 1.10 times the bare client's (Wan's slots kept busy), and its CPU seconds at most
4 times the bare client's. The ratios to the bare client (wall time, peak RSS, CPU) are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _e2e_support import (
    RssSampler,
    SlotGaps,
    TaskTimes,
    cpu_seconds,
    make_inputs,
    percentile,
    slot_gaps,
    task_times,
)

from bot.sandbox import Emulator, EmulatorConfig
from tests.support.fake_discord import Channel, FakeDiscord, Guild, User

ROOT = Path(__file__).resolve().parent.parent

KEY = "sk-bench-e2e"
MENTION = re.compile(r"<@!?(\d+)>")
RESULT_AREA = 1280 * 1280  # the real service's output size (the emulator's default is smaller)
TARGET_P95 = 0.8
TARGET_RSS_MB = 150.0
TARGET_WALL_RATIO = 1.10
TARGET_CPU_RATIO = 4.0
PHASE_TIMEOUT = 150.0
# Settings the bot must not pick up from the environment of whoever runs the bench.
OWN_PREFIXES = ("DISCORD_", "DASHSCOPE_", "WAN_", "WANBOT_", "DATABASE_URL")


def task_seconds(running: float) -> str:
    """WAN_TASK_SECONDS for the emulator's tasks, as the owner of a faster endpoint would set it
    (the default, 30-120 s, is Wan's own): both clients plan their first polls from it."""
    return f"{running / 2:g}-{running * 1.5:g}"


@dataclass(frozen=True)
class Scenario:
    name: str
    wan_slots: int  # emulator max_running
    bot_concurrency: int  # WAN_MAX_CONCURRENT_TASKS (and the baseline's cap)
    bot_qps: float  # WAN_QUERY_QPS
    submit_rps: float | None
    query_qps: float | None

    def emulator_config(self, running: float) -> EmulatorConfig:
        return EmulatorConfig(
            api_keys={KEY},
            running_seconds=running,
            max_running=self.wan_slots,
            submit_rps=self.submit_rps,
            query_qps=self.query_qps,
            result_area=RESULT_AREA,
        )


def scenario(mode: str, jobs: int) -> Scenario:
    if mode == "account":
        return Scenario("account", 5, 5, 10.0, 5.0, 20.0)
    width = min(jobs, 50)  # WAN_MAX_CONCURRENT_TASKS allows at most 50
    return Scenario("burst", width, width, 20.0, None, 20.0)


@dataclass
class Phase:
    """What one run (the bot or the bare client) measured."""

    name: str
    latencies: list[float] = field(default_factory=list)
    detect: list[float] = field(default_factory=list)
    deliver: list[float] = field(default_factory=list)
    wall: float = float("nan")  # first create reaches Wan -> last result (comparable across runs)
    intake_wall: float = float("nan")  # bot only: /wanedit dispatched -> last result visible
    hwm_mb: float = 0.0
    idle_mb: float = 0.0
    cpu_s: float = 0.0  # bot: from start-up done to the last result; bare: the whole process
    peak_note: str = ""
    result_mb: float = 0.0
    delivered: int = 0
    expected: int = 0
    gaps: SlotGaps = field(default_factory=SlotGaps)
    problems: list[str] = field(default_factory=list)

    def add(self, times: TaskTimes, visible_at: float) -> None:
        self.latencies.append(visible_at - times.ended_at)
        if times.first_poll_after_end is not None:
            self.detect.append(times.first_poll_after_end - times.ended_at)
            self.deliver.append(visible_at - times.first_poll_after_end)


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(values)
    return env


def mono_to_wall() -> float:
    return time.time() - time.monotonic()


# ---- the bot ------------------------------------------------------------------------------------


@dataclass
class Server:
    fd: FakeDiscord
    guild: Guild
    channel: Channel
    admin: User
    users: list[User]


async def make_server(jobs: int) -> Server:
    fd = FakeDiscord()
    await fd.start()
    admin = fd.add_user("admin")
    guild = fd.add_guild("Bench server", owner=admin)
    channel = fd.add_text_channel(guild, "general")
    fd.add_member(guild, admin, permissions=1 << 5)
    users = []
    for i in range(jobs):
        user = fd.add_user(f"user{i}")
        fd.add_member(guild, user, permissions=0)
        users.append(user)
    return Server(fd, guild, channel, admin, users)


def results_by_user(server: Server) -> dict[int, Any]:
    """The bot's stored result messages (files attached, requester mentioned), by user id."""
    bot_id = server.fd.bot_user.id
    wanted = {u.id for u in server.users}
    found: dict[int, Any] = {}
    # Called on every change of the fake's state while waiting: one pass, no per-user scans.
    for msg in list(server.fd.world.messages.values()):
        if msg.author.id != bot_id or not msg.attachments or msg.deleted:
            continue
        for raw in MENTION.findall(msg.content):
            user_id = int(raw)
            if user_id in wanted and user_id not in found:
                found[user_id] = msg
    return found


async def run_bot(
    sc: Scenario, jobs: int, running: float, inputs: list[bytes], work: Path, *, trace: bool = False
) -> Phase:
    phase = Phase("bot (python -m bot)", expected=jobs)
    server = await make_server(jobs)
    fd = server.fd
    emu = Emulator(sc.emulator_config(running))
    await emu.start()
    folder = work / f"bot-{sc.name}"
    folder.mkdir()
    log_path = folder / "bot.log"
    env = clean_env(
        DISCORD_TOKEN=fd.token,
        DISCORD_API_BASE=fd.api_base,
        DASHSCOPE_BASE_URL=emu.base_url,
        DASHSCOPE_API_KEY=KEY,
        DATABASE_URL=f"sqlite:///{folder / 'wanbot.db'}",
        WAN_MAX_JOBS_PER_USER="2",
        WAN_DEFAULT_DAILY_LIMIT="1000",
        WAN_MAX_CONCURRENT_TASKS=str(sc.bot_concurrency),
        WAN_QUERY_QPS=str(sc.bot_qps),
        WAN_TASK_SECONDS=task_seconds(running),
        WANBOT_LOG_LEVEL="INFO",
        WANBOT_TRACE_OUT=str(folder / "trace.json"),
    )
    command = [str(ROOT / "bench" / "_e2e_trace.py")] if trace else ["-m", "bot"]
    log = log_path.open("wb")  # handed to the child as its stdout and stderr
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *command, cwd=folder, env=env, stdout=log, stderr=log
        )
    finally:
        log.close()
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        await ready(server, proc)
        phase.idle_mb = sampler.samples[-1][1] if sampler.samples else 0.0
        idle_cpu = cpu_seconds(proc.pid) or 0.0
        uploads = [
            [
                fd.add_cdn_file(data, f"input{k + 1}.png", "image/png")
                for k, data in enumerate(inputs)
            ]
            for _ in range(jobs)
        ]
        prompts = {
            u.id: f"bench job {i}: turn it into a watercolour" for i, u in enumerate(server.users)
        }
        started = time.time()
        await asyncio.gather(
            *(
                fd.slash(
                    server.guild,
                    server.channel,
                    user,
                    "wanedit",
                    {"prompt": prompts[user.id], "image": up[0], "image2": up[1], "image3": up[2]},
                )
                for user, up in zip(server.users, uploads, strict=True)
            )
        )
        with contextlib.suppress(TimeoutError):
            await fd.wait_until(
                lambda: proc.returncode is not None or len(results_by_user(server)) >= jobs,
                PHASE_TIMEOUT,
            )
        if proc.returncode is not None:
            phase.problems.append(f"the bot exited with status {proc.returncode}")
        phase.hwm_mb = sampler.hwm_mb()
        phase.cpu_s = sampler.cpu_s - idle_cpu
        found = results_by_user(server)
        phase.delivered = len(found)
        by_id = task_times(emu, mono_to_wall())
        phase.gaps = slot_gaps(emu, sc.wan_slots, by_id, mono_to_wall())
        times = {t.prompt: t for t in by_id.values()}
        for user_id, msg in found.items():
            t = times.get(prompts[user_id])
            if t is None:
                phase.problems.append(f"no Wan task for user {user_id}'s result")
                continue
            phase.add(t, msg.timestamp)
        if found:
            last = max(m.timestamp for m in found.values())
            phase.intake_wall = last - started
            phase.wall = last - min(t.submitted_at for t in emu.tasks.values())
            sizes = [len(a.data) for m in found.values() for a in m.attachments]
            phase.result_mb = sum(sizes) / len(sizes) / 1e6
            phase.peak_note = peak_note(sampler, started, min(t.ended_at for t in times.values()))
        if phase.delivered < jobs:
            phase.problems.append(f"{jobs - phase.delivered} of {jobs} results never arrived")
    except (RuntimeError, TimeoutError) as err:
        phase.problems.append(f"{type(err).__name__}: {err}")
    finally:
        await sampler.stop()
        await stop(proc)
        await emu.close()
        await fd.close()
    if trace:
        print_trace(
            folder / "trace.json", started_at=sampler.samples[0][0] if sampler.samples else 0
        )
    if phase.problems:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        phase.problems.append("bot log tail:\n    " + "\n    ".join(tail))
    return phase


async def ready(server: Server, proc: asyncio.subprocess.Process) -> None:
    """Connected (IDENTIFY/READY), commands synced, and answering interactions."""
    fd = server.fd
    await fd.wait_until(lambda: proc.returncode is not None or fd.gateway.connected, 120)
    await fd.wait_until(lambda: proc.returncode is not None or fd.command_sync_count >= 1, 60)
    if proc.returncode is not None:
        raise RuntimeError(f"the bot exited with status {proc.returncode} while starting")
    probe = await fd.slash(
        server.guild, server.channel, server.admin, "wanquota", {}, subcommand="show"
    )
    await probe.wait_for(lambda ix: any(m.get("embeds") for m in ix.messages), 15)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# ---- the bare client ----------------------------------------------------------------------------


async def run_bare(
    sc: Scenario, jobs: int, running: float, inputs: list[bytes], work: Path
) -> Phase:
    phase = Phase("bare WanClient", expected=jobs)
    folder = work / f"bare-{sc.name}"
    folder.mkdir()
    paths = []
    for k, data in enumerate(inputs):
        path = folder / f"input{k + 1}.png"
        path.write_bytes(data)
        paths.append(str(path))
    emu = Emulator(sc.emulator_config(running))
    await emu.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "_e2e_baseline.py"),
            emu.base_url,
            *paths,
            "--jobs",
            str(jobs),
            "--concurrency",
            str(sc.bot_concurrency),
            "--qps",
            str(sc.bot_qps),
            "--task-seconds",
            task_seconds(running),
            cwd=folder,
            env=clean_env(DASHSCOPE_API_KEY=KEY),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        sampler = RssSampler(proc.pid)
        sampler.start()
        # Read the high-water mark just before the process exits: wait for its output first.
        out, err = await asyncio.wait_for(proc.communicate(), PHASE_TIMEOUT)
        await sampler.stop()
        phase.hwm_mb = sampler.last_hwm_kb / 1024 if sampler.last_hwm_kb else 0.0
        phase.cpu_s = sampler.cpu_s
        if sampler.samples:
            phase.peak_note = f"peak sampled RSS {sampler.peak_sampled_mb():.0f} MB"
        if proc.returncode != 0:
            phase.problems.append(f"baseline failed: {err.decode(errors='replace')[-800:]}")
            return phase
        report = json.loads(out)
        times = task_times(emu, mono_to_wall())
        phase.gaps = slot_gaps(emu, sc.wan_slots, times, mono_to_wall())
        for task_id, done_at in report["done"].items():
            phase.add(times[task_id], done_at)
        phase.delivered = len(report["done"])
        phase.problems += report["failed"]
        creates = [t.submitted_at for t in emu.tasks.values()]
        if report["done"]:
            phase.wall = max(report["done"].values()) - min(creates)
    finally:
        await emu.close()
    return phase


def print_trace(path: Path, *, started_at: float) -> None:
    """The allocation sites alive at the bot's highest RSS (see bench/_e2e_trace.py)."""
    if not path.exists():
        print(f"no trace written ({path.name} missing)")
        return
    data = json.loads(path.read_text())
    print("\n-- tracemalloc in the bot process (slows it down: its times are not the bench's) --")
    for peak in data["peaks"][-3:]:
        print(
            f"RSS {peak['rss_mb']:.0f} MB at +{peak['at'] - started_at:.1f} s after the bot started;"
            f" traced by Python {peak['traced_mb']:.0f} MB (the rest: C buffers, allocator, code)"
        )
        for where, mb, blocks in peak["sites"]:
            print(f"  {mb:7.1f} MB {blocks:7d} blocks  {where}")


# ---- report -------------------------------------------------------------------------------------


def peak_note(sampler: RssSampler, dispatched: float, first_end: float) -> str:
    """When the sampled RSS peaked: while taking the requests in, or while jobs ran and delivered."""
    if not sampler.samples:
        return ""
    at, mb = max(sampler.samples, key=lambda s: s[1])
    before = max((m for t, m in sampler.samples if t < first_end), default=0.0)
    return (
        f"peak sampled RSS {mb:.0f} MB at +{at - dispatched:.1f} s after dispatch; "
        f"before the first task ended (intake, queueing, first creates): {before:.0f} MB"
    )


def fmt(values: list[float]) -> str:
    return f"{percentile(values, 0.5):5.2f} {percentile(values, 0.95):5.2f}"


@dataclass
class Verdict:
    """One bot run against the bare runs just before and after it (the in-run baseline)."""

    p95: float
    p95_ratio: float
    wall_ratio: float
    hwm_mb: float
    done: bool
    load: float
    cpu_ratio: float = float("nan")

    def checks(self) -> list[tuple[str, bool]]:
        return [
            (f"p95 added latency {self.p95:.2f} s <= {TARGET_P95} s", self.p95 <= TARGET_P95),
            (
                f"peak RSS {self.hwm_mb:.0f} MB <= {TARGET_RSS_MB:.0f} MB",
                self.hwm_mb <= TARGET_RSS_MB,
            ),
            (
                f"wall time ratio {self.wall_ratio:.2f} <= {TARGET_WALL_RATIO}",
                self.wall_ratio <= TARGET_WALL_RATIO,
            ),
            (
                f"CPU time ratio {self.cpu_ratio:.2f} <= {TARGET_CPU_RATIO:g}",
                self.cpu_ratio <= TARGET_CPU_RATIO,
            ),
            ("all delivered", self.done),
        ]


def mean(values: list[float]) -> float:
    values = [v for v in values if v == v]  # not NaN
    return sum(values) / len(values) if values else float("nan")


def verdict_line(v: Verdict) -> str:
    return "; ".join(f"{text}: {'PASS' if ok else 'MISS'}" for text, ok in v.checks())


def report(
    sc: Scenario, jobs: int, running: float, bot: Phase, bares: list[Phase], load: float
) -> Verdict:
    print(
        f"\n== {sc.name}: {jobs} jobs, Wan tasks {running:g} s, {sc.wan_slots} at once at Wan, "
        f"bot WAN_MAX_CONCURRENT_TASKS={sc.bot_concurrency} WAN_QUERY_QPS={sc.bot_qps:g}; "
        f"load average {load:.1f} on {os.cpu_count()} cores =="
    )
    print(
        f"{'':22} {'added p50 p95':>13} {'max':>6} {'detect p50 p95':>15} {'deliver p50 p95':>16}"
        f" {'wall s':>7} {'peak RSS MB':>11} {'CPU s':>6} {'done':>7}"
    )
    for p in (bot, *bares):
        print(
            f"{p.name:22} {fmt(p.latencies):>13} {max(p.latencies, default=float('nan')):6.2f}"
            f" {fmt(p.detect):>15} {fmt(p.deliver):>16} {p.wall:7.1f} {p.hwm_mb:11.0f}"
            f" {p.cpu_s:6.1f} {p.delivered:>3}/{p.expected:<3}"
        )
    bare_p50 = mean([percentile(b.latencies, 0.5) for b in bares])
    bare_p95 = mean([percentile(b.latencies, 0.95) for b in bares])
    bare_wall = mean([b.wall for b in bares])
    bare_hwm = max(b.hwm_mb for b in bares)
    p95 = percentile(bot.latencies, 0.95)
    print(
        f"{'bot - bare':22} {percentile(bot.latencies, 0.5) - bare_p50:5.2f} {p95 - bare_p95:5.2f}"
    )
    print(
        f"bot: /wanedit dispatched -> last result visible {bot.intake_wall:.1f} s (wall s above "
        f"is first create at Wan -> last result, for both); results {bot.result_mb:.1f} MB each; "
        f"CPU s: the bot's from start-up done to the last result, the bare client's in all"
    )
    print(
        "Wan slot idle from a task's end to the next create's body in, p50 p95 s: "
        "idle (= detect + send + body)"
    )
    for p in (bot, *bares):
        g = p.gaps
        print(
            f"  {p.name:22} {fmt(g.idle)} (= {fmt(g.detect)} + {fmt(g.send)} + {fmt(g.body)});"
            f" sum of idle {sum(g.idle):.1f} s over {len(g.idle)} gaps"
        )
    print(f"bot RSS after start-up, before the jobs: {bot.idle_mb:.0f} MB; {bot.peak_note}")
    for bare in bares:
        print(f"{bare.name}: {bare.peak_note}")
    for p in (bot, *bares):
        for problem in p.problems:
            print(f"  {p.name}: {problem}")
    wall_ratio = bot.wall / bare_wall if bare_wall > 0 else float("nan")
    p95_ratio = p95 / bare_p95 if bare_p95 > 0 else float("nan")
    bare_cpu = mean([b.cpu_s for b in bares])
    cpu_ratio = bot.cpu_s / bare_cpu if bare_cpu > 0 else float("nan")
    against = "the mean of the bare runs before and after it" if len(bares) > 1 else "the bare run"
    print(
        f"bot / bare ({against}): p95 added latency {p95:.2f} / {bare_p95:.2f} s = "
        f"{p95_ratio:.2f}; wall time {bot.wall:.1f} / {bare_wall:.1f} s = {wall_ratio:.2f}; "
        f"peak RSS {bot.hwm_mb:.0f} / {bare_hwm:.0f} MB = {bot.hwm_mb / bare_hwm:.2f}; "
        f"CPU {bot.cpu_s:.1f} / {bare_cpu:.1f} s = {cpu_ratio:.2f}"
    )
    verdict = Verdict(
        p95=p95,
        p95_ratio=p95_ratio,
        wall_ratio=wall_ratio,
        hwm_mb=bot.hwm_mb,
        done=bot.delivered == jobs and not bot.problems,
        load=load,
        cpu_ratio=cpu_ratio,
    )
    print("targets: " + verdict_line(verdict))
    return verdict


def summary(mode: str, verdicts: list[Verdict]) -> bool:
    """Over the repeats: the median of each ratio, the highest peak, every run delivered."""
    if len(verdicts) > 1:

        def median(values: list[float]) -> float:
            return (
                percentile(values, 0.5)
                if len(values) % 2
                else mean(sorted(values)[len(values) // 2 - 1 : len(values) // 2 + 1])
            )

        overall = Verdict(
            p95=median([v.p95 for v in verdicts]),
            p95_ratio=median([v.p95_ratio for v in verdicts]),
            wall_ratio=median([v.wall_ratio for v in verdicts]),
            hwm_mb=max(v.hwm_mb for v in verdicts),
            done=all(v.done for v in verdicts),
            load=mean([v.load for v in verdicts]),
            cpu_ratio=median([v.cpu_ratio for v in verdicts]),
        )
        walls = ", ".join(f"{v.wall_ratio:.2f}" for v in verdicts)
        p95s = ", ".join(f"{v.p95_ratio:.2f}" for v in verdicts)
        peaks = ", ".join(f"{v.hwm_mb:.0f}" for v in verdicts)
        print(
            f"\n== {mode}, {len(verdicts)} bot runs (load average {overall.load:.1f}): wall time "
            f"ratios {walls} (median {overall.wall_ratio:.2f}); p95 ratios {p95s} (median "
            f"{overall.p95_ratio:.2f}); peak RSS {peaks} MB (highest {overall.hwm_mb:.0f}) =="
        )
        print("targets (medians, highest peak): " + verdict_line(overall))
    else:
        overall = verdicts[0]
    return all(ok for _, ok in overall.checks())


async def main_async(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    inputs = await make_inputs()
    sizes = " + ".join(f"{len(d) / 1e6:.1f}" for d in inputs)
    print(f"inputs: 3 noise PNGs per job ({sizes} MB), {args.jobs} users at once")
    modes = ["account", "burst"] if args.mode == "both" else [args.mode]
    ok = True
    with tempfile.TemporaryDirectory(prefix="wanbot-e2e-") as tmp:
        for mode in modes:
            sc = scenario(mode, args.jobs)
            # Bare, bot, bare, bot, ..., bare: each bot run is held against the bare runs on either
            # side of it, so a machine that gets busier or quieter meanwhile shifts both.
            runs = itertools.count(1)

            async def bare_run(
                sc: Scenario = sc, mode: str = mode, runs: Iterator[int] = runs
            ) -> Phase:
                folder = Path(tmp) / f"{mode}-bare-{next(runs)}"
                folder.mkdir()
                return await run_bare(sc, args.jobs, args.running, inputs, folder)

            bares = [await bare_run()] if args.repeat > 1 else []
            verdicts = []
            for _ in range(args.repeat):
                folder = Path(tmp) / f"{mode}-bot-{next(runs)}"
                folder.mkdir()
                load = os.getloadavg()[0]
                bot = await run_bot(sc, args.jobs, args.running, inputs, folder, trace=args.trace)
                bares.append(await bare_run())
                load = (load + os.getloadavg()[0]) / 2
                verdicts.append(report(sc, args.jobs, args.running, bot, bares[-2:], load))
            ok = summary(mode, verdicts) and ok
    print(
        f"\ntotal bench time {time.perf_counter() - began:.0f} s; load average "
        f"{os.getloadavg()[0]:.1f} ({load_before:.1f} at the start; other work on this machine "
        "shifts the numbers)"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="wanbot end-to-end load benchmark")
    parser.add_argument("--jobs", type=int, default=50, help="concurrent /wanedit jobs (users)")
    parser.add_argument("--mode", choices=("account", "burst", "both"), default="account")
    parser.add_argument("--running", type=float, default=2.0, help="Wan task running seconds")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="bot runs per mode, each between two bare runs (medians are judged); default 1",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="run the bot under tracemalloc and print the allocation sites alive at its peak RSS",
    )
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
