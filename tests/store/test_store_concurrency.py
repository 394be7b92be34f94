"""Concurrent reservations on one database: from one store, from several stores, from three processes.

On sqlite the stores are connections to one file; on PostgreSQL each store is a pool of its own, as
each bot process would have. Either way no interleaving may grant more than a limit allows.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bot.store import QuotaRefused, Reservation, Store
from tests.support.store import (
    Clock,
    Database,
    eventually,
    open_at,
    open_url,
    rows,
)

G = 111
ADMIN = 9
USERS = [1000 + i for i in range(20)]
ROOT = Path(__file__).resolve().parents[2]
# Stores racing on one database: sqlite serializes writers on the file anyway; on PostgreSQL each
# store is its own pool (a process's worth of connections), so more of them race for real.
STORES = {"sqlite": 2, "postgres": 4}


async def open_stores(database: Database, clock: Clock) -> list[Store]:
    return [await open_url(database.url, clock) for _ in range(STORES[database.engine])]


async def close_all(stores: list[Store]) -> None:
    for store in stores:
        await store.close()


async def reserve_or_none(store: Store, user: int, images: int) -> Reservation | None:
    try:
        return await store.reserve(G, user, images)
    except QuotaRefused as refusal:
        assert refusal.reason == "daily_limit"
        return None


async def test_200_concurrent_reserves_across_20_users_never_overrun(database: Database) -> None:
    clock = Clock()
    rng = random.Random(7)
    stores = await open_stores(database, clock)
    first, second = stores[0], stores[1]
    try:
        allowance: dict[int, int] = {}
        extra: dict[int, int] = {}
        for n, user in enumerate(USERS):
            await first.set_user_limit(G, ADMIN, user, 3 + n % 5)
            extra[user] = n % 3  # some users have extra images
            if extra[user]:
                await second.grant_extra(G, ADMIN, user, extra[user])
            allowance[user] = 3 + n % 5 + extra[user]

        requests = [(USERS[i % 20], rng.randint(1, 4)) for i in range(200)]
        results = await asyncio.gather(
            *(
                reserve_or_none(stores[i % len(stores)], user, images)
                for i, (user, images) in enumerate(requests)
            )
        )
        refusals = sum(r is None for r in results)
        assert 0 < refusals < 200  # the limits really were contended
        held: dict[int, int] = defaultdict(int)
        for reservation in results:
            if reservation is not None:
                held[reservation.user] += reservation.images
        for user in USERS:
            assert held[user] <= allowance[user], user  # never over
            remaining = allowance[user] - held[user]
            status = await first.quota_status(G, user)
            assert (status.held, status.remaining) == (held[user], remaining)
            # Nobody was refused something that would still have fitted.
            for (who, images), reservation in zip(requests, results, strict=True):
                if who == user and reservation is None:
                    assert images > remaining

        # Settle them all at once with random outcomes; some twice, some released.
        granted = [r for r in results if r is not None]
        outcomes = {r.id: rng.choice([0, r.images, rng.randint(0, r.images)]) for r in granted}

        async def finish(r: Reservation) -> int:
            store = stores[r.id % len(stores)]
            if outcomes[r.id] == 0 and r.id % 3 == 0:
                await store.release(r.id)
                return 0
            charged = await store.settle(r.id, outcomes[r.id])
            assert await store.settle(r.id, outcomes[r.id]) == 0  # a second settle is a no-op
            return charged

        charged = await asyncio.gather(*(finish(r) for r in granted))
        assert charged == [outcomes[r.id] for r in granted]

        ledger = dict(
            await database.rows(
                "SELECT user_id, sum(charged) FROM reservations"
                " WHERE status != 'held' GROUP BY user_id",
            )
        )
        assert await database.rows("SELECT count(*) FROM reservations WHERE status = 'held'") == [
            (0,)
        ]
        total = extra_spent = 0
        for user in USERS:
            spent = sum(outcomes[r.id] for r in granted if r.user == user)
            status = await second.quota_status(G, user)
            assert (status.used, status.held) == (spent, 0)
            assert ledger.get(user, 0) == spent
            # Extra images: only what the daily allowance could not cover was spent.
            assert status.extra == extra[user] - status.used_extra
            assert status.remaining == allowance[user] - spent
            total += spent
            extra_spent += status.used_extra
        assert extra_spent > 0  # the extra-image path was exercised
        totals = await first.server_totals(G)
        assert (totals.used, totals.held) == (total, 0)
    finally:
        await close_all(stores)


async def test_concurrent_reserves_never_pass_the_server_cap(database: Database) -> None:
    stores = await open_stores(database, Clock())
    first = stores[0]
    try:
        await first.set_server_cap(G, ADMIN, 37)

        async def attempt(i: int) -> int:
            try:
                return (await stores[i % len(stores)].reserve(G, USERS[i % 20], 1)).images
            except QuotaRefused as refusal:
                assert refusal.reason == "server_cap"
                return 0

        granted = await asyncio.gather(*(attempt(i) for i in range(200)))
        assert sum(granted) == 37  # exactly the cap: no overrun, no wrongful refusal
        assert (await first.server_totals(G)).held == 37
    finally:
        await close_all(stores)


WORKER = """
import asyncio, sys
from bot.store import QuotaRefused, open_store

async def main(url):
    store = await open_store(url, default_daily_limit=0, busy_timeout=10)
    granted = 0
    for _ in range(60):
        try:
            await store.reserve(111, 42, 1)
            granted += 1
        except QuotaRefused:
            pass
    await store.close()
    print(granted)

