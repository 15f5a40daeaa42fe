"""A loopback TCP proxy that spreads connections over several Prefect API processes (round robin).

Usage::

    with RoundRobinProxy([("127.0.0.1", 4201), ("127.0.0.1", 4202)]) as proxy:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{proxy.port}/api"

What a Kubernetes Service does for the API replicas, on one machine: each new client connection goes
to the next backend that accepts it; a backend that refuses (its process was killed) is skipped, so
clients see at most the connections they had open to it drop. TCP, not HTTP: the websocket
(`/api/events/out`) the warm runners listen on passes through unchanged.

Hand-written because Prefect's clients take one API URL (no list to balance over), and no proxy is
among the project's dependencies; this is ~80 lines of asyncio in a thread, for the scale test only.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Sequence
from types import TracebackType

__all__ = ["RoundRobinProxy"]


class RoundRobinProxy:
    def __init__(self, backends: Sequence[tuple[str, int]], host: str = "127.0.0.1") -> None:
        if not backends:
            raise ValueError("RoundRobinProxy needs at least one backend")
        self.backends = list(backends)
        self.host = host
        self.port = 0
        self.connections = 0
        self.refused = 0
        """Connections a backend refused and the next one took."""
        self._next = itertools.cycle(range(len(self.backends)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-proxy", daemon=True)

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the API proxy did not start")
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self._server = loop.run_until_complete(asyncio.start_server(self._client, sock=sock))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            # Connections still open: cancel their pipes and let them close their sockets while the
            # loop runs; left to the garbage collector they close on a closed loop ("Event loop is
            # closed", an unraisable exception that fails a pytest session at exit).
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _open_backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._next)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), timeout=2)
            except (OSError, TimeoutError):
                self.refused += 1
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        backend = await self._open_backend()
        if backend is None:  # every API process is down: the client sees the connection close
            writer.close()
            return
        b_reader, b_writer = backend
        await asyncio.gather(_pipe(reader, b_writer), _pipe(b_reader, writer), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
