"""The PostgreSQL driver: an asyncpg pool shared by any number of bot processes on one database.
`lock_timeout` (the `busy_timeout` of `open_store`) bounds every lock wait; a read-only driver
migrates nothing and runs read-only transactions; messages name the database without its password
(`Target`). Also the named locks (`exclusive`) and the pool the shared queue and budget use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import asyncpg

from bot.store import schema
from bot.store.driver import Doc, Driver, Operation, Row, Tx, positional
from bot.store.errors import StoreError
from bot.store.urls import Target

log = logging.getLogger(__name__)
T = TypeVar("T")
# pg_advisory_xact_lock key for migrations: "wanbot" in ASCII.
MIGRATION_LOCK = 0x77616E626F74
# pg_advisory_lock(key, name) space of `exclusive` ("wl").
NAMED_LOCKS = 0x776C
# How often a process waiting for a named lock asks for it again.
NAMED_LOCK_POLL = 0.25
# Database trouble, as opposed to our own exceptions (QuotaRefused, NotFound, ValueError). An
# InternalClientError is a pooled connection left mid-operation by a cut or a cancelled call.
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
# Seconds any one statement may take before the driver gives up on it (and cancels it at the
# server): a server that stopped answering, or a network that lost the connection without a
# reset, fails the call instead of hanging it for as long as TCP keeps retrying.
COMMAND_TIMEOUT = 30.0
# The same bound for a schema upgrade's statements, which may rewrite a large table.
MIGRATION_TIMEOUT = 3600.0
# Our own mistakes (a bad id, a broken constraint) go up as they are, as sqlite's do.
OWN_MISTAKES = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)
_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


_translate = cache(positional)


def _args(names: tuple[str, ...], params: Mapping[str, Any]) -> list[Any]:
    return [v.value if isinstance(v := params[n], Doc) else v for n in names]


class PostgresTx(Tx):
    """`Tx` on one asyncpg connection."""

    def __init__(self, con: asyncpg.Connection, timeout: float | None = None) -> None:
        self.con = con
        self.timeout = timeout  # None: the pool's COMMAND_TIMEOUT

    async def all(self, sql: str, **params: Any) -> list[Row]:
        text, names = _translate(sql)
        return list(await self.con.fetch(text, *_args(names, params), timeout=self.timeout))

    async def run(self, sql: str, **params: Any) -> int:
        text, names = _translate(sql)
        status = await self.con.execute(text, *_args(names, params), timeout=self.timeout)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def each(self, sql: str, params: Sequence[Mapping[str, Any]]) -> list[Row]:
        if not params:
            return []
        text, names = _translate(sql)
        return list(
            await self.con.fetchmany(text, [_args(names, p) for p in params], timeout=self.timeout)
        )


async def init_connection(con: asyncpg.Connection) -> None:
    """jsonb in and out as Python values, as sqlite's JSON text. Binary, as COPY (used by
    `bot.store.transfer`) takes binary encoders only: jsonb's is a version byte, 1, then the text."""
    await con.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + json.dumps(value, separators=(",", ":")).encode(),
        decoder=lambda data: json.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


