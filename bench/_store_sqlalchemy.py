"""Reference for bench/store.py only (the bot never uses it): the store's own ledger (the same SQL,
rules and batching, `bot.store.ledger`) run through SQLAlchemy Core 2's async engine instead of the
store's thin drivers, to weigh the well-kept library against them by measurement.

SQLAlchemy's `text()` takes the same `:name` parameters on both engines; what it does not cover is
handed over as in the store's drivers (row locks dropped on sqlite, list parameters). Over aiosqlite
every statement is its own hop to sqlite's thread (SQLAlchemy drives the driver through greenlets),
where the store's sqlite driver runs a whole transaction in one hop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.store import ledger
from bot.store.driver import IN_LIST, for_sqlite, sqlite_value
from bot.store.ledger import Close, Ledger, Policy, Reserve
from bot.store.models import Limits, Reservation


class AlchemyTx:
    """The store's `Tx` on an SQLAlchemy async connection."""

    def __init__(self, conn: AsyncConnection, sqlite: bool) -> None:
        self.conn = conn
        self.sqlite = sqlite

    def _sql(self, sql: str) -> Any:
        return text(for_sqlite(sql) if self.sqlite else IN_LIST.sub(r"= ANY(:\1)", sql))

    def _params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: sqlite_value(v) for k, v in params.items()} if self.sqlite else dict(params)

    async def one(self, sql: str, **params: Any) -> Any:
        return (await self.conn.execute(self._sql(sql), self._params(params))).mappings().first()

    async def all(self, sql: str, **params: Any) -> list[Any]:
        result = await self.conn.execute(self._sql(sql), self._params(params))
        return list(result.mappings().all())

    async def val(self, sql: str, **params: Any) -> Any:
        return (await self.conn.execute(self._sql(sql), self._params(params))).scalar()

    async def run(self, sql: str, **params: Any) -> int:
        return (await self.conn.execute(self._sql(sql), self._params(params))).rowcount

    async def each(self, sql: str, params: Sequence[Mapping[str, Any]]) -> list[Any]:
        if not params:
            return []
        if "RETURNING" in sql or sql.lstrip().startswith("SELECT"):
            return [row for p in params for row in await self.all(sql, **p)]
        await self.conn.execute(self._sql(sql), [self._params(p) for p in params])
        return []


class AlchemyLedger:
    """reserve/settle through `bot.store.ledger.Ledger`, each batch one SQLAlchemy transaction."""

    def __init__(self, engine: AsyncEngine, default_daily_limit: int, limits: Limits) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.policy = Policy(default_daily_limit, limits)
        self.ledger = Ledger(self._write)

    async def _write(self, ops: list[Any]) -> list[Any]:
        async with self.engine.begin() as conn:
            return await ledger.apply(AlchemyTx(conn, self.sqlite), ops, self.policy)

    async def reserve(self, scope: int, user: int, images: int) -> Reservation:
        from datetime import UTC, datetime

        outcome = await self.ledger.run(Reserve(scope, user, images, (), datetime.now(UTC)))
        assert isinstance(outcome, Reservation), outcome
        return outcome

    async def settle(self, reservation_id: int, generated: int) -> int:
        from datetime import UTC, datetime

        return await self.ledger.run(Close(reservation_id, generated, datetime.now(UTC))) or 0


@asynccontextmanager
async def alchemy_ledger(
    url: str, default_daily_limit: int, limits: Limits
) -> AsyncIterator[AlchemyLedger]:
    """`url`: a database the store has already made (its schema); sqlite:/// or postgresql://."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url.replace("sqlite:", "sqlite+aiosqlite:", 1), pool_size=1)
    else:
        engine = create_async_engine(url.replace("postgresql:", "postgresql+asyncpg:", 1))
    try:
        yield AlchemyLedger(engine, default_daily_limit, limits)
    finally:
        await engine.dispose()
