"""The bench's load clients against a tiny asyncio HTTP server that misbehaves on request.

The server runs in the test's own event loop on 127.0.0.1; each request's body names the answer it
gets: a plain 202, `Connection: close`, a 503, a chunked body, a body that ends with the connection,
garbage, an answer cut short, or none at all (held until the client gives up). Both clients must count
every answer alike (one code per request, 0 for no answer) and keep the error texts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from bench.loadgen import CLIENTS, Load, encode_post, post_all

OK = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    + b'{"stored":true}'
)
ANSWERS = {
    b"ok": OK,
    b"close": b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    b"503": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nRetry-After: 1\r\n\r\nbusy",
    b"chunked": b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\ntry \r\n5\r\nagain\r\n0\r\n\r\n",
    b"until-close": b"HTTP/1.1 500 Internal Server Error\r\n\r\ngone for good",  # RFC 9112 6.3: read to the close
    b"garbage": b"HTTP/9 what\r\n\r\n",
    b"truncated": b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\nonly part",
}
CLOSES_AFTER = {b"close", b"until-close", b"garbage", b"truncated"}


class Server:
    """Answers each request by its body (ANSWERS); b"slow" is never answered. Counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: Counter[bytes] = Counter()
        self.slow_dropped = asyncio.Event()  # the client closed a connection whose answer was pending

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests[body] += 1
                if body == b"slow":
                    await reader.read()  # until the client gives up and closes
                    self.slow_dropped.set()
                    return
                writer.write(ANSWERS[body])
                await writer.drain()
                if body in CLOSES_AFTER:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def with_server(test: Callable[[Server, str], Awaitable[None]]) -> None:
    server = Server()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        await test(server, f"http://127.0.0.1:{port}")


def load(client: str, url: str, bodies: list[bytes], timeout_s: float = 30.0) -> Awaitable[Load]:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer t"}
    return post_all(client, url, "/alerts", bodies, headers, concurrency=1, timeout_s=timeout_s)


@pytest.mark.parametrize("client", CLIENTS)
def test_every_answer_is_counted_alike(client: str) -> None:
    bodies = [b"ok", b"close", b"ok", b"503", b"ok", b"chunked", b"ok", b"until-close", b"ok"]
    bodies += [b"garbage", b"ok", b"truncated", b"ok", b"ok"]

    async def test(server: Server, url: str) -> None:
        result = await load(client, url, bodies)

        assert result.codes == {202: 9, 503: 2, 500: 1, 0: 2}, result.errors
        assert len(result.latencies_s) == 9 and all(x > 0 for x in result.latencies_s)
        assert result.errors[:3] == ["503: busy", "503: try again", "500: gone for good"]
        assert len(result.errors) == 5  # + the garbage and the truncated answer, named by the client
        assert server.requests == Counter(bodies)  # each sent once, none retried
        # keep-alive: a new connection only after each answer that closed one (4 of them)
        assert server.connections == 1 + len(CLOSES_AFTER)
        assert result.cpu_s > 0 and result.sent == len(bodies)

    asyncio.run(with_server(test))


def test_lean_names_what_was_wrong_with_an_answer() -> None:
    async def test(server: Server, url: str) -> None:
        result = await load("lean", url, [b"garbage", b"truncated", b"ok"])

        assert result.codes == {0: 2, 202: 1}
        assert result.errors[0].startswith("AnswerError: malformed answer: ")
        assert result.errors[1].startswith("AnswerError: connection closed before the whole answer")

    asyncio.run(with_server(test))


@pytest.mark.parametrize("client", CLIENTS)
def test_an_answer_beyond_the_timeout_is_a_failure_and_its_connection_is_dropped(client: str) -> None:
    async def test(server: Server, url: str) -> None:
        result = await load(client, url, [b"slow"], timeout_s=0.3)

        assert result.codes == {0: 1} and result.latencies_s == []
        assert "Timeout" in result.errors[0]
        if client == "lean":
            assert result.errors == ["TimeoutError: no whole answer within 0.3 s"]
        # the server sees the connection closed: a late answer cannot be read as another request's
        await asyncio.wait_for(server.slow_dropped.wait(), timeout=10)

    asyncio.run(with_server(test))


def test_a_refused_connection_is_counted_not_raised() -> None:
    async def test() -> None:
        listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        listening.close()
        await listening.wait_closed()
        result = await load("lean", f"http://127.0.0.1:{port}", [b"ok", b"ok"])
        assert result.codes == {0: 2} and len(result.errors) == 2
        assert result.errors[0].startswith("ConnectionRefusedError")

    asyncio.run(test())


def test_requests_are_encoded_once_and_whole() -> None:
    request = encode_post("127.0.0.1:8000", "/alerts/alertmanager", {"Authorization": "Bearer t"}, b"{}")
    assert request == (
        b"POST /alerts/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAuthorization: Bearer t\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    with pytest.raises(ValueError, match="line break"):
        encode_post("h", "/a", {"X-Evil": "a\r\nContent-Length: 0"}, b"{}")
    with pytest.raises(ValueError, match="unknown client 'curl'"):
        asyncio.run(post_all("curl", "http://127.0.0.1:1", "/", [], {}))
    with pytest.raises(ValueError, match="plain http"):
        asyncio.run(post_all("lean", "https://127.0.0.1:1", "/", [b"{}"], {}))