class PostgresDriver(Driver):
    """`Driver` on a PostgreSQL database. Open it with `PostgresDriver.open`."""

    def __init__(self, pool: asyncpg.Pool, target: Target, busy_timeout: float, read_only: bool):
        super().__init__(f"The {target}", busy_timeout, shared=True)
        self._pool: asyncpg.Pool | None = pool
        self.target, self.read_only = target, read_only

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        busy_timeout: float,
        read_only: bool,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> PostgresDriver:
        target = Target.parse(url)
        settings = {
            "lock_timeout": str(max(1, int(busy_timeout * 1000))),
            "application_name": "wanbot",
            "timezone": "UTC",  # times come back as UTC whatever the server's setting
        }
        if read_only:  # the server itself refuses a write, should one get past `write`
            settings["default_transaction_read_only"] = "on"
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=10,
                init=init_connection,
                timeout=max(busy_timeout, 5.0),  # a server that never answers must not hang us
                command_timeout=max(command_timeout, busy_timeout * 2),
                server_settings=settings,
            )
        except ValueError as err:  # the driver could not make sense of the URL
            raise StoreError(
                f"DATABASE_URL is not a PostgreSQL URL the driver understands "
                f"({target.scrub(str(err))}); expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE."
            ) from None
        except DATABASE_ERRORS as err:
            raise describe(err, target, busy_timeout) from None
        driver = cls(pool, target, busy_timeout, read_only)
        try:
            async with pool.acquire() as con:
                if read_only:
                    exists = await con.fetchval(
                        "SELECT to_regclass('schema_migrations') IS NOT NULL"
                    )
                    schema.check_current(driver.where, await _version(con) if exists else 0)
                else:
                    driver.created = await _migrate(con, driver.where) == 0
        except BaseException as err:
            await pool.close()
            if isinstance(err, DATABASE_ERRORS):
                raise describe(err, target, busy_timeout) from None
            raise
        return driver

    async def close(self) -> None:
        if self._pool is None:
            return
        pool = self.pool
        self._pool = None  # refuse new work; writes under way may still finish
        await self.settled()
        await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"The {self.target} is closed.")
        return self._pool

    async def _on(self, fn: Operation[T], args: tuple[Any, ...], tx: dict[str, Any] | None) -> T:
        try:
            async with self.pool.acquire() as con:
                if tx is None:
                    return await fn(PostgresTx(con), *args)
                async with con.transaction(**tx):
                    return await fn(PostgresTx(con), *args)
        except OWN_MISTAKES:
            raise
        except DATABASE_ERRORS as err:
            raise describe(err, self.target, self.busy_timeout) from err

    async def read(self, fn: Operation[T], *args: Any) -> T:
        """Reads made of one statement each need no transaction (a statement is one snapshot)."""
        return await self._on(fn, args, None)

    async def snapshot(self, fn: Operation[T], *args: Any) -> T:
        return await self._on(fn, args, {"isolation": "repeatable_read", "readonly": True})

    async def transaction(self, fn: Operation[T], *args: Any) -> T:
        if self.read_only:
            raise StoreError(f"The {self.target} was opened read-only: nothing can be changed.")
        return await self._on(fn, args, {})

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """A session advisory lock on a connection of its own (the server drops a dead session's
        locks). Asked for again and again, not waited for under `lock_timeout`: the holder may be
        in a slow call (a command sync waiting out Discord's rate limit)."""
        key = zlib.crc32(name.encode())
        async with self.pool.acquire() as con:
            waiting = False
            while not await con.fetchval("SELECT pg_try_advisory_lock($1, $2)", NAMED_LOCKS, key):
                if not waiting:
                    log.info("waiting for another process to finish its %s", name)
                    waiting = True
                await asyncio.sleep(NAMED_LOCK_POLL)
            try:
                yield
            finally:
                await con.execute("SELECT pg_advisory_unlock($1, $2)", NAMED_LOCKS, key)


async def _version(con: asyncpg.Connection) -> int:
    return int(await con.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def _migrate(con: asyncpg.Connection, where: str) -> int:
    """Bring the schema up to date in one transaction; the version found. Processes starting
    together wait for each other's migration (the advisory lock, within lock_timeout)."""
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await con.execute(_VERSION_TABLE)
        current = await _version(con)
        done = await schema.upgrade(
            PostgresTx(con, MIGRATION_TIMEOUT), "postgresql", current, where
        )
        await con.executemany(
            "INSERT INTO schema_migrations (version) VALUES ($1)", [(v,) for v in done]
        )
    return current


# What a failure means, by the driver's exception, for `describe`.
_MEANINGS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError),
        "The {target} refused the login of user {who} ({detail}). Check the user and password in"
        " DATABASE_URL.",
    ),
    (
        asyncpg.InvalidCatalogNameError,
        "The {target} does not exist. Create it (createdb {database}) or fix DATABASE_URL.",
    ),
    (
        asyncpg.InsufficientPrivilegeError,
        "User {who} may not change the {target} ({detail}). Make the user the database's owner,"
        " or grant it CREATE on the schema.",
    ),
    (
        asyncpg.LockNotAvailableError,
        "The {target} kept a row locked for more than {wait:g} s (another bot process stuck in a"
        " transaction?). Try again, or look at pg_stat_activity.",
    ),
    (
        asyncpg.TooManyConnectionsError,
        "The {target} has no connection left ({detail}). Raise max_connections or run fewer bot"
        " processes.",
    ),
    (
        asyncpg.ReadOnlySQLTransactionError,
        "The {target} is read-only (a standby?). Point DATABASE_URL at the primary.",
    ),
    (asyncpg.DiskFullError, "The disk holding the {target} is full."),
    (
        asyncpg.CannotConnectNowError,
        "The {target} is starting up or shutting down; try again shortly.",
    ),
    (TimeoutError, "The {target} did not answer in time. Is the server up and reachable?"),
    (
        (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError),
        "Cannot reach the {target} ({detail}). Is the server running, and are the host and port"
        " in DATABASE_URL right?",
    ),
)


def describe(err: BaseException, target: Target, busy_timeout: float) -> StoreError:
    """One line saying what is wrong with the database and what to do about it."""
    facts = {
        "target": target,
        "who": target.user or "(default)",
        "detail": target.scrub(str(err) or type(err).__name__),
        "database": target.database,
        "wait": busy_timeout,
    }
    for kinds, meaning in _MEANINGS:
        if isinstance(err, kinds):
            return StoreError(meaning.format(**facts))
    return StoreError("Database error on the {target}: {detail}.".format(**facts))
