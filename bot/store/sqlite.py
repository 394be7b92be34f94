"""The sqlite driver: one file, one aiosqlite connection in WAL mode, a whole transaction as one call
on its thread (`driver.drive`), `BEGIN IMMEDIATE` writes, `synchronous=FULL`. The bot holds an
exclusive `flock` on `PATH.lock` for its life (dropped by the kernel even on kill -9): two processes
on one file would each resume every job and run their own DashScope limits."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.store import schema
from bot.store.driver import Driver, Operation, Row, Tx, drive, for_sqlite, sqlite_value
from bot.store.errors import StoreError

T = TypeVar("T")


class SqliteTx(Tx):
    """`Tx` on a plain sqlite3 connection, on its own thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _exec(self, sql: str, params: Mapping[str, Any]) -> sqlite3.Cursor:
        return self.conn.execute(_translate(sql), _values(params))

    async def all(self, sql: str, **params: Any) -> list[Row]:
        return self._exec(sql, params).fetchall()

    async def run(self, sql: str, **params: Any) -> int:
        return self._exec(sql, params).rowcount

    async def each(self, sql: str, params: Sequence[Mapping[str, Any]]) -> list[Row]:
        if "RETURNING" in sql or not sql.lstrip().startswith(("INSERT", "UPDATE", "DELETE")):
            return [row for p in params for row in self._exec(sql, p).fetchall()]
        self.conn.executemany(_translate(sql), [_values(p) for p in params])
        return []


def _values(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: sqlite_value(v) for k, v in params.items()}


_translate = cache(for_sqlite)


# What a failure means, by sqlite's error name, for `describe`.
_MEANINGS = (
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        "The database {path} is locked by another program (waited {wait:g} s). Stop whatever"
        " holds it (another wanbot?) and start again.",
    ),
    (
        ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"),
        "Cannot write the database {path} ({err}). Check DATABASE_URL and the permissions of the"
        " file and its folder.",
    ),
    (("SQLITE_NOTADB", "SQLITE_CORRUPT"), "{path} is not a usable sqlite database ({err})."),
    (("SQLITE_FULL",), "The disk holding the database {path} is full."),
)


def describe(err: sqlite3.Error, path: str, busy_timeout: float) -> StoreError:
    """One line saying what is wrong with the database file and what to do about it."""
    name = getattr(err, "sqlite_errorname", "")
    fallback = "Database error on {path}: {err}."
    meaning = next((m for names, m in _MEANINGS if name.startswith(names)), fallback)
    return StoreError(meaning.format(path=path, err=err, wait=busy_timeout))


def _connect(target: str, busy_timeout: float, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target, timeout=busy_timeout, isolation_level=None, uri=uri, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _in_transaction(conn: sqlite3.Connection, body: Callable[[], T], begin: str) -> T:
    conn.execute(begin)
    try:
        result = body()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _prepare(path: str, busy_timeout: float) -> int:
    """Switch the file to WAL and migrate it in one write transaction (which also proves it can be
    written); the schema version found. Plain sqlite3, before aiosqlite connects, so a start-up
    failure is a plain exception here (a failed aiosqlite connect leaves its thread racing)."""
    conn = _connect(path, busy_timeout)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path} cannot use WAL mode (journal mode stays {mode!r}).")

        def migrate() -> int:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            done = drive(schema.upgrade(SqliteTx(conn), "sqlite", current, f"The database {path}"))
            if done:
                conn.execute(f"PRAGMA user_version = {done[-1]}")  # our own integer
            return int(current)

        return _in_transaction(conn, migrate, "BEGIN IMMEDIATE")
    finally:
        conn.close()


def _check_version(path: str, busy_timeout: float) -> None:
    if not Path(path).is_file():
        raise StoreError(f"The database {path} does not exist yet: start the bot once first.")
    conn = _connect(f"file:{path}?mode=ro", busy_timeout, uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    schema.check_current(f"The database {path}", version)


class SqliteDriver(Driver):
    """`Driver` on one sqlite file. Open it with `SqliteDriver.open`."""

    def __init__(self, db: aiosqlite.Connection, path: str, busy_timeout: float, lock: int | None):
        super().__init__(f"The database {path}", busy_timeout, shared=False)
        self._db: aiosqlite.Connection | None = db
        self.path = path
        self._lock = lock

    @classmethod
    async def open(
        cls, path: str, *, busy_timeout: float, exclusive: bool, read_only: bool
    ) -> SqliteDriver:
        if path == ":memory:":  # a fresh, empty database per connection: not what anyone wants
            raise StoreError("DATABASE_URL must name a database file, e.g. sqlite:///wanbot.db.")
        folder = Path(path).parent
        if not folder.is_dir():
            raise StoreError(
                f"Cannot create the database {path}: the folder {folder} does not exist."
            )
        # Taken before anything touches the file: a second bot must not even migrate it.
        lock = _acquire(path) if exclusive else None
        try:
            if read_only:
                await asyncio.to_thread(_check_version, path, busy_timeout)
                old, target, uri = schema.latest(), f"file:{path}?mode=ro", True
            else:
                old = await asyncio.to_thread(_prepare, path, busy_timeout)
                target, uri = path, False
            db = aiosqlite.Connection(
                lambda: _connect(target, busy_timeout, uri=uri), iter_chunk_size=64
            )
            await db
        except BaseException as err:
            if lock is not None:
                os.close(lock)
            if isinstance(err, sqlite3.Error):
                raise describe(err, path, busy_timeout) from None
            raise
        driver = cls(db, path, busy_timeout, lock)
        driver.created = old == 0
        return driver

    async def close(self) -> None:
        await self.settled()
        db, self._db = self._db, None
        if db is not None:
            await db.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)  # closing the descriptor drops the flock

    async def _call(self, begin: str, fn: Operation[T], args: tuple[Any, ...]) -> T:
        db = self._db
        if db is None:
            raise StoreError(f"The database {self.path} is closed.")

        def body(conn: sqlite3.Connection) -> T:
            return _in_transaction(conn, lambda: drive(fn(SqliteTx(conn), *args)), begin)

        try:
            return await db._execute(body, db._conn)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError):
            raise  # our own mistakes stay as they are
        except sqlite3.DatabaseError as err:
            raise describe(err, self.path, self.busy_timeout) from err

    async def read(self, fn: Operation[T], *args: Any) -> T:
        return await self._call("BEGIN", fn, args)

    snapshot = read

    async def transaction(self, fn: Operation[T], *args: Any) -> T:
        return await self._call("BEGIN IMMEDIATE", fn, args)


def _acquire(database: str) -> int:
    """Take `DATABASE.lock` without waiting; `StoreError` if another process has it."""
    path = f"{database}.lock"
    try:
        # Python opens descriptors non-inheritable: a child process never keeps the lock alive.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise StoreError(
            f"Cannot create the lock file {path} ({err.strerror}). Check DATABASE_URL and the "
            "permissions of the database's folder."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise StoreError(
            f"Another wanbot process{f' (pid {owner})' if owner.isdigit() else ''} is using the "
            f"database {database} (it holds {path}). Stop it first: a sqlite database is for one "
            "bot process; to run several, use PostgreSQL (DATABASE_URL=postgresql://...)."
        ) from None
    except OSError as err:
        os.close(fd)
        raise StoreError(f"Cannot lock {path} ({err.strerror}).") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # only to name the holder in a refusal
    return fd
