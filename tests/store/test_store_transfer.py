"""`migrate_db`: a sqlite database with a bit of everything arrives in PostgreSQL whole, and the
PostgreSQL store then tells the same story through the `Store` interface."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.store import JobState, QuotaRefused, Store, StoreError, open_store
from bot.store.transfer import TABLES, migrate_db
from tests.support.store import (
    START,
    Clock,
    PgServer,
    open_at,
    open_url,
    rows,
)

G, OTHER, ADMIN = 111, 222, 9
ROLE = 7001
USERS = (501, 502, 503)


async def fill(store: Store, clock: Clock) -> None:
    """Settings, members, role limits, two days of reservations in every state (so two bot days),
    refusals, audit, jobs (one with what Wan billed), results, meta and the owner's switches, and a
    day long past the retention horizon, summed (`usage_days`)."""
    clock.advance(days=-200)
    long_ago = await store.reserve(OTHER, USERS[0], 1)
    await store.settle(long_ago.id, 1)
    clock.advance(days=200)
    assert await store.purge(90) is not None
    await store.set_server_default(G, ADMIN, 6)
    await store.set_role_limit(G, ADMIN, ROLE, 2)
    await store.set_global_cap(ADMIN, 50)
    await store.set_server_cap(G, ADMIN, 40)
    await store.set_user_limit(G, ADMIN, USERS[0], 8)
    await store.grant_extra(G, ADMIN, USERS[1], 4)
    await store.block_user(OTHER, ADMIN, USERS[2])
    await store.set_meta("command_tree", "hash-1")
    yesterday = await store.reserve(G, USERS[0], 3)
    parent = await store.create_job(
        scope=G, guild_id=G, channel_id=7, user_id=USERS[0], source="slash", prompt="a cat",
        options={"count": 3, "seed": 1}, inputs=[{"url": "https://x/1.png", "width": 640}],
        reservation_id=yesterday.id, state=JobState.QUEUED, message_id=70,
        interaction_token="tok.secret", token_expires_at=START + timedelta(minutes=15),
    )  # fmt: skip
    await store.set_task_id(parent.id, "task-1")
    await store.finish_job(
        parent.id, JobState.DONE, generated=2, result_message_ids=[901, 902], billed=3
    )
    with pytest.raises(QuotaRefused):
        await store.reserve(OTHER, USERS[2], 1)  # blocked: counted in refusal_days
    clock.advance(days=1)
    held = await store.reserve(G, USERS[1], 7)  # 6 daily + 1 extra, still running
    child = await store.create_job(
        scope=G, guild_id=G, channel_id=7, user_id=USERS[1], source="reroll", prompt="a cat",
        parent_job_id=parent.id, parent_index=1, reservation_id=held.id,
        state=JobState.QUEUED, extra={"nested": {"a": [1, 2]}},
    )  # fmt: skip
    await store.update_job(child.id, state=JobState.RUNNING, result_message_ids=[903])
    released = await store.reserve(0, USERS[2], 2)
    await store.release(released.id)
    await store.reserve(G, USERS[0], 1)  # an orphan: no job
    await store.reset_usage(G, ADMIN, USERS[0])


async def picture(store: Store) -> dict[str, object]:
    """Everything the store says about the filled database."""
    seen: dict[str, object] = {
        "unfinished": await store.unfinished_jobs(),
        "meta": await store.get_meta("command_tree"),
        "audit": [await store.audit_log(s, limit=100) for s in (G, OTHER)],
        "totals": [await store.server_totals(s) for s in (0, G, OTHER)],
        "message": [await store.job_for_message(m) for m in (70, 901, 903)],
        "roles": await store.role_limits(G),
        "state": await store.bot_state(),
        "usage": [await store.usage_report(s, days=3) for s in (None, G, OTHER)],
        "long ago": await store.usage_report(OTHER, days=250),
    }
    for user in USERS:
        seen[f"status {user}"] = [await store.quota_status(s, user) for s in (0, G, OTHER)]
        seen[f"role status {user}"] = await store.quota_status(G, user, roles=[ROLE])
        seen[f"jobs {user}"] = await store.jobs_for_user(user)
    return seen


@pytest.fixture(name="filled")
async def filled_fixture(tmp_path: Path) -> tuple[Path, Clock]:
    db = tmp_path / "wanbot.db"
    clock = Clock()
    store = await open_at(db, clock)
    try:
        await fill(store, clock)
    finally:
        await store.close()
    return db, clock


async def test_everything_arrives(filled: tuple[Path, Clock], pg_server: PgServer) -> None:
    db, clock = filled
    target = await pg_server.create(migrated=False)  # a brand-new database, as an admin makes
    try:
        counts = await migrate_db(f"sqlite:///{db}", target)
        assert set(counts) == set(TABLES)
        for table in TABLES:
            assert counts[table] == rows(db, f"SELECT count(*) FROM {table}")[0][0] > 0, table
        before = await open_at(db, clock)
        after = await open_url(target, clock)
        try:
            assert await picture(after) == await picture(before)
            # New rows continue after the copied ids, and the copied holds still count.
            last_job = max(j.id for j in await before.jobs_for_user(USERS[1]))
            again = await after.reserve(G, USERS[1], 1)
            assert again.id > max(r[0] for r in rows(db, "SELECT id FROM reservations"))
            job = await after.create_job(
                scope=G, channel_id=7, user_id=USERS[1], source="slash", prompt="x"
            )
            assert job.id > last_job
            # The copied orphan, and `again`, which no job took either.
            assert await after.release_orphaned_reservations(timedelta(0)) == 2
        finally:
            await before.close()
            await after.close()
    finally:
        await pg_server.drop(target)


async def test_a_target_with_data_is_refused_and_left_alone(
    filled: tuple[Path, Clock], pg_url: str
) -> None:
    db, _ = filled
    store = await open_store(pg_url)
    await store.set_meta("mine", "keep")
    await store.close()
    with pytest.raises(StoreError) as info:
        await migrate_db(f"sqlite:///{db}", pg_url)
    text = str(info.value)
    assert "already has data (table meta)" in text and "empty database" in text
    store = await open_store(pg_url)
    try:
        assert await store.get_meta("mine") == "keep"
        assert await store.get_meta("command_tree") is None
    finally:
        await store.close()


async def test_refused_while_a_bot_uses_the_file(filled: tuple[Path, Clock], pg_url: str) -> None:
    db, _ = filled
    bot = await open_store(f"sqlite:///{db}", exclusive=True)
    try:
        with pytest.raises(StoreError, match="Another wanbot process"):
            await migrate_db(f"sqlite:///{db}", pg_url)
    finally:
        await bot.close()


async def test_urls_are_checked(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="--to must be a postgresql:// URL"):
        await migrate_db(f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db")
    with pytest.raises(StoreError, match="no sqlite database at"):
        await migrate_db(f"sqlite:///{tmp_path}/missing.db", "postgresql://u:hunter2@h/db")
    with pytest.raises(StoreError, match="sqlite:///PATH") as info:
        await migrate_db("postgresql://u:hunter2@h/db", "postgresql://u:hunter2@h/db2")
    assert "hunter2" not in str(info.value)


async def test_the_migrate_db_command_copies_and_says_what(
    filled: tuple[Path, Clock], pg_server: PgServer
) -> None:
    """`python -m bot migrate-db --from ... --to ...`, as the README gives it: the copy, one line
    about what arrived (without the password), and one line and exit 1 when refused."""
    from tests.support.first_run import base_env, run_cli

    db, _ = filled
    target = await pg_server.create(migrated=False)
    try:
        env = base_env()
        result = await run_cli(
            "migrate-db", "--from", f"sqlite:///{db}", "--to", target, env=env, cwd=db.parent
        )
        assert result.returncode == 0, result.output
        assert result.stdout.startswith("copied into ") and "jobs " in result.stdout
        password = target.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
        assert password and password not in result.output
        again = await run_cli(
            "migrate-db", "--from", f"sqlite:///{db}", "--to", target, env=env, cwd=db.parent
        )
        assert again.returncode == 1
        assert again.stderr.startswith("wanbot: ") and len(again.stderr.strip().splitlines()) == 1
    finally:
        await pg_server.drop(target)
