"""The job queue of every bot process on one PostgreSQL database, in the jobs table: claims with
SKIP LOCKED after counting the Wan slots under one lock (a slot is the job's, even if its process
died), a lease epoch fencing every later write, takeovers of expired leases, LISTEN/NOTIFY and
polling. Times are the server's. Jobs of `python -m bot edit` wait apart, held by their process
(`own_jobs`), within the same slots. See docs/store.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

import asyncpg

from bot.store.errors import OutageWatch
from bot.store.jobs import CHANNEL
from bot.store.models import Lease
from bot.store.postgres import DATABASE_ERRORS

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the Wan slot count ("wanslt").
SLOT_LOCK = 0x77616E736C74
_NOW = "clock_timestamp()"
_EXPIRED = f"(lease_owner IS NULL OR lease_expires_at < {_NOW})"
# The terminal's (`python -m bot edit`) jobs are followed by the process that made them, never by
# a bot process: it could only post their results to no channel (`own_jobs`).
_BOTS = "source <> 'terminal'"
_WAITING = f"state = 'queued' AND {_EXPIRED} AND {_BOTS}"
# A queued job holds a slot from its claim (which bumps its epoch) to its start. A live lease at
# epoch 0 is a hold, not a claim: a terminal job waiting for a slot (`Store.hold_jobs`).
_SLOTS_IN_USE = (
    "SELECT count(*) FROM jobs WHERE state IN ('submitted', 'running')"
    " OR (state = 'queued' AND lease_owner IS NOT NULL AND lease_epoch > 0"
    f" AND lease_expires_at >= {_NOW})"
)
_CLAIM = (
    f"UPDATE jobs SET lease_owner = $1, lease_epoch = lease_epoch + 1,"
    f" lease_expires_at = {_NOW} + make_interval(secs => $2)"
    " WHERE id = (SELECT id FROM jobs WHERE {where} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, lease_epoch"
)
# A job of an `own_jobs` queue, held by its process (epoch 0: never claimed; a hold by another
# owner would be another process's job).
_OWN = (
    "id = ANY($3::bigint[]) AND state = 'queued' AND lease_epoch = 0"
    " AND (lease_owner IS NULL OR lease_owner = $1)"
)
# Jobs a dead process had started, and jobs left VALIDATING (never queued) for longer than a lease
# by a process that stopped (sqlite's `resume` fails those at start-up; here whoever claims them
# fails them, fenced by the claim's lease). A dead terminal's jobs are ended instead
# (`Store.end_abandoned_jobs`).
_ORPHANED = (
    f"((state IN ('submitted', 'running', 'delivering') AND {_EXPIRED})"
    f" OR (state = 'validating' AND {_EXPIRED}"
    f" AND updated_at < {_NOW} - make_interval(secs => $2)))"
    f" AND {_BOTS}"
)


class PostgresQueue:
    """`JobQueue` on the jobs table. One per bot process. With `own_jobs`, the queue of a process
    that runs only the jobs it queues itself, beside the bot processes (`python -m bot edit`): its
    jobs never enter the bots' queue (`_WAITING`); each waits held by this process
    (`Store.hold_jobs`, renewed by it, with this queue's `owner`) until a Wan slot is free, counted
    with every process's, and is then claimed like any job. It takes over nothing: a job whose
    process is gone is ended by whoever finds it (`Store.end_abandoned_jobs`)."""

    shared = True

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_slots: int,
        ttl: float = 15.0,
        poll_interval: float = 1.0,
        own_jobs: bool = False,
    ) -> None:
        self._pool = pool
        self.own_jobs = own_jobs
        self.max_slots = max_slots
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.owner = uuid.uuid4().hex
        self._leases: dict[int, Lease] = {}
        self._shown: dict[int, None] = {}  # jobs queued here and not yet claimed
        self._wake: Callable[[], None] = lambda: None
        self._lost: Callable[[int], None] = lambda job_id: None
        self._listener: asyncpg.Connection | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._waiting = 0
        # Told of database trouble in the background work (set by the job runner); None: logged.
        self.outage: OutageWatch | None = None

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self, wake: Callable[[], None], lost: Callable[[int], None]) -> None:
        self._wake, self._lost = wake, lost
        await self._listen()
        self._renewer = asyncio.create_task(self._renew_loop(), name="wanbot-leases")

    async def _listen(self) -> None:
        con = None
        try:
            # Bounded: this runs in the lease renewals too, which must not stall behind a full
            # pool or a server that does not answer.
            con = await self._pool.acquire(timeout=max(1.0, self.ttl / 3))
            await con.add_listener(CHANNEL, self._notified)
        except DATABASE_ERRORS as err:
            self._failed(err, "could not LISTEN for queue changes (%s); polling only")
            if con is not None:
                # Given back: the pool's close waits for every connection it lent out.
                await self._release(con)
            return
        self._listener = con

    def _failed(self, err: BaseException, message: str) -> None:
        """Database trouble in the background: to the watcher (one line per outage), else logged."""
        if self.outage is not None:
            self.outage.failed(err)
        else:
            log.warning(message, err)

    async def _release(self, con: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            await con.remove_listener(CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await self._pool.release(con)

    def _notified(self, *args: object) -> None:
        self._wake()

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._listener is not None:
            con, self._listener = self._listener, None
            await self._release(con)
        if self._leases:
            # A clean stop: the other processes may take these over now, not after the lease.
            try:
                await self._pool.execute(
                    f"UPDATE jobs SET lease_expires_at = {_NOW}"
                    " WHERE lease_owner = $1 AND id = ANY($2::bigint[])",
                    self.owner,
                    list(self._leases),
                )
            except DATABASE_ERRORS as err:
                log.warning("could not hand over %d job(s) at stop: %s", len(self._leases), err)
            self._leases.clear()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                answered = await self.renew()
                if not self._listening():
                    # Given back even when closed: a connection aborted mid-protocol stays lent
                    # out (and the pool's close waits for it) until released.
                    lost, self._listener = self._listener, None
                    if lost is not None:
                        await self._release(lost)
                    await self._listen()
                    if self._listener is not None:
                        answered = True
                        # What was queued while nobody listened: the next pass looks.
                        self._wake()
                if answered and self.outage is not None:
                    self.outage.ok()
            except asyncio.CancelledError:
                raise
            except DATABASE_ERRORS as err:
                # The next beat tries again; leases last `ttl`, three beats.
                self._failed(err, "could not renew job leases (%s)")
            except Exception:
                log.exception("could not renew job leases")

    def _listening(self) -> bool:
        con = self._listener
        if con is None:
            return False
        try:
            return not con.is_closed()
        except asyncpg.InterfaceError:
            # The server dropped it and the pool took it back: asking it anything raises.
            return False

    async def renew(self) -> bool:
        """Extend every lease this process holds; drop (and report) those another process took.
        Whether the database was asked (there were leases)."""
        held = dict(self._leases)
        if not held:
            return False
        rows = await self._pool.fetch(
            f"UPDATE jobs SET lease_expires_at = {_NOW} + make_interval(secs => $3)"
            " WHERE id = ANY($2::bigint[]) AND lease_owner = $1"
            " AND state NOT IN ('done', 'failed', 'cancelled') RETURNING id, lease_epoch",
            self.owner,
            list(held),
            self.ttl,
        )
        kept = {row["id"] for row in rows if row["lease_epoch"] == held[row["id"]].epoch}
        for job_id in held.keys() - kept:
            if self._leases.get(job_id) is held[job_id]:
                del self._leases[job_id]
                log.warning("job %d: lease lost to another process; dropping it here", job_id)
                self._lost(job_id)
        return True

    # ---- queue -----------------------------------------------------------------------------

    async def push(self, job_id: int) -> int | None:
        self._shown[job_id] = None
        if self.own_jobs:
            return None  # no place among the bots' jobs: it starts at the first free slot
        await self._pool.execute("SELECT pg_notify($1, 'queued')", CHANNEL)
        return await self.position(job_id) or 1

    async def pop(self) -> tuple[int, Lease | None] | None:
        if not self.own_jobs:
            return await self._claim_in_slot(_WAITING)
        return await self._claim_in_slot(_OWN, list(self._shown)) if self._shown else None

    async def _claim_in_slot(self, where: str, *args: object) -> tuple[int, Lease | None] | None:
        """Claim the first job `where` (`$3`...: `args`) if a Wan slot is free."""
        async with self._pool.acquire() as con, con.transaction():
            # One claimer at a time counts the slots, so two processes can't both take the last.
            await con.execute("SELECT pg_advisory_xact_lock($1)", SLOT_LOCK)
            used: int = await con.fetchval(_SLOTS_IN_USE)
            if used >= self.max_slots:
                return None
            row = await con.fetchrow(_CLAIM.format(where=where), self.owner, self.ttl, *args)
        return None if row is None else self._claimed(row)

    async def take_over(self) -> list[tuple[int, Lease | None]]:
        if self.own_jobs:
            return []  # nobody's jobs but its own, and those only while it lives
        claims: list[tuple[int, Lease | None]] = []
        while True:
            row = await self._pool.fetchrow(_CLAIM.format(where=_ORPHANED), self.owner, self.ttl)
            if row is None:
                return claims
            log.warning("job %d: its process stopped renewing its lease; taking it over", row["id"])
            claims.append(self._claimed(row))

    def _claimed(self, row: asyncpg.Record) -> tuple[int, Lease | None]:
        lease = Lease(self.owner, int(row["lease_epoch"]), self.ttl)
        self._leases[int(row["id"])] = lease
        self._shown.pop(int(row["id"]), None)
        return int(row["id"]), lease

    async def remove(self, job_id: int) -> bool:
        if self.own_jobs:
            return False  # its process ends its own job itself (`python -m bot edit`: Ctrl-C)
        row = await self._pool.fetchrow(
            _CLAIM.format(where=f"id = $3 AND {_WAITING}"), self.owner, self.ttl, job_id
        )
        if row is not None:
            self._claimed(row)
        return row is not None

    async def position(self, job_id: int) -> int | None:
        if self.own_jobs:
            return None
        place: int | None = await self._pool.fetchval(
            f"SELECT (SELECT count(*) FROM jobs q WHERE q.id <= j.id AND q.{_WAITING})"
            f" FROM jobs j WHERE j.id = $1 AND j.{_WAITING}",
            job_id,
        )
        return place

    async def positions(self) -> list[tuple[int, int]]:
        if self.own_jobs:
            return []
        # One query for every job shown here: its place among all waiting jobs (every process's).
        rows = await self._pool.fetch(
            f"SELECT id, row_number() OVER (ORDER BY id) AS place FROM jobs WHERE {_WAITING}"
        )
        self._waiting = len(rows)
        places = {int(r["id"]): int(r["place"]) for r in rows}
        self._shown = {job_id: None for job_id in self._shown if job_id in places}
        return [(job_id, places[job_id]) for job_id in self._shown]

    def lease(self, job_id: int) -> Lease | None:
        return self._leases.get(job_id)

    def release(self, job_id: int) -> None:
        self._leases.pop(job_id, None)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._shown

    def __len__(self) -> int:
        return len(self._shown) if self.own_jobs else self._waiting
