"""The hot path's HTTP edge (intake/edge.py) and the group commit's queue (intake/batch.py), without
a server: what Starlette's `Request`/`JSONResponse` gave, the same; the limits, each with its answer;
requests still queued when the committer stops are answered, not left waiting."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from intake.batch import GroupCommitter
from intake.edge import Refused, json_bytes, read_body, request_headers, send_json
from intake.ingest import IngestRequest, Receipt


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/alerts/generic", "headers": headers}


def _receiver(*messages: dict[str, Any], then_wait: bool = False) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if then_wait:
            await asyncio.sleep(3600)
        raise AssertionError("read past the last message")

    return receive


def test_headers_are_read_as_starlette_reads_them_the_first_of_a_repeat() -> None:
    raw = [
        (b"authorization", b"Bearer first"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer second"),
        (b"x-name", "caf\u00e9".encode("latin-1")),
    ]
    ours = request_headers(_scope(raw))
    theirs = Request(_scope(raw)).headers

    assert ours == dict(theirs)
    assert ours["authorization"] == theirs.get("authorization") == "Bearer first"
    assert ours["x-name"] == "caf\u00e9"


def test_the_body_is_joined_from_its_chunks() -> None:
    receive = _receiver(
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    )
    assert asyncio.run(read_body(receive, {}, limit=100)) == b'{"a": 1}'


@pytest.mark.parametrize(
    ("headers", "messages", "status", "reason"),
    [
        ({"content-length": "101"}, [], 413, "body of 101 bytes is over the limit of 100 bytes"),
        ({"content-length": "ten"}, [], 400, "Content-Length is not a number"),
        (
            {},
            [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 2,
            413,
            "body is over the limit of 100 bytes",
        ),
        (
            {},
            [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}],
            400,
            "client disconnected before the body was complete",
        ),
    ],
    ids=["declared-too-long", "length-not-a-number", "streamed-too-long", "disconnected"],
)
def test_each_limit_has_its_answer(
    headers: dict[str, str], messages: list[dict[str, Any]], status: int, reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        asyncio.run(read_body(_receiver(*messages), headers, limit=100))
    assert (refused.value.status, refused.value.reason) == (status, reason)


def test_a_body_that_stops_coming_is_a_408_with_what_arrived() -> None:
    receive = _receiver({"type": "http.request", "body": b"abc", "more_body": True}, then_wait=True)
    with pytest.raises(Refused) as refused:
        asyncio.run(read_body(receive, {}, limit=100, timeout_s=0.05))
    assert refused.value.status == 408
    assert refused.value.reason == "body not received within 0.05 s (3 bytes arrived)"


def test_the_answer_is_what_json_response_sends() -> None:
    payload = {
        "accepted": 1,
        "raw_id": "r",
        "error": "caf\u00e9 \u2192 \U0001f525",
        "list": [1.5, None, True],
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_json(send, 202, payload))
    theirs = JSONResponse(payload, status_code=202)

    assert json_bytes(payload) == theirs.body
    assert sent == [
        {"type": "http.response.start", "status": 202, "headers": theirs.raw_headers},
        {"type": "http.response.body", "body": theirs.body},
    ]
    with pytest.raises(ValueError):  # as JSONResponse: no NaN in an answer
        json_bytes({"x": float("nan")})


def test_requests_queued_when_the_committer_stops_get_retry_and_the_one_in_the_writer_its_receipt() -> None:
    """One batch is in the writer (held); two more requests queue behind it; the app stops."""
    entered, release = threading.Event(), threading.Event()
    batches: list[int] = []

    def ingest_many(requests: Sequence[IngestRequest]) -> list[Receipt | Exception]:
        entered.set()
        release.wait(30)
        batches.append(len(requests))
        return [Receipt(raw_id=f"r{len(batches)}-{i}") for i, _ in enumerate(requests)]

    request = IngestRequest("generic", b"{}", {}, [])

    async def main() -> tuple[list[Any], Any]:
        committer = GroupCommitter(ingest_many)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(committer.run)
            while not committer.running:
                await anyio.sleep(0.005)
            first = asyncio.ensure_future(committer.submit(request))
            while not entered.is_set():  # the first batch is in the writer thread
                await anyio.sleep(0.005)
            queued = [asyncio.ensure_future(committer.submit(request)) for _ in range(2)]
            while committer.queued() < 2:
                await anyio.sleep(0.005)
            tasks.cancel_scope.cancel()  # the app stops (its lifespan cancels the committer)
            release.set()
        assert not committer.running
        late = await asyncio.gather(committer.submit(request), return_exceptions=True)
        return await asyncio.gather(first, *queued, return_exceptions=True), late[0]

    (first, *queued), late = asyncio.run(main())
    assert isinstance(first, Receipt) and first.raw_id == "r1-0", first
    assert batches == [1]  # nothing after the stop reached the store
    assert [str(q) for q in queued] == ["the intake is stopping"] * 2, queued
    assert isinstance(late, RuntimeError) and str(late) == "the intake is stopping"
