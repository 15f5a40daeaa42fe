"""Lifecycle fixtures: the Slack, PagerDuty and Sentry stand-ins on free loopback ports, a fresh store,
and the environment (RUNBOOK_*) pointing the tasks at them.

- `slack`, `pagerduty`, `sentry`: started stand-ins, stopped after the test.
- `comms_env`: RUNBOOK_ settings for the three stand-ins and a SQLite store in tmp_path; the process
  settings and store (`tasks.runtime`) are reset before and after, so no test sees another's world.
- `world`: a fresh sandbox world (sandbox/world.py) on the session's PostgreSQL, the runbooks' settings
  pointed at it, with the session's Prefect server up (flows report to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.pagerduty import PagerDutyStandIn
from sandbox.postgres import EmbeddedPostgres
from sandbox.sentry import SentryStandIn
from sandbox.slack import SlackStandIn
from sandbox.testing import running_world
from sandbox.world import World
from tasks import runtime

SLACK_TOKEN = "xoxb-lifecycle-test-token-0001"
PD_KEY = "R0LIFECYCLETESTROUTINGKEY0000001"
SENTRY_TOKEN = "sntrys-lifecycle-test-token"
SECRETS = (SLACK_TOKEN, PD_KEY, SENTRY_TOKEN)


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
    stand_in = SentryStandIn(token=SENTRY_TOKEN, org="emotionscare", projects=("emotionscare",)).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def comms_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    slack: SlackStandIn,
    pagerduty: PagerDutyStandIn,
    sentry: SentryStandIn,
) -> Iterator[None]:
    env = {
        "RUNBOOK_ENVIRONMENT": "sandbox",
        "RUNBOOK_STORE_URL": f"sqlite:///{tmp_path / 'incidents.sqlite3'}",
        "RUNBOOK_SLACK_API_URL": f"{slack.url}/api",
        "RUNBOOK_SLACK_TOKEN": SLACK_TOKEN,
        "RUNBOOK_SLACK_TIMEOUT_S": "1.0",
        "RUNBOOK_PAGERDUTY_EVENTS_URL": f"{pagerduty.url}/v2/enqueue",
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": PD_KEY,
        "RUNBOOK_PAGERDUTY_TIMEOUT_S": "1.0",
        "RUNBOOK_SENTRY_API_URL": f"{sentry.url}/api/0",
        "RUNBOOK_SENTRY_TOKEN": SENTRY_TOKEN,
        "RUNBOOK_RETRY_BACKOFF_SCALE": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    runtime.reset()
    try:
        yield
    finally:
        runtime.reset()


@pytest.fixture
def world(prefect_api: str, pg_server: EmbeddedPostgres) -> Iterator[World]:
    with running_world(postgres=pg_server, step_interval_s=0) as started:
        yield started
