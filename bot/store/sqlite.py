"""The sqlite backend: one aiosqlite connection, WAL, a bounded busy timeout, whole transactions.

Every operation is one function run on the connection's thread. Because aiosqlite runs calls on
that thread one after another, operations of one `SqliteStore` never interleave (no lock needed).
Writes go through `WriteBatcher`: those that queue up share one `BEGIN IMMEDIATE ... COMMIT`, each
in its own savepoint. `BEGIN IMMEDIATE` plus the busy timeout serialize them against other
connections and processes on the same file, so a check and its hold can never be split.

Durability: `synchronous=FULL`. Every commit is on disk before the caller hears it succeeded, so a
charge or a job row survives a crash or a power cut. Group commit shares each fsync between all the
writes of a batch, which keeps that affordable under load.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiosqlite

from bot.store import checks
from bot.store import sqlite_jobs as jobs
from bot.store import sqlite_quota as quota
from bot.store.base import Store
from bot.store.checks import MAX_LIMIT, check_int, check_time
from bot.store.errors import QuotaRefused, StoreError
from bot.store.migrations import SCHEMA_VERSION, migrate
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
from bot.store.sqlite_batch import WriteBatcher
from bot.store.sqlite_lock import ProcessLock, acquire

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
MEMORY = ":memory:"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def describe(err: sqlite3.Error, path: str, busy_timeout: float) -> StoreError:
    """One line saying what is wrong with the database file and what to do about it."""
    name = getattr(err, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"The database {path} is locked by another program (waited {busy_timeout:g} s). "
            "Stop whatever holds it (another wanbot?) and start again."
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return StoreError(
            f"Cannot write the database {path} ({err}). Check DATABASE_URL and the permissions "
            "of the file and its folder."
        )
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return StoreError(f"{path} is not a usable sqlite database ({err}).")
    if name.startswith("SQLITE_FULL"):
        return StoreError(f"The disk holding the database {path} is full.")
    return StoreError(f"Database error on {path}: {err}.")


def _pragmas(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Per-connection settings."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")


def _prepare(path: str, busy_timeout: float) -> int:
    """Open the file with plain sqlite3, switch it to WAL and migrate it in one write transaction
    (which also proves we can write); return the schema version found.

    Done before aiosqlite connects, so every start-up failure happens here, where it is a plain
    exception: a failed aiosqlite connect leaves its worker thread racing the closing event loop.
    """
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        _pragmas(conn, busy_timeout)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path} cannot use WAL mode (journal mode stays {mode!r}).")
        return _transaction(conn, lambda c: migrate(c, path))
    finally:
        conn.close()


def _check_version(path: str, busy_timeout: float) -> None:
    """For a read-only open: the file must exist and already be migrated by the bot."""
    if not Path(path).is_file():
        raise StoreError(f"The database {path} does not exist yet: start the bot once first.")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"The database {path} has schema version {version}, this wanbot {SCHEMA_VERSION}: "
            "start the bot (which upgrades it) before reading it."
        )


def _transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """Run `body` in a write transaction: taken at once, so a check and its write stay together."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _snapshot_read(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """Run several reads against one consistent snapshot."""
    conn.execute("BEGIN")
    try:
        return body(conn)
    finally:
        conn.execute("COMMIT")


class SqliteStore(Store):
    """`Store` on one sqlite file. Open it with `SqliteStore.open` (or `bot.store.open_store`)."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: str,
        *,
        clock: Clock,
        default_daily_limit: int,
        busy_timeout: float,
        lock: ProcessLock | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._db: aiosqlite.Connection | None = db
        self._lock = lock
        self.path = path
        self._clock = clock
        self.default_daily_limit = default_daily_limit
        self.limits = limits or Limits()
        self.busy_timeout = busy_timeout
        self._batcher = WriteBatcher(self._call)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        clock: Clock | None = None,
        default_daily_limit: int = 10,
        busy_timeout: float = 5.0,
        exclusive: bool = False,
        limits: Limits | None = None,
        read_only: bool = False,
    ) -> SqliteStore:
        """Open (creating if needed) and migrate the database at `path`. Raises `StoreError`.

        `exclusive`: hold `PATH.lock` until `close` (or the process's end), refusing to open if
        another process holds it. The bot sets it; read-only CLI commands don't.
        `read_only` opens an existing, migrated file without ever taking a write lock (reports
        while the bot runs); every write then fails with a `StoreError`.
        """
        check_int("default_daily_limit", default_daily_limit, 0, MAX_LIMIT)
        if path == MEMORY:  # a fresh, empty database per connection: not what anyone wants here
            raise StoreError("DATABASE_URL must name a database file, e.g. sqlite:///wanbot.db.")
        folder = Path(path).parent
        if not folder.is_dir():
            raise StoreError(
                f"Cannot create the database {path}: the folder {folder} does not exist."
            )
        # Taken before anything touches the file: a second bot must not even migrate it.
        lock = acquire(path) if exclusive else None
        try:
            if read_only:
                await asyncio.to_thread(_check_version, path, busy_timeout)
                old = SCHEMA_VERSION
                db = await aiosqlite.connect(
                    f"file:{path}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None
                )
            else:
                old = await asyncio.to_thread(_prepare, path, busy_timeout)
                db = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        except BaseException as err:
            if lock is not None:
                lock.release()
            if isinstance(err, sqlite3.Error):
                raise describe(err, path, busy_timeout) from None
            raise
        store = cls(
            db,
            path,
            clock=clock or _utc_now,
            default_daily_limit=default_daily_limit,
            busy_timeout=busy_timeout,
            lock=lock,
            limits=limits,
        )
        try:
            await store._call(_pragmas, busy_timeout)
        except BaseException:
            await store.close()
            raise
        if old == 0:
            log.info("created the database %s", path)
        return store

    async def close(self) -> None:
        if self._db is not None:
            await self._batcher.wait_idle()
        db, self._db = self._db, None
        if db is not None:
            await db.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    # ---- plumbing ----

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        db = self._db
        if db is None:
            raise StoreError(f"The database {self.path} is closed.")
        try:
            # aiosqlite runs each call on the connection's own thread. Handing it a whole
            # transaction as one call costs one thread hop instead of one per statement, which
            # is what makes thousands of reservations per second possible (see bench/store.py).
            return await db._execute(fn, db._conn, *args)
        except sqlite3.DatabaseError as err:
            self._raise_translated(err)

    def _raise_translated(self, err: sqlite3.DatabaseError) -> NoReturn:
        """Database trouble becomes a one-line StoreError; our own mistakes stay as they are."""
        if isinstance(err, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError):
            raise err
        raise describe(err, self.path, self.busy_timeout) from err

    async def _write(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_abandoned: Callable[[T], None] | None = None,
    ) -> T:
        if self._db is None:
            raise StoreError(f"The database {self.path} is closed.")
        try:
            return await self._batcher.submit(lambda conn: fn(conn, *args), on_abandoned)
        except sqlite3.DatabaseError as err:
            self._raise_translated(err)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(_snapshot_read, lambda conn: fn(conn, *args))

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
            on_abandoned=self._release_abandoned,
        )
        if isinstance(outcome, QuotaRefused):
            raise outcome
        return outcome

    def _release_abandoned(self, reservation: Reservation | QuotaRefused) -> None:
        if isinstance(reservation, QuotaRefused):
            return  # nothing was held
        log.info("reservation %d abandoned by a cancelled caller; releasing it", reservation.id)
        now = self._now()
        # Queued at once (not from a new task), so a `close` already draining still runs it.
        undo = self._batcher.enqueue(
            lambda conn: quota.close_reservation(conn, reservation.id, 0, now, "released")
        )
        undo.add_done_callback(_log_failure)

    async def settle(self, reservation_id: int, generated: int) -> int:
        check_int("generated", generated, 0, MAX_LIMIT)
        charged = await self._write(
            quota.close_reservation, reservation_id, generated, self._now(), "settled"
        )
        return charged or 0

    async def release(self, reservation_id: int) -> None:
        await self._write(quota.close_reservation, reservation_id, 0, self._now(), "released")

    async def release_orphaned_reservations(self, older_than: timedelta = timedelta(0)) -> int:
        count = await self._write(quota.release_orphans, self._now(), older_than)
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
        now = self._now()
        totals = await self._read(quota.server_totals, scope, now, self.limits)
        billed, undelivered = await self._read(jobs.billed_on, scope, now)
        return replace(totals, billed=billed, undelivered=undelivered)

    async def usage_report(self, scope: int | None, *, days: int = 7, top: int = 10) -> UsageReport:
        check_int("days", days, 1, 366)
        check_int("top", top, 1, 100)
        return await self._read(quota.usage_report, scope, self._now(), days, top, self.limits)

    async def busiest_scopes(self, *, days: int = 7, top: int = 4) -> list[tuple[int, int]]:
        check_int("days", days, 1, 366)
        check_int("top", top, 1, 100)
        return await self._read(quota.busiest_scopes, self._now(), days, top)

    # ---- admin operations ----

    async def set_user_limit(
        self, scope: int, actor: int, user: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        if limit is not None:
            check_int("limit", limit, 0, MAX_LIMIT)
        return await self._write(
            quota.set_user_limit, scope, actor, user, limit, self._now(), self._ceiling(scope)
        )

    async def set_server_default(
        self, scope: int, actor: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        if limit is not None:
            check_int("limit", limit, 0, MAX_LIMIT)
        return await self._write(
            quota.set_server_default, scope, actor, limit, self._now(), self._ceiling(scope)
        )

    async def set_server_cap(
        self, scope: int, actor: int, cap: int | None
    ) -> tuple[int | None, int | None]:
        if cap is not None:
            check_int("cap", cap, 0, MAX_LIMIT)
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
        return await self._call(quota.audit_log, scope, limit, target)

    def _ceiling(self, scope: int) -> int | None:
        return self.limits.server_ceiling if scope else None

    async def set_role_limit(
        self, scope: int, actor: int, role: int, limit: int | None
    ) -> tuple[int | None, int | None]:
        if limit is not None:
            check_int("limit", limit, 0, MAX_LIMIT)
        return await self._write(
            quota.set_role_limit, scope, actor, role, limit, self._now(), self._ceiling(scope)
        )

    async def role_limits(self, scope: int) -> dict[int, int]:
        return await self._call(quota.role_limits, scope)

    # ---- the owner's switches ----

    async def bot_state(self) -> BotState:
        return await self._read(quota.bot_state, self.limits)

    async def set_paused(self, actor: int, paused: bool) -> tuple[bool, bool]:
        return await self._write(quota.set_paused, actor, paused, self._now())

    async def set_global_cap(self, actor: int, cap: int | None) -> tuple[int | None, int | None]:
        if cap is not None:
            check_int("cap", cap, 0, MAX_LIMIT)
        return await self._write(quota.set_global_cap, actor, cap, self._now(), self.limits)

    # ---- jobs ----

    async def _insert_job(self, values: dict[str, Any], max_active: int | None = None) -> Job:
        return await self._write(jobs.create, values, self._now(), max_active)

    async def get_job(self, job_id: int) -> Job | None:
        return await self._call(jobs.get, job_id)

    # One process on sqlite: the in-memory queue has no leases, so `lease` is accepted and unused.

    async def update_job(self, job_id: int, *, lease: Lease | None = None, **fields: Any) -> Job:
        fields = checks.job_changes(fields)
        return await self._write(jobs.update, job_id, fields, self._now())

    async def set_task_id(self, job_id: int, task_id: str, *, lease: Lease | None = None) -> None:
        if not task_id:
            raise ValueError("task_id is empty")
        await self._write(jobs.set_task_id, job_id, task_id, self._now())

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
        )

    async def unfinished_jobs(self) -> list[Job]:
        return await self._call(jobs.unfinished)

    async def active_job_count(self, user: int) -> int:
        return await self._call(jobs.active_count, user)

    async def task_owners(self, task_ids: Collection[str]) -> dict[str, int]:
        return await self._call(jobs.task_owners, list(task_ids)) if task_ids else {}

    async def uncertain_creates(self, since: datetime, until: datetime) -> list[Job]:
        check_time("since", since)
        check_time("until", until)
        return await self._call(jobs.uncertain_creates, since, until)

    async def jobs_for_user(
        self, user: int, *, scope: int | None = None, limit: int = 20
    ) -> list[Job]:
        check_int("limit", limit, 1, 10_000)
        return await self._call(jobs.for_user, user, scope, limit)

    async def job_for_message(self, message_id: int) -> Job | None:
        return await self._read(jobs.for_message, message_id)

    # ---- small settings ----

    async def get_meta(self, key: str) -> str | None:
        return await self._call(_get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(_set_meta, key, value)

    async def meta_items(self, prefix: str) -> dict[str, str]:
        return await self._call(_meta_items, prefix)

    async def delete_meta(self, keys: Sequence[str]) -> None:
        await self._write(_delete_meta, list(keys))


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not release an abandoned reservation: %s", future.exception())


def _get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _meta_items(conn: sqlite3.Connection, prefix: str) -> dict[str, str]:
    # A range, not LIKE: prefixes may hold `_` or `%`, and the primary key index serves a range.
    rows = conn.execute(
        "SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff")
    )
    return dict(rows.fetchall())


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _delete_meta(conn: sqlite3.Connection, keys: list[str]) -> None:
    conn.executemany("DELETE FROM meta WHERE key = ?", [(key,) for key in keys])
