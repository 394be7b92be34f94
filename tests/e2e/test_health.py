"""`python -m bot check --live`: it tells the truth about a running bot (connected, runner alive), and
says what is wrong otherwise."""

from __future__ import annotations

import pytest

from bot.health import (
    GONE_AFTER,
    LATE_AFTER,
    STALE_AFTER,
    Heartbeat,
    forget_leftovers,
    heartbeats,
    judge,
    leftovers,
)
from bot.health import beat as write_beat
from bot.store import Store, open_store
from tests.support.first_run import base_env, run_cli
from tests.support.harness import World, wait_until


def beat(**fields: object) -> Heartbeat:
    values: dict = dict(
        process="host:1", written_at=1000.0, connected=True, since=900.0, runner_alive=True
    )
    values.update(fields)
    return Heartbeat(**values)  # type: ignore[arg-type]


def test_a_fresh_connected_process_with_a_live_runner_is_healthy() -> None:
    healthy, lines = judge([beat(latency=0.042)], now=1005.0)
    assert healthy
    assert lines == [
        "[ok]  host:1: connected since 1970-01-01 00:15:00 UTC, job runner alive, "
        "gateway latency 42 ms"
    ]


def test_each_kind_of_trouble_fails_with_its_own_line() -> None:
    """Stale (dead or stuck process), disconnected, runner stopped: each fails the check and says so."""
    cases = {
        "not running or stuck": beat(written_at=1000.0 - STALE_AFTER - 1),
        "disconnected from the Discord gateway since 1970-01-01 00:16:40 UTC": beat(
            connected=False, since=1000.0
        ),
        "its job runner has stopped": beat(runner_alive=False),
    }
    for words, heartbeat in cases.items():
        healthy, lines = judge([heartbeat], now=1001.0)
        assert not healthy, words
        assert len(lines) == 1 and lines[0].startswith("[FAIL]") and words in lines[0]


def test_one_bad_process_of_several_fails_the_check_and_each_is_reported() -> None:
    healthy, lines = judge(
        [beat(process="a:1"), beat(process="b:2", runner_alive=False), beat(process="c:3")],
        now=1001.0,
    )
    assert not healthy
    assert [line.split(":")[0] for line in lines] == ["[ok]  a", "[FAIL] b", "[ok]  c"]


def test_a_clean_stop_is_not_a_failure_of_the_others_but_nothing_running_is() -> None:
    healthy, lines = judge([beat(process="a:1", stopped=True), beat(process="b:2")], now=1001.0)
    assert healthy and lines[0].startswith("[--]  a:1: stopped cleanly")
    healthy, lines = judge([beat(stopped=True)], now=1001.0)
    assert not healthy and lines[-1] == "[FAIL] no bot process is running with this database"
    assert judge([], now=1001.0) == (False, ["[FAIL] no bot process is running with this database"])


def test_a_crashed_process_replaced_by_a_newer_one_of_its_service_no_longer_counts() -> None:
    """Promise: health tells the truth after a crash. systemd restarting the bot after an OOM kill
    (a new pid, so a new row) used to leave the dead row failing the check for 24 hours; the newer
    process of the same service (the same shards) replaces it as soon as the dead one is late, and
    the dead row is one the running processes remove."""
    dead = beat(process="host:100", started_at=500.0, written_at=900.0)
    new = beat(process="host:200", started_at=950.0, written_at=1000.0)
    healthy, lines = judge([dead, new], now=1001.0)
    assert healthy, lines
    assert lines[0].startswith("[--]  host:100: replaced by host:200") and lines[1].startswith(
        "[ok]"
    )
    assert leftovers([dead, new], now=1001.0) == ["host:100"]
    # Another service (other shards) does not replace it: its shard is still unserved.
    other = beat(process="host:300", started_at=950.0, shards="1", shard_count=2)
    mine = beat(process="host:100", started_at=500.0, written_at=900.0, shards="0", shard_count=2)
    healthy, lines = judge([mine, other], now=1001.0)
    assert not healthy and lines[0].startswith("[FAIL] host:100 (shards 0): not running or stuck")