asyncio.run(main(sys.argv[1]))
"""


async def test_three_processes_share_one_allowance(database: Database) -> None:
    store = await open_url(database.url, Clock(), default_daily_limit=0)
    await store.set_user_limit(G, ADMIN, 42, 100)
    await store.close()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            database.url,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 30)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    granted = [int(out) for out, _ in outputs]
    assert sum(granted) == 100  # 180 asked for in three processes; exactly the allowance granted
    assert await database.rows("SELECT sum(images) FROM reservations WHERE user_id = 42") == [
        (100,)
    ]


async def test_cancelled_reserves_hold_nothing(tmp_path: Path) -> None:
    db = tmp_path / "wanbot.db"
    store = await open_at(db, Clock())
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # keeps the first batch waiting inside its commit
        running = asyncio.create_task(store.reserve(G, 1, 4))
        batcher = store._ledger  # type: ignore[attr-defined]
        await eventually(lambda: batcher._runner is not None and not batcher._pending)
        queued = asyncio.create_task(store.reserve(G, 1, 2))
        # Queued behind the running batch (still held up by the lock), not merely not started yet.
        await eventually(lambda: len(batcher._pending) == 1)
        running.cancel()
        queued.cancel()
        holder.execute("ROLLBACK")
        await asyncio.gather(running, queued, return_exceptions=True)
        assert running.cancelled() and queued.cancelled()

        # The running one committed, then was given back; the queued one never ran.
        def settled_down() -> bool:
            return rows(db, "SELECT images, status FROM reservations") == [(4, "released")]

        await eventually(settled_down)
        status = await store.quota_status(G, 1)
        assert (status.held, status.remaining) == (0, 10)
    finally:
        holder.close()
        await store.close()


async def test_a_refused_reserve_does_not_undo_its_neighbours(database: Database) -> None:
    store = await open_url(database.url, Clock())
    try:
        # Many writes at once (on sqlite they share commits); each succeeds or fails on its own.
        results = await asyncio.gather(
            *(store.reserve(G, 1, 3) for _ in range(5)),
            store.grant_extra(G, ADMIN, 2, 5),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Reservation) for r in results) == 3
        assert sum(isinstance(r, QuotaRefused) for r in results) == 2
        assert results[-1] == (0, 5)
        assert (await store.quota_status(G, 1)).held == 9
        assert (await store.quota_status(G, 2)).extra == 5
    finally:
        await store.close()


async def test_close_finishes_queued_writes_first(database: Database) -> None:
    store = await open_url(database.url, Clock())
    pending = [asyncio.create_task(store.reserve(G, 1, 1)) for _ in range(10)]
    await asyncio.sleep(0)  # all queued
    await store.close()
    assert all(isinstance(t.result(), Reservation) for t in pending)
    assert await database.rows("SELECT count(*) FROM reservations WHERE status = 'held'") == [(10,)]


async def test_requests_of_one_member_at_once_count_what_the_others_hold(
    database: Database,
) -> None:
    """Requests of one member that come together are decided in one batch: each counts what the
    ones before it hold, from the allowance and from extra images, in its own refusal too."""
    store = await open_url(database.url, Clock())
    try:
        await store.set_user_limit(G, ADMIN, 1, 2)
        await store.grant_extra(G, ADMIN, 1, 3)
        granted, refused = await asyncio.gather(
            store.reserve(G, 1, 4), store.reserve(G, 1, 2), return_exceptions=True
        )
        assert isinstance(granted, Reservation) and isinstance(refused, QuotaRefused)
        assert (granted.images, granted.from_extra) == (4, 2)
        # The 2 daily and 2 extra images the first one holds; 1 extra image left.
        assert (refused.held, refused.remaining) == (4, 1)
        status = await store.quota_status(G, 1)
        assert (status.held, status.extra, status.remaining) == (4, 1, 1)
    finally:
        await store.close()


async def test_extra_images_taken_and_given_back_together_all_count(database: Database) -> None:
    """Several holds of one member's extra images at once each take theirs from the balance, and
    given back at once each returns its own: the balance ends where it started, nothing held."""
    store = await open_url(database.url, Clock(), default_daily_limit=0)
    try:
        await store.grant_extra(G, ADMIN, 1, 5)
        holds = await asyncio.gather(*(store.reserve(G, 1, 2) for _ in range(2)))
        assert [h.from_extra for h in holds] == [2, 2]
        assert (await store.quota_status(G, 1)).extra == 1
        await asyncio.gather(*(store.release(h.id) for h in holds))
        status = await store.quota_status(G, 1)
        assert (status.extra, status.held) == (5, 0)
    finally:
        await store.close()


async def test_a_hold_settled_twice_at_once_is_charged_once(database: Database) -> None:
    """Two settlements of one hold that come together (a job finished twice at the same moment):
    one charges it, the other changes nothing."""
    store = await open_url(database.url, Clock())
    try:
        hold = await store.reserve(G, 1, 3)
        charged = await asyncio.gather(store.settle(hold.id, 2), store.settle(hold.id, 2))
        assert sorted(charged) == [0, 2]
        status = await store.quota_status(G, 1)
        assert (status.used, status.held, status.remaining) == (2, 0, 8)
        totals = await store.server_totals(G)
        assert (totals.used, totals.held) == (2, 0)
    finally:
        await store.close()


async def test_requests_refused_together_are_each_counted_once(database: Database) -> None:
    """The owner's count of refused requests (`refusal_days`): one per request and its images,
    however many were refused in one batch."""
    store = await open_url(database.url, Clock(), default_daily_limit=1)
    try:
        results = await asyncio.gather(
            *(store.reserve(G, 1, 3) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, QuotaRefused) for r in results)
        counted = await database.rows("SELECT reason, requests, images FROM refusal_days")
        assert counted == [("daily_limit", 3, 9)]
    finally:
        await store.close()
