"""The intake bench's load clients: a lean HTTP/1.1 keep-alive generator (the default) and httpx.

Usage::

    load = asyncio.run(post_all("lean", "http://127.0.0.1:8000", "/alerts/alertmanager", bodies,
                                headers={"Authorization": "Bearer ..."}, concurrency=16))
    load.codes[202], load.latencies_s, load.errors, load.cpu_per_request_s

Both clients count alike (`Tally`): one code per request (0 = no answer: refused, reset, timed out, a
malformed answer), the latency of every 202 from the request's start (connecting included) to the end
of its answer, the first 20 answers other than 202 as errors with their text, and every failure.
`cpu_s` is this process's CPU time during the load, so what the client itself costs is in the report.

**Why `lean` is hand-written.** The bench runs its client in its own process on the same 2 cores as the
intake, so the client's CPU per request bounds what the bench can measure. Measured here (2026-12-06,
16 connections, one alert per request, 2,000 requests per cell, load average 1.4-2.7):
- httpx.AsyncClient (the project's HTTP client): 2.2-3.1 ms of client CPU per request, so at most
  ~400 requests/s even with a core to itself; beside the intake it measured 220-360 alerts/s at p99
  190-280 ms, while `wrk` measured the same intake at 530-750 alerts/s at p99 36-47 ms in the same hour.
  The bench measured its client, not the intake;
- aiohttp (installed through kubernetes, not a project dependency): 0.28-0.33 ms per request;
  600-620 alerts/s against 690-750 for `lean` in the same run (SQLite storm);
- `lean`: 0.09-0.15 ms per request (15-25x less than httpx), 460-780 alerts/s at p99 31-57 ms, the
  range `wrk` gives. No kept library sends pre-encoded requests on plain asyncio connections; what is
  written here is only that loop, and the answers are parsed by a kept library (httptools).

What `lean` does: `concurrency` connections (`asyncio.Protocol`), each sending one request at a time
and waiting for its answer; each request's bytes (POST line, Host, the given headers, Content-Length,
body) built once per distinct body before the clock starts. The answer is parsed by httptools (llhttp,
the C parser the intake itself serves with): status, headers, a `Content-Length` or chunked body, or
a body that ends with the connection (RFC 9112 §6.3: counted when the server closes). An answer that
says `Connection: close` (or HTTP/1.0 without keep-alive) closes the connection after it, and the next
request opens a new one. `timeout_s` bounds each request from connecting to the last byte of its
answer; on timeout the connection is dropped (its late answer must not be read as the next one's).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools
import httpx

__all__ = ["CLIENTS", "AnswerError", "Load", "Tally", "encode_post", "post_all"]

CLIENTS = ("lean", "httpx")
MAX_ANSWER_ERRORS = 20
"""Answers other than 202 kept as error text (every failure without an answer is kept)."""


class AnswerError(Exception):
    """The server's answer could not be read: malformed, or the connection ended before it did."""


@dataclass
class Tally:
    """What a load counts, the same for every client."""

    latencies_s: list[float] = field(default_factory=list)
    codes: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def answered(self, status: int, latency_s: float, text: str) -> None:
        self.codes[status] += 1
        if status == 202:
            self.latencies_s.append(latency_s)
        elif len(self.errors) < MAX_ANSWER_ERRORS:
            self.errors.append(f"{status}: {text[:200]}")

    def failed(self, exc: BaseException) -> None:
        self.codes[0] += 1
        self.errors.append(f"{type(exc).__name__}: {exc}")


@dataclass
class Load:
    """One load's figures: wall time, the tally, and this process's CPU time during it."""

    elapsed_s: float
    latencies_s: list[float]
    codes: Counter[int]
    errors: list[str]
    cpu_s: float

    @property
    def sent(self) -> int:
        return sum(self.codes.values())

    @property
    def cpu_per_request_s(self) -> float:
        return self.cpu_s / self.sent if self.sent else 0.0


