"""Several intake workers: the listener uvicorn binds for them is wrapped so its connections get
TCP_NODELAY (uvicorn leaves `proto` 0 there, and asyncio then leaves Nagle's algorithm on: every
keep-alive answer waited ~44 ms for the client's delayed ACK, bench/RESULTS.md §13)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import uvicorn

from intake.__main__ import APP, tcp_listener
from sandbox.testing import wait_for

LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def _accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection asyncio accepts on `listener`, as a uvicorn worker's server does."""

    async def accept_one() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Report, sock=listener)
        try:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(accept_one())


def _bound() -> socket.socket:
    """The listening socket uvicorn's supervisor binds for several workers (`Config.bind_socket`)."""
    return uvicorn.Config(APP, host="127.0.0.1", port=0, workers=2).bind_socket()


def test_uvicorns_own_listener_for_several_workers_leaves_nagle_on() -> None:
    """The reason for `tcp_listener`: if uvicorn fixes this, the wrapping can go."""
    assert _accepted_nodelay(_bound()) == 0


def test_the_wrapped_listener_gives_each_connection_tcp_nodelay() -> None:
    listener = tcp_listener(_bound())

    assert listener.proto == socket.IPPROTO_TCP and listener.get_inheritable()
    assert _accepted_nodelay(listener) != 0


def test_two_workers_serve_alerts_through_the_wrapped_listener(tmp_path: Path, store_url: str) -> None:
    """`python -m intake --workers 2` end to end: both processes up behind one port, alerts stored, and the
    supervisor's SIGTERM stops the workers with it."""
    from runbook.store import open_store

    open_store(store_url).close()  # the schema, as `make demo` creates it
    log_path = tmp_path / "intake.log"
    env = {
        **os.environ,
        "RUNBOOK_STORE_URL": store_url,
        "RUNBOOK_INTAKE_TOKENS": json.dumps({"generic": "gen-token"}),
    }
    argv = [
        sys.executable,
        "-m",
        "intake",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-dispatch",
        "--workers",
        "2",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        found = wait_for(
            lambda: LISTENING.findall(log_path.read_text(errors="replace")) or proc.poll() is not None, 60.0
        )
        assert isinstance(found, list), log_path.read_text(errors="replace")
        url = found[0]
        assert wait_for(
            lambda: log_path.read_text(errors="replace").count("Application startup complete") >= 2, 60.0
        )
        headers = {"Content-Type": "application/json", "Authorization": "Bearer gen-token"}
        with httpx.Client(base_url=url, timeout=10.0) as client:
            answers = [
                client.post(
                    "/alerts/generic",
                    content=json.dumps({"alerts": [{"name": f"TwoWorkers{i}", "summary": f"alert {i}"}]}),
                    headers=headers,
                ).status_code
                for i in range(20)
            ]
        assert answers == [202] * 20
        store = open_store(store_url)
        try:
            assert len(store.list_incidents(limit=100)) == 20
        finally:
            store.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert wait_for(lambda: _alone(proc.pid), 30.0), "a worker outlived its supervisor"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _alone(pgid: int) -> bool:
    """No process is left in the group `pgid` (the supervisor and its workers)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
