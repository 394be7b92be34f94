"""A loopback TCP proxy for fault injection: the bot talks to PostgreSQL through it, and a test can
cut every connection, refuse new ones, black-hole the traffic for a while, or add latency.

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite(database_url)      # the same URL, pointed at the proxy
        await proxy.cut(refuse_for=20)         # every connection reset; new ones refused 20 s
        proxy.blackhole(5)                     # nothing moves for 5 s, then everything does
        proxy.latency = 0.15                   # each way: 300 ms more per round trip

A black hole is a network that loses packets: TCP keeps what was sent and delivers it once the path
is back, so bytes are held, never dropped, and new connections hang rather than fail. A cut is a
server or a middlebox that resets every connection; while it refuses, a connect fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

CHUNK = 64 * 1024


class TcpProxy:
    """Forwards every connection on 127.0.0.1:`port` to `upstream_host:upstream_port`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.latency = 0.0  # seconds added to each direction of every byte's trip
        self.refused = 0  # connections refused while cut
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._refuse_until = 0.0
        self._open = asyncio.Event()  # cleared while black-holed
        self._open.set()
        self._reopen: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        self._open.set()
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.abort()
        await asyncio.gather(*(p.done for p in list(self._pipes)), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def rewrite(self, url: str) -> str:
        """`url` (a postgresql:// URL) with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def connections(self) -> int:
        return len(self._pipes)

    async def cut(self, *, refuse_for: float = 0.0) -> None:
        """Reset every open connection; refuse new ones for `refuse_for` seconds."""
        self._refuse_until = time.monotonic() + refuse_for
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.abort()
        await asyncio.gather(*(p.done for p in pipes), return_exceptions=True)

    def restore(self) -> None:
        """End a cut's refusals and a black hole now."""
        self._refuse_until = 0.0
        self._lift()

    def blackhole(self, seconds: float) -> None:
        """Hold every byte (both ways, every connection, new ones too) for `seconds`."""
        self._open.clear()
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = asyncio.get_running_loop().call_later(seconds, self._lift)

    def _lift(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        self._open.set()

    @property
    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            _reset(writer)
            return
        await self._open.wait()  # a connect into a black hole hangs until it lifts
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.refused += 1
            _reset(writer)
            return
        if self.refusing:  # cut while connecting
            self.refused += 1
            _reset(writer)
            _reset(up_writer)
            return
        self.accepted += 1
        pipe = _Pipe(self, (reader, writer), (up_reader, up_writer))
        self._pipes.add(pipe)
        pipe.done.add_done_callback(lambda _: self._pipes.discard(pipe))


class _Pipe:
    """One proxied connection: a pump each way, each with its own ordered delivery queue."""

    def __init__(
        self,
        proxy: TcpProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.writers = (client[1], server[1])
        self.tasks = [
            asyncio.ensure_future(self._pump(client[0], server[1])),
            asyncio.ensure_future(self._pump(server[0], client[1])),
        ]
        self.done: asyncio.Future[list[object]] = asyncio.gather(
            *self.tasks, return_exceptions=True
        )
        self.done.add_done_callback(lambda _: self._close())

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, writer))
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + self.proxy.latency, data))
            queue.put_nowait((0.0, b""))
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            self.abort()

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.proxy._open.wait()
            writer.write(data)
            await writer.drain()

    def abort(self) -> None:
        for task in self.tasks:
            task.cancel()
        self._close()

    def _close(self) -> None:
        for writer in self.writers:
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), as a server that died or a middlebox that dropped the flow."""
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()
