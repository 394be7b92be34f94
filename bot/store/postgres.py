"""The PostgreSQL backend: an asyncpg pool, one transaction per operation, row locks for the quota.

Any number of bot processes may share one database: each operation is one transaction on a pooled
connection, and the quota transactions lock their rows in one fixed order (see `postgres_quota`), so
no interleaving of processes can grant more than a limit allows. `lock_timeout` bounds every wait for
a lock (the `busy_timeout` of `open_store`), so a stuck peer is a `StoreError`, not a hang.

A read-only store (`open_store(..., read_only=True)`, for `python -m bot usage` while the bot runs)
skips the migrations, checks the schema is this wanbot's, and runs on connections whose transactions
are read-only (`default_transaction_read_only`); its writes fail with a `StoreError` before they
reach the server.

Writes run in a task of their own, shielded from the caller's cancellation: once sent, a write
finishes (commit or rollback) even if its caller stops waiting, and `close` waits for it. A
reservation whose caller was cancelled is released again at once, as the sqlite store does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from bot.store import checks
from bot.store import postgres_jobs as jobs
from bot.store import postgres_quota as quota
from bot.store.base import Store
from bot.store.checks import MAX_LIMIT, check_int, check_limit, check_time
from bot.store.errors import QuotaRefused, StoreError
from bot.store.models import (
    AuditEntry,
    BotState,
    Job,
    JobState,
    Lease,
    Limits,
    QuotaStatus,
    Reservation,
    ServerTotals,
    UsageReport,
)
from bot.store.postgres_budget import SharedRate
from bot.store.postgres_errors import OWN_MISTAKES, Target, describe
from bot.store.postgres_migrations import check_version, migrate
from bot.store.postgres_queue import PostgresQueue

log = logging.getLogger(__name__)

T = TypeVar("T")
# pg_advisory_lock(key, name) space of `exclusive` ("wl").
NAMED_LOCKS = 0x776C
Clock = Callable[[], datetime]
Operation = Callable[..., Awaitable[T]]
# Database trouble, as opposed to our own exceptions (QuotaRefused, NotFound, ValueError).
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def init_connection(con: asyncpg.Connection) -> None:
    """Per-connection set-up: jsonb in and out as Python values, as sqlite's JSON text columns.

    In binary format (jsonb's is a version byte, 1, then the JSON text) because COPY, which
    `bot.store.transfer` uses, takes binary encoders only.
    """
    await con.set_type_codec(
        "jsonb",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        schema="pg_catalog",
        format="binary",
    )


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])


class PostgresStore(Store):
    """`Store` on a PostgreSQL database. Open it with `PostgresStore.open` (or `open_store`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        target: Target,
        *,
        clock: Clock,
        default_daily_limit: int,
        busy_timeout: float,
        limits: Limits | None = None,
        read_only: bool = False,
    ) -> None:
        self._pool: asyncpg.Pool | None = pool
        self.target = target
        self._clock = clock
        self.default_daily_limit = default_daily_limit
        self.limits = limits or Limits()
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self._writes: set[asyncio.Task[Any]] = set()
        self._closing = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Clock | None = None,
        default_daily_limit: int = 10,
        busy_timeout: float = 5.0,
        pool_size: int = 10,
        limits: Limits | None = None,
        read_only: bool = False,
    ) -> PostgresStore:
        """Connect to the database at `url` and migrate it. Raises `StoreError` (one line).

        `limits` the owner's bounds; `read_only` migrates nothing (the schema must already be this
        wanbot's) and refuses every write.
        """
        check_int("default_daily_limit", default_daily_limit, 0, MAX_LIMIT)
        target = Target.parse(url)
        settings = {
            "lock_timeout": str(max(1, int(busy_timeout * 1000))),
            "application_name": "wanbot",
            # Times come back as UTC whatever the server's or the role's setting.
            "timezone": "UTC",
        }
        if read_only:
            # The server itself refuses a write, should one get past `_write`'s check.
            settings["default_transaction_read_only"] = "on"
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                init=init_connection,
                # A server that never answers must not hang start-up.
                timeout=max(busy_timeout, 5.0),
                server_settings=settings,
            )
        except ValueError as err:  # the driver could not make sense of the URL
            raise StoreError(
                f"DATABASE_URL is not a PostgreSQL URL the driver understands "
                f"({target.scrub(str(err))}); expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE."
            ) from None
        except _DATABASE_ERRORS as err:
            raise describe(err, target, busy_timeout) from None
        store = cls(
            pool,
            target,
            clock=clock or _utc_now,
            default_daily_limit=default_daily_limit,
            busy_timeout=busy_timeout,
            limits=limits,
            read_only=read_only,
        )
        try:
            async with pool.acquire() as con:
                if read_only:
                    await check_version(con, str(target))
                    return store
                old = await migrate(con, str(target))
        except _DATABASE_ERRORS as err:
            await pool.close()
            raise describe(err, target, busy_timeout) from None
        except BaseException:
            await pool.close()
            raise
        if old == 0:
            log.info("created the tables in the %s", target)
        return store

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True  # refuse new operations; the writes under way may still finish
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # ---- what several processes share (the job queue, DashScope's rate limits) ----

    def job_queue(
        self, *, max_slots: int, ttl: float = 15.0, poll_interval: float = 1.0
    ) -> PostgresQueue:
        """The job queue in this database, shared with every other process on it."""
        return PostgresQueue(
            self._live_pool(), max_slots=max_slots, ttl=ttl, poll_interval=poll_interval
        )

    def shared_rate(self, name: str, limit: float) -> SharedRate:
        """A gate keeping all processes together at or under `limit` requests per second."""
        return SharedRate.for_limit(self._live_pool(), name, limit)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        # A session advisory lock on a connection of its own, released with it (even if the
        # process dies: the server drops a dead session's locks).
        key = zlib.crc32(name.encode())
        async with self._live_pool().acquire() as con:
            await con.execute("SELECT pg_advisory_lock($1, $2)", NAMED_LOCKS, key)
            try:
                yield
            finally:
                await con.execute("SELECT pg_advisory_unlock($1, $2)", NAMED_LOCKS, key)

    # ---- plumbing ----

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def _live_pool(self) -> asyncpg.Pool:
        if self._closing or self._pool is None:
            raise StoreError(f"The {self.target} is closed.")
        return self._pool

    async def _transaction(self, pool: asyncpg.Pool, fn: Operation[T], *args: Any) -> T:
        return await self._on_connection(pool, fn, *args, transaction=True)

    async def _on_connection(
        self,
        pool: asyncpg.Pool,
        fn: Operation[T],
        *args: Any,
        transaction: bool,
        snapshot: bool = False,
    ) -> T:
        try:
            async with pool.acquire() as con:
                if not transaction:
                    return await fn(con, *args)
                if snapshot:
                    tx = con.transaction(isolation="repeatable_read", readonly=True)
                else:
                    tx = con.transaction()
                async with tx:
                    return await fn(con, *args)
        except OWN_MISTAKES:
            raise
        except _DATABASE_ERRORS as err:
            raise describe(err, self.target, self.busy_timeout) from err

    async def _read(self, fn: Operation[T], *args: Any) -> T:
        """A read. Every read here is one statement, which sees one snapshot by itself, so it
        needs no transaction (and saves the BEGIN and COMMIT round trips)."""
        return await self._on_connection(self._live_pool(), fn, *args, transaction=False)

    async def _snapshot_read(self, fn: Operation[T], *args: Any) -> T:
        """Several reads that must agree: one REPEATABLE READ, read-only transaction."""
        return await self._on_connection(
            self._live_pool(), fn, *args, transaction=True, snapshot=True
        )

    async def _write(
        self,
        fn: Operation[T],
        *args: Any,
        undo: Callable[[T], Awaitable[Any]] | None = None,
    ) -> T:
        """Run a write transaction to its end even if the caller is cancelled meanwhile; then,
        if it was, `undo` its committed result."""
        pool = self._live_pool()
        if self.read_only:
            raise StoreError(f"The {self.target} was opened read-only: nothing can be changed.")
        abandoned = asyncio.Event()

        async def run() -> T:
            result = await self._transaction(pool, fn, *args)
            if abandoned.is_set() and undo is not None:
                await undo(result)
            return result

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            abandoned.set()
            if task.done() and undo is not None and not task.cancelled() and not task.exception():
                # It committed just as the caller gave up, before `run` could see the flag.
                self._spawn(undo(task.result()))
            raise

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> Any:
            return await work

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._write_done)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            # Retrieved here: the failure of a write whose caller gave up has nobody to see it
            # (its caller got CancelledError), and asyncio would warn about it at exit.
            task.exception()

    # ---- quotas ----

    async def reserve(
        self, scope: int, user: int, images: int, *, roles: Sequence[int] = ()
    ) -> Reservation:
        check_int("images", images, 1, MAX_LIMIT)
        outcome = await self._write(
            quota.reserve,
            scope,
            user,
            images,
            tuple(roles),
            self._now(),
            self.default_daily_limit,
            self.limits,
            # A caller cancelled while its reservation was being committed will never settle
            # it: give the images straight back.
            undo=self._release_abandoned,
        )
        if isinstance(outcome, QuotaRefused):
            raise outcome  # counted: the transaction that refused it committed the count
        return outcome

    async def _release_abandoned(self, reservation: Reservation | QuotaRefused) -> None:
        if isinstance(reservation, QuotaRefused):
            return  # nothing was held
        log.info("reservation %d abandoned by a cancelled caller; releasing it", reservation.id)
        pool = self._pool  # still open: `close` waits for this before closing the pool
        if pool is None:
            return
        try:
            await self._transaction(
                pool,
                quota.close_reservation,
                reservation.id,
                0,
                self._now(),
                "released",
            )
        except StoreError as err:
            log.warning("could not release an abandoned reservation: %s", err)

    async def settle(self, reservation_id: int, generated: int) -> int:
        check_int("generated", generated, 0, MAX_LIMIT)
        charged = await self._write(
            quota.close_reservation, reservation_id, generated, self._now(), "settled"
        )
        return charged or 0

    async def release(self, reservation_id: int) -> None:
        await self._write(quota.close_reservation, reservation_id, 0, self._now(), "released")

    async def release_orphaned_reservations(self, older_than: timedelta = timedelta(0)) -> int:
        now = self._now()
        candidates = await self._read(quota.orphan_ids, now, older_than)
        count = 0
        # One transaction each: several processes starting at once share the work without
        # waiting on each other's locks (each skips the ones another holds).
        for reservation_id in candidates:
            if await self._write(quota.release_if_orphan, reservation_id, now, older_than):
                count += 1
        if count:
            log.warning("released %d reservation(s) left without a job by a crash", count)
        return count

    async def quota_status(
        self, scope: int, user: int, *, roles: Sequence[int] = ()
    ) -> QuotaStatus:
        return await self._read(
            quota.quota_status,
            scope,
            user,
            tuple(roles),
            self._now(),
            self.default_daily_limit,
            self.limits,
        )

    async def server_totals(self, scope: int) -> ServerTotals:
        return await self._read(quota.server_totals, scope, self._now(), self.limits)

    async def usage_report(self, scope: int | None, *, days: int = 7, top: int = 10) -> UsageReport:
        check_int("days", days, 1, 366)
        check_int("top", top, 1, 100)
        return await self._snapshot_read(
            quota.usage_report, scope, self._now(), days, top, self.limits
        )

    async def busiest_scopes(self, *, days: int = 7, top: int = 4) -> list[tuple[int, int]]:
        check_int("days", days, 1, 366)
        check_int("top", top, 1, 100)
        return await self._read(quota.busiest_scopes, self._now(), days, top)

    # ---- admin operations ----

    async def set_user_limit(
        self, scope: int, actor: int, user: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        check_limit("limit", limit)
        return await self._write(
            quota.set_user_limit, scope, actor, user, limit, self._now(), self._ceiling(scope)
        )

    async def set_server_default(
        self, scope: int, actor: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        check_limit("limit", limit)
        return await self._write(
            quota.set_server_default, scope, actor, limit, self._now(), self._ceiling(scope)
        )

    async def set_server_cap(
        self, scope: int, actor: int, cap: int | None
    ) -> tuple[int | None, int | None]:
        check_limit("cap", cap)
        return await self._write(
            quota.set_server_cap, scope, actor, cap or None, self._now(), self._ceiling(scope)
        )

    async def grant_extra(self, scope: int, actor: int, user: int, images: int) -> tuple[int, int]:
        check_int("images", images, -MAX_LIMIT, MAX_LIMIT)
        return await self._write(
            quota.grant_extra, scope, actor, user, images, self._now(), self._ceiling(scope)
        )

    async def reset_usage(self, scope: int, actor: int, user: int) -> tuple[int, int]:
        return await self._write(quota.reset_usage, scope, actor, user, self._now())

    async def block_user(self, scope: int, actor: int, user: int) -> tuple[bool, bool]:
        return await self._write(quota.set_blocked, scope, actor, user, True, self._now())

    async def unblock_user(self, scope: int, actor: int, user: int) -> tuple[bool, bool]:
        return await self._write(quota.set_blocked, scope, actor, user, False, self._now())

    async def audit_log(
        self, scope: int, limit: int = 20, *, target: int | None = None
    ) -> list[AuditEntry]:
        check_int("limit", limit, 1, 10_000)
        return await self._read(quota.audit_log, scope, limit, target)

    def _ceiling(self, scope: int) -> int | None:
        # The owner's ceiling is for servers: DMs have their own limit.
        return self.limits.server_ceiling if scope else None

    async def set_role_limit(
        self, scope: int, actor: int, role: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        check_limit("limit", limit)
        return await self._write(
            quota.set_role_limit, scope, actor, role, limit, self._now(), self._ceiling(scope)
        )

    async def role_limits(self, scope: int) -> dict[int, int]:
        return await self._read(quota.role_limits, scope)

    # ---- the owner's switches ----

    async def bot_state(self) -> BotState:
        return await self._read(quota.bot_state, self.limits)

    async def set_paused(self, actor: int, paused: bool) -> tuple[bool, bool]:
        return await self._write(quota.set_paused, actor, paused, self._now())

    async def set_global_cap(self, actor: int, cap: int | None) -> tuple[int | None, int | None]:
        check_limit("cap", cap)
        return await self._write(quota.set_global_cap, actor, cap, self._now(), self.limits)

    # ---- jobs ----

    async def _insert_job(self, values: dict[str, Any], max_active: int | None = None) -> Job:
        return await self._write(jobs.create, values, self._now(), max_active)

    async def get_job(self, job_id: int) -> Job | None:
        return await self._read(jobs.get, job_id)

    async def update_job(self, job_id: int, *, lease: Lease | None = None, **fields: Any) -> Job:
        fields = checks.job_changes(fields)
        return await self._write(jobs.update, job_id, fields, self._now(), lease)

    async def set_task_id(self, job_id: int, task_id: str, *, lease: Lease | None = None) -> None:
        if not task_id:
            raise ValueError("task_id is empty")
        await self._write(jobs.set_task_id, job_id, task_id, self._now(), lease)

    async def finish_job(
        self,
        job_id: int,
        state: JobState,
        *,
        generated: int = 0,
        error_code: str | None = None,
        error_message: str | None = None,
        result_message_ids: list[int] | None = None,
        billed: int | None = None,
        lease: Lease | None = None,
    ) -> bool:
        state = checks.final_state(state, generated, billed)
        return await self._write(
            jobs.finish,
            job_id,
            state,
            generated,
            error_code,
            error_message,
            result_message_ids,
            self._now(),
            billed,
            lease,
        )

    async def unfinished_jobs(self) -> list[Job]:
        return await self._read(jobs.unfinished)

    async def active_job_count(self, user: int) -> int:
        return await self._read(jobs.active_count, user)

    async def task_owners(self, task_ids: Collection[str]) -> dict[str, int]:
        return await self._read(jobs.task_owners, list(task_ids)) if task_ids else {}

    async def uncertain_creates(self, since: datetime, until: datetime) -> list[Job]:
        check_time("since", since)
        check_time("until", until)
        return await self._read(jobs.uncertain_creates, since, until)

    async def jobs_for_user(
        self, user: int, *, scope: int | None = None, limit: int = 20
    ) -> list[Job]:
        check_int("limit", limit, 1, 10_000)
        return await self._read(jobs.for_user, user, scope, limit)

    async def job_for_message(self, message_id: int) -> Job | None:
        return await self._read(jobs.for_message, message_id)

    # ---- small settings ----

    async def get_meta(self, key: str) -> str | None:
        return await self._read(_get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(_set_meta, key, value)

    async def meta_items(self, prefix: str) -> dict[str, str]:
        return await self._read(_meta_items, prefix)

    async def delete_meta(self, keys: Sequence[str]) -> None:
        await self._write(_delete_meta, list(keys))


async def _meta_items(con: asyncpg.Connection, prefix: str) -> dict[str, str]:
    # starts_with, not LIKE: prefixes may hold `_` or `%`.
    rows = await con.fetch("SELECT key, value FROM meta WHERE starts_with(key, $1)", prefix)
    return {row["key"]: row["value"] for row in rows}


async def _get_meta(con: asyncpg.Connection, key: str) -> str | None:
    value: str | None = await con.fetchval("SELECT value FROM meta WHERE key = $1", key)
    return value


async def _set_meta(con: asyncpg.Connection, key: str, value: str) -> None:
    await con.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        key,
        value,
    )


async def _delete_meta(con: asyncpg.Connection, keys: list[str]) -> None:
    await con.execute("DELETE FROM meta WHERE key = ANY($1::text[])", keys)