async def post_all(
    client: str,
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    headers: Mapping[str, str],
    *,
    concurrency: int = 16,
    max_s: float = 300.0,
    timeout_s: float = 30.0,
) -> Load:
    """POST each of `bodies` once to `base_url` + `path`, `concurrency` at a time, with `client`.

    No request is started after `max_s` seconds (those left are not sent, nor counted)."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")
    job = _Job(base_url, path, bodies, headers, concurrency, max_s, timeout_s)
    tally = Tally()
    cpu = time.process_time()
    elapsed = await (_lean if client == "lean" else _httpx)(job, tally)
    return Load(elapsed, tally.latencies_s, tally.codes, tally.errors, time.process_time() - cpu)


@dataclass(frozen=True)
class _Job:
    base_url: str
    path: str
    bodies: Sequence[bytes]
    headers: Mapping[str, str]
    concurrency: int
    max_s: float
    timeout_s: float


async def _httpx(job: _Job, tally: Tally) -> float:
    queue = iter(job.bodies)  # one shared iterator: each body is sent once
    limits = httpx.Limits(max_connections=job.concurrency, max_keepalive_connections=job.concurrency)
    async with httpx.AsyncClient(base_url=job.base_url, limits=limits, timeout=job.timeout_s) as client:
        started = time.perf_counter()
        deadline = started + job.max_s

        async def worker() -> None:
            for body in queue:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    answer = await client.post(job.path, content=body, headers=job.headers)
                except httpx.HTTPError as exc:
                    tally.failed(exc)
                    continue
                tally.answered(answer.status_code, time.perf_counter() - sent, answer.text)

        await asyncio.gather(*(worker() for _ in range(job.concurrency)))
        return time.perf_counter() - started


def encode_post(host: str, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 POST, whole: request line, Host, `headers`, Content-Length, blank line, body."""
    fields = {"Host": host, **headers, "Content-Length": str(len(body))}
    if " " in path or any("\r" in text or "\n" in text for text in (path, *fields, *fields.values())):
        raise ValueError("the path, a header name or a header value holds a space or a line break")
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body


async def _lean(job: _Job, tally: Tally) -> float:
    url = urlsplit(job.base_url)
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"the lean client speaks plain http:// only (got {job.base_url!r})")
    host, port, timeout_s = url.hostname, url.port or 80, job.timeout_s
    path = url.path.rstrip("/") + job.path
    built: dict[int, bytes] = {}  # id(body) -> its request: a body repeated (storm) is encoded once
    for body in job.bodies:
        if id(body) not in built:
            built[id(body)] = encode_post(url.netloc, path, job.headers, body)
    queue = iter([built[id(body)] for body in job.bodies])  # shared: each request is sent once
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    deadline = started + job.max_s

    async def worker() -> None:
        conn: _Connection | None = None
        for request in queue:
            if time.perf_counter() > deadline:
                break
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(timeout_s):
                    if conn is None or conn.closed:
                        conn = await _Connection.open(loop, host, port)
                    status, body = await conn.exchange(request)
            except TimeoutError:
                tally.failed(TimeoutError(f"no whole answer within {timeout_s:g} s"))
                _drop(conn)
                conn = None
                continue
            except (OSError, AnswerError) as exc:
                tally.failed(exc)
                _drop(conn)
                conn = None
                continue
            tally.answered(status, time.perf_counter() - sent, body.decode("utf-8", "replace"))
        _drop(conn)

    await asyncio.gather(*(worker() for _ in range(job.concurrency)))
    return time.perf_counter() - started


def _drop(conn: _Connection | None) -> None:
    if conn is not None:
        conn.abort()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer fed to httptools as it arrives."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._headers_done = False
        self._length_given = False
        self.closed = False  # cannot carry another request: closed by either side, or its state unknown

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, host: str, port: int) -> _Connection:
        _, conn = await loop.create_connection(cls, host, port)
        return conn

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send `request`; (status, body) of its answer."""
        assert self._transport is not None and self._answer is None, "one request at a time"
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            return await self._answer
        finally:
            self._answer = None

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self._fail(AnswerError(f"{len(data)} bytes arrived with no request waiting"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(AnswerError(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        if self._headers_done and not self._length_given:  # the body ends with the connection
            self.on_message_complete()
        else:
            why = f": {exc}" if exc else ""
            self._answer.set_exception(AnswerError(f"connection closed before the whole answer{why}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._body, self._headers_done, self._length_given = [], False, False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._length_given = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.closed = True
            if self._transport is not None:
                self._transport.close()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        self.abort()
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
