"""What the store asks of an engine (`Driver`, `Tx`) and what differs between engines: the SQL is
written once with `:name` parameters; sqlite drops row locks and reads `IN (:list)` from JSON,
PostgreSQL numbers the parameters; sqlite's days, times and JSON come back as text (`as_day`,
`as_time`, `as_json` take either form). See docs/store.md.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

T = TypeVar("T")
Row = Mapping[str, Any]

PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
IN_LIST = re.compile(r"\bIN \(:(\w+)\)")
ROW_LOCK = re.compile(r"\s+FOR UPDATE(?: OF \w+)?(?: SKIP LOCKED)?")


@dataclass(frozen=True)
class Doc:
    """A value stored as JSON (jsonb in PostgreSQL, text in sqlite)."""

    value: Any


class Tx:
    """One transaction (or, for reads, one connection). Parameters are passed by name; `run`
    returns how many rows a write touched; `each` runs `sql` once per parameter set, in order
    (PostgreSQL pipelines them in one round trip), and returns every row they return."""

    async def all(self, sql: str, **params: Any) -> list[Row]:
        raise NotImplementedError

    async def run(self, sql: str, **params: Any) -> int:
        raise NotImplementedError

    async def each(self, sql: str, params: Sequence[Mapping[str, Any]]) -> list[Row]:
        raise NotImplementedError

    async def one(self, sql: str, **params: Any) -> Row | None:
        rows = await self.all(sql, **params)
        return rows[0] if rows else None

    async def val(self, sql: str, **params: Any) -> Any:
        row = await self.one(sql, **params)
        return None if row is None else row[0]


Operation = Callable[..., Awaitable[T]]


class Driver:
    """An open database: where (fit to show, no password), whether several processes share it
    (leases, the shared queue and budget), its lock wait, whether opening made the tables. `read`
    runs a function of a `Tx` outside a write transaction (several reads that must agree:
    `snapshot`), `write` in a write transaction that commits when it returns, even if its caller
    stops waiting (`transaction`: one its caller waits for to the end)."""

    def __init__(self, where: str, busy_timeout: float, *, shared: bool) -> None:
        self.where, self.shared, self.busy_timeout = where, shared, busy_timeout
        self.created = False
        self._writes: set[asyncio.Task[Any]] = set()

    async def read(self, fn: Operation[T], *args: Any) -> T:
        raise NotImplementedError

    async def snapshot(self, fn: Operation[T], *args: Any) -> T:
        raise NotImplementedError

    async def transaction(self, fn: Operation[T], *args: Any) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def write(self, fn: Operation[T], *args: Any) -> T:
        """`transaction` in a task of its own: once started it finishes (commit or rollback) even
        if its caller is cancelled, and `settled` waits for it."""

        async def run() -> T:
            return await self.transaction(fn, *args)

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # seen: a write whose caller gave up has nobody else to see it

    async def settled(self) -> None:
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `:name` turned into `$1`, `$2`... and the names in number order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return PARAM.sub(number, IN_LIST.sub(r"= ANY(:\1)", sql)), tuple(names)


def for_sqlite(sql: str) -> str:
    return IN_LIST.sub(r"IN (SELECT value FROM json_each(:\1))", ROW_LOCK.sub("", sql))


_PLAIN = frozenset({int, str, float, type(None)})


def sqlite_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Doc):
        return json.dumps(value.value, separators=(",", ":"))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return int(value)
    return value


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (every `await` in it is a sqlite call made at once) to its
    end, here, on the calling thread: a whole transaction is then one hop to sqlite's thread."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a sqlite operation waited on something else")


def as_day(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def as_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
