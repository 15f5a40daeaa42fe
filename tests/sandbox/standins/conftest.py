"""Fixtures for the stand-in tests: each stand-in started on a free loopback port, stopped after."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from sandbox.external_apis import ExternalApis
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.sentry import SentryStandIn
from sandbox.slack import SlackStandIn

SLACK_TOKEN = "xoxb-test-0000-token"
PD_KEY = "R0TESTROUTINGKEY0000000000000001"
SENTRY_TOKEN = "sntrys-test-token"


def _port_refuses(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (a connect is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def _server_threads() -> list[threading.Thread]:
    """Threads the stand-in servers started (named `<name>-http-<port>`) still alive."""
    return [t for t in threading.enumerate() if "-http-" in t.name]


@pytest.fixture
def port_refuses() -> Callable[[int], bool]:
    """`port_refuses(port)`: True when a connect to 127.0.0.1:port is refused."""
    return _port_refuses


@pytest.fixture
def server_threads() -> Callable[[], list[threading.Thread]]:
    """`server_threads()`: stand-in server threads still alive."""
    return _server_threads


@pytest.fixture(autouse=True)
def _no_server_left_behind() -> Iterator[None]:
    """Every stand-in a test starts is stopped by the end of it (fixtures included)."""
    before = set(_server_threads())
    yield
    left = [t.name for t in _server_threads() if t not in before]
    assert left == [], f"servers still running after the test: {left}"


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One client for the session (building one per call costs ~25 ms of TLS setup)."""
    with httpx.Client(timeout=2.0) as client:
        yield client


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn(token=SLACK_TOKEN).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    stand_in = PagerDutyStandIn(routing_keys=[PD_KEY]).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def sentry() -> Iterator[SentryStandIn]:
    stand_in = SentryStandIn(
        token=SENTRY_TOKEN, org="emotionscare", projects=("emotionscare", "worker")
    ).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def apis() -> Iterator[ExternalApis]:
    stand_in = ExternalApis().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