def test_a_dead_shard_process_nobody_replaced_fails_the_check_after_its_row_is_gone() -> None:
    """A dead process stops counting once the others have removed its row (a few heartbeat
    intervals after it went stale); the shards it ran, run by nobody now, fail the check."""
    dead = beat(process="b:2", started_at=500.0, shards="1", shard_count=2)
    now = 1000.0 + GONE_AFTER + 1
    alive = beat(process="a:1", started_at=500.0, shards="0", shard_count=2, written_at=now)
    assert leftovers([alive, dead], now=now) == ["b:2"]
    healthy, lines = judge([alive], now=now)
    assert not healthy
    assert lines == [lines[0], "[FAIL] shard(s) 1 of 2: no running process runs them"]


def test_a_late_heartbeat_or_a_failing_database_reads_degraded() -> None:
    """A process whose heartbeat is a few intervals late can't reach the database (or is stuck),
    and one whose runner finds the database failing says since when: both are degraded, not ok."""
    healthy, lines = judge([beat(written_at=1000.0 - LATE_AFTER - 1)], now=1000.0)
    assert not healthy and lines[0].startswith("[DEGRADED] host:1: no heartbeat for 16 s")
    healthy, lines = judge([beat(database_trouble_since=990.0)], now=1001.0)
    assert not healthy
    assert lines == [
        "[DEGRADED] host:1: the database has been failing it since 1970-01-01 00:16:30 UTC "
        "(11 s ago); its jobs wait and resume by themselves when it answers"
    ]


async def test_the_rows_of_dead_processes_are_removed(store: Store) -> None:
    """On both engines: what `leftovers` names is deleted, and nothing else."""
    now = 10_000.0
    rows = [
        beat(process="old:1", started_at=100.0, written_at=now - STALE_AFTER - 1),
        beat(process="new:2", started_at=now - 30, written_at=now),
        beat(process="gone:3", started_at=100.0, written_at=now - GONE_AFTER - 1, shards="1"),
        beat(process="stopped:4", started_at=100.0, written_at=now - 100, stopped=True, shards="1"),
    ]
    for row in rows:
        await write_beat(store, row)
    assert await forget_leftovers(store, clock=lambda: now) == 2
    assert [hb.process for hb in await heartbeats(store)] == ["new:2", "stopped:4"]


async def live(w: World) -> tuple[int, str]:
    env = base_env(DATABASE_URL=f"sqlite:///{w.db_path}")
    result = await run_cli("check", "--live", env=env, cwd=w.db_path.parent)
    return result.returncode, result.stdout


async def test_check_live_against_a_running_bot_then_a_stuck_runner_then_a_stopped_bot(
    world: World,
) -> None:
    """The check reads what the running bot writes: ok while connected with its runner alive; a
    dead runner fails it; after a clean stop it says no bot is running."""
    w = world
    bot = await w.start_bot()
    await wait_until(lambda: bot.get_cog("Health").connected)  # type: ignore[union-attr]
    await bot.get_cog("Health").write()  # type: ignore[union-attr]
    code, out = await live(w)
    assert code == 0, out
    assert out.startswith("[ok]") and "connected since" in out and "job runner alive" in out

    task = bot.runner.dispatcher.loop_task
    assert task is not None
    task.cancel()
    await wait_until(task.done)
    await bot.get_cog("Health").write()  # type: ignore[union-attr]
    code, out = await live(w)
    assert code == 1 and "its job runner has stopped" in out

    await w.stop_bot(bot)
    store = await open_store(f"sqlite:///{w.db_path}")
    try:
        [stopped] = await heartbeats(store)
    finally:
        await store.close()
    assert stopped.stopped and not stopped.connected
    code, out = await live(w)
    assert code == 1
    assert "stopped cleanly" in out and "no bot process is running" in out


async def test_a_second_bot_on_the_same_sqlite_file_refuses_to_start(world: World) -> None:
    """Two bot processes on one sqlite file would both resume every job (two Wan tasks, two bills):
    the second refuses with one clear line, and the first goes on."""
    from bot.store import StoreError

    first = await world.start_bot()
    with pytest.raises(StoreError, match="Another wanbot process"):
        await world.start_bot()
    assert first.is_ready() and not first.is_closed()
