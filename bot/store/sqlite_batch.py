"""Group commit for sqlite: write transactions that queue up while one commit is running share the
next one, each inside its own savepoint.

Each operation still succeeds or fails on its own (a refused reservation rolls back to its savepoint
and the others commit), and none is reported done before the commit that holds it. Sharing one
`BEGIN IMMEDIATE ... COMMIT` and one thread hop between many operations roughly doubles what one
connection can write under load, and shortens the queue every caller waits in.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

Operation = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]  # (succeeded, result or exception)
MAX_BATCH = 64


def run_batch(conn: sqlite3.Connection, operations: list[Operation]) -> list[Outcome]:
    """Run the operations in one write transaction, each in a savepoint; commit once."""
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for operation in operations:
            conn.execute("SAVEPOINT op")
            try:
                outcomes.append((True, operation(conn)))
            except Exception as err:
                if not conn.in_transaction:
                    # sqlite rolled the whole transaction back (disk full, I/O error): the batch
                    # fails as a whole and nothing in it was committed.
                    raise
                conn.execute("ROLLBACK TO op")
                outcomes.append((False, err))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


@dataclass
class _Item:
    operation: Operation
    future: asyncio.Future[Any]
    on_abandoned: Callable[[Any], None] | None


class WriteBatcher:
    """Queues write operations and runs them in batches through `call` (the connection's thread)."""

    def __init__(self, call: Callable[[Operation], Awaitable[Any]]) -> None:
        self._call = call
        self._pending: list[_Item] = []
        self._runner: asyncio.Task[None] | None = None

    def enqueue(
        self, operation: Operation, on_abandoned: Callable[[Any], None] | None = None
    ) -> asyncio.Future[Any]:
        """Queue `operation` for the next batch; the future gets its result or exception.

        If the future is cancelled before its batch starts, the operation never runs; if it is
        cancelled while the batch runs, `on_abandoned` gets the committed result to undo it.
        """
        loop = asyncio.get_running_loop()
        item = _Item(operation, loop.create_future(), on_abandoned)
        self._pending.append(item)
        if self._runner is None:
            self._runner = loop.create_task(self._drain())
        return item.future

    async def submit(
        self, operation: Operation, on_abandoned: Callable[[Any], None] | None = None
    ) -> Any:
        """`enqueue` and wait for the outcome."""
        return await self.enqueue(operation, on_abandoned)

    async def wait_idle(self) -> None:
        """Return once every queued operation has run."""
        while self._runner is not None:
            await asyncio.shield(self._runner)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = [i for i in self._pending[:MAX_BATCH] if not i.future.cancelled()]
                del self._pending[:MAX_BATCH]
                if batch:
                    await self._run(batch)
        finally:
            self._runner = None

    async def _run(self, batch: list[_Item]) -> None:
        try:
            outcomes: list[Outcome] = await self._call(
                partial(run_batch, operations=[i.operation for i in batch])
            )
        except BaseException as err:
            # The commit failed (or never started): none of them happened.
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            if item.future.done():
                if ok and item.on_abandoned is not None:
                    item.on_abandoned(value)
            elif ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)
