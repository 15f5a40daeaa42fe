"""Ports for the sandbox's listeners, chosen *below* the kernel's ephemeral range.

Usage::

    port = free_port()                      # for a server that binds it itself (PostgreSQL)
    for port in candidate_ports(): ...      # try to bind each in turn (sandbox/httpserver.py)

Why not port 0: the kernel picks a listener's port from the same range it gives outgoing
connections. The sandbox closes listeners and opens them again on the same port (the `infra-down`
fault, PostgreSQL stopped and started); in between, any outgoing connection of the process (to the
Prefect server, to PostgreSQL) may be handed that port as its local port, and the listener can no
longer come back (`Address already in use`: seen in the test suite). Below the ephemeral range no
outgoing connection ever takes a port, so a port the sandbox let go stays free for it.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["candidate_ports", "ephemeral_start", "free_port"]

LOWEST = 20000
"""Search from here: above the well-known and most registered service ports."""


def ephemeral_start() -> int:
    """The first port the kernel hands out to outgoing connections (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def candidate_ports(attempts: int = 64) -> Iterator[int]:
    """Random ports below the ephemeral range (bounded: `attempts` of them), then 0 (any port)."""
    stop = ephemeral_start()
    start = LOWEST if stop - LOWEST >= 1000 else 1024
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "big"))
    for _ in range(attempts if stop > start else 0):
        yield rng.randrange(start, stop)
    yield 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nobody listens on right now, below the ephemeral range if one is."""
    for port in candidate_ports():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError(f"no free port on {host}")  # unreachable: port 0 always binds
