"""Alembic migrations, on both backends: a database created by the code before migrations keeps its rows
through `python -m runbook.store upgrade` (run as a subprocess, as an operator would); a fresh database
is created at head; anything not at head is refused at open with the one-line message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from legacy_schema import TODAY_POSTGRESQL, TODAY_SQLITE
from sqlalchemy import create_engine, inspect, text

from intake.outbox import open_outbox
from runbook.drill_history import open_history
from runbook.models import ActionStatus, Alert, AlertSource, IncidentStatus
from runbook.severity import Severity
from runbook.store import SCHEMA_REVISION, SchemaMismatch, open_store
from runbook.store.database import parse_url
from runbook.store.migrate import REVISIONS, alembic_config, upgrade

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
TARGET = "prod/deployment/emotionscare"
ACTION_KEY = f"inc-1:rollback:{TARGET}"
NEEDS = f"this code needs {SCHEMA_REVISION}: run python -m runbook.store upgrade"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runbook.store", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _engine(url: str) -> Any:
    return create_engine(parse_url(url).engine_url)


def create_today(url: str, *, layers: str = "all") -> None:
    """A database as the code before migrations left it: its DDL, its version tables, one row per table."""
    sqlite = url.startswith("sqlite")
    ddl = TODAY_SQLITE if sqlite else TODAY_POSTGRESQL
    if layers == "store":
        ddl = [s for s in ddl if "intake_" not in s and "drill_" not in s]
    ts: Callable[[datetime], Any] = (
        (lambda d: d.isoformat(timespec="microseconds")) if sqlite else (lambda d: d)
    )
    js = "(:{})" if sqlite else "CAST(:{} AS JSONB)"
    engine = _engine(url)
    with engine.begin() as conn:
        for statement in ddl:
            conn.exec_driver_sql(statement)
        conn.execute(
            text(f"INSERT INTO raw_payloads VALUES ('raw-1', 'alertmanager', :at, {js.format('h')}, :body)"),
            {"at": ts(T0), "h": json.dumps({"content-type": "application/json"}), "body": b'{"v": 1}\x00'},
        )
        open_col, open_val = (", open_key", ", 'fp-1'") if sqlite else ("", "")
        conn.execute(
            text(
                "INSERT INTO incidents (id, dedupe_key, title, service, severity, severity_rule, status,"
                f" runbook, security, started_at, alert_count, pagerduty_dedup_key, created_at, updated_at{open_col})"
                " VALUES ('inc-1', 'fp-1', 'Homepage returns 500 error', 'emotionscare', 'P2', 'p2.rule',"
                f" 'triggered', 'service-down', :sec, :at, 1, 'inc-1', :at, :at{open_val})"
            ),
            {"at": ts(T0), "sec": False},
        )
        conn.execute(
            text(
                "INSERT INTO alerts VALUES ('al-1', 'alertmanager', 'fp-1', 'firing', 'ServiceDown',"
                f" 'emotionscare', {js.format('labels')}, {js.format('ann')}, :at, NULL, {js.format('sig')},"
                " 'raw-1', :at, 'inc-1')"
            ),
            {
                "at": ts(T0),
                "labels": json.dumps({"alertname": "ServiceDown"}),
                "ann": json.dumps({"summary": "Homepage returns 500 error"}),
                "sig": json.dumps({"error_rate_pct": 100.0}),
            },
        )
        conn.execute(
            text(
                "INSERT INTO timeline (incident_id, at, actor, kind, message, evidence, link) VALUES"
                f" ('inc-1', :at, 'alert:alertmanager', 'opened', 'P2 incident opened', {js.format('ev')}, NULL)"
            ),
            {"at": ts(T0), "ev": json.dumps({"alert_id": "al-1"})},
        )
        conn.execute(
            text(
                "INSERT INTO actions VALUES (:key, 'inc-1', 'rollback', :target, 'succeeded', :at, :at,"
                " 'run-1', 'revision 3 -> 2')"
            ),
            {"key": ACTION_KEY, "target": TARGET, "at": ts(T0)},
        )
        if layers == "all":
            conn.exec_driver_sql(
                "INSERT INTO intake_outbox (incident_id, deployment, enqueued_at, next_attempt_at)"
                " VALUES ('inc-1', 'respond/respond', 1767261600.0, 1767261600.0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO drill_history VALUES ('d1', 'high-error-rate', 'sandbox', 'sandbox', 'runbook',"
                " 'passed', 0, 1767261600.0, 1.5, 2.0, 9.25, 12.0, 13.5, 'inc-1', NULL, '{\"x\": 1}')"
            )
    engine.dispose()


def tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_revisions_in_code_are_the_migrations_folder() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [SCHEMA_REVISION]
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == list(REVISIONS)


def test_a_database_of_today_is_refused_then_upgraded_with_every_row(store_url: str) -> None:
    create_today(store_url)
    for opener in (open_store, open_outbox, open_history):
        with pytest.raises(SchemaMismatch) as info:
            opener(store_url)
        assert str(info.value) == f"store schema is at revision none (created before migrations), {NEEDS}"

    done = cli("upgrade", store_url)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from revision none to {SCHEMA_REVISION}" in done.stdout
    assert "alembic_version" in tables(store_url)
    assert not {"schema_version", "intake_schema_version", "drill_schema_version"} & tables(store_url)

    with open_store(store_url) as store:
        raw = store.get_raw_payload("raw-1")
        assert (raw.source, raw.body, raw.headers) == (
            "alertmanager",
            b'{"v": 1}\x00',
            {"content-type": "application/json"},
        )
        incident = store.get_incident("inc-1")
        assert (incident.severity, incident.status, incident.started_at) == (
            Severity.P2,
            IncidentStatus.TRIGGERED,
            T0,
        )
        assert [(e.kind, e.evidence) for e in incident.timeline] == [("opened", {"alert_id": "al-1"})]
        [alert] = store.list_alerts(incident_id="inc-1")
        assert alert.labels == {"alertname": "ServiceDown"} and alert.starts_at == T0
        action = store.get_action(ACTION_KEY)
        assert action is not None and action.status == ActionStatus.SUCCEEDED
        assert store.count_rows() == {
            "raw_payloads": 1,
            "alerts": 1,
            "incidents": 1,
            "timeline": 1,
            "actions": 1,
        }
        # the adopted schema still keeps one open incident per key: a new alert joins (and raises) it
        late = store.add_alert(Alert(source=AlertSource.ALERTMANAGER, fingerprint="fp-1", name="ServiceDown"))
        joined, created = store.open_incident_for(late, Severity.P1, "p1.service_unavailable", None)
        assert (created, joined.id, joined.alert_count, joined.severity) == (False, "inc-1", 2, Severity.P1)
    outbox = open_outbox(store_url)
    try:
        item = outbox.get("inc-1")
        assert item is not None and item.deployment == "respond/respond" and outbox.depth() == 1
    finally:
        outbox.close()
    with open_history(store_url) as history:
        [row] = history.list()
        assert (row.drill_id, row.mttr_s, history.report("d1")) == ("d1", 13.5, '{"x": 1}')

    again = cli("upgrade", store_url)
    assert again.returncode == 0 and f"already at revision {SCHEMA_REVISION}" in again.stdout
    current = cli("current", store_url)
    assert current.returncode == 0 and f"revision {SCHEMA_REVISION} (this code needs" in current.stdout


def test_adopting_adds_the_tables_of_a_layer_that_never_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    create_today(url, layers="store")
    assert "intake_outbox" not in tables(url)
    assert cli("upgrade", url).returncode == 0
    assert {"intake_outbox", "drill_history", "incidents"} <= tables(url)
    with open_store(url) as store:
        assert store.get_incident("inc-1").title == "Homepage returns 500 error"


def test_upgrade_creates_a_fresh_database(store_url: str) -> None:
    done = cli("upgrade", store_url)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from revision none to {SCHEMA_REVISION}" in done.stdout
    assert "revision " + SCHEMA_REVISION in cli("current", store_url).stdout
    with open_store(store_url) as store:
        assert store.list_incidents() == []


def test_an_older_revision_is_refused_until_upgraded(store_url: str) -> None:
    assert upgrade(store_url, "0001") == (None, "0001")
    with pytest.raises(SchemaMismatch, match=f"^store schema is at revision 0001, {NEEDS}$"):
        open_store(store_url)
    done = cli("upgrade", store_url)
    assert done.returncode == 0 and f"from revision 0001 to {SCHEMA_REVISION}" in done.stdout
    open_store(store_url).close()


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    done = cli("upgrade", "mysql://u:sekrit@h/db")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "unsupported store URL" in done.stderr
    assert "sekrit" not in done.stderr


def test_many_openers_of_an_empty_database_create_it_once(store_url: str) -> None:
    def opened(_: int) -> int:
        with open_store(store_url) as store:
            return store.schema_version()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(opened, range(8), timeout=120)) == {int(SCHEMA_REVISION)}


@pytest.mark.parametrize(
    "command",
    [
        ["intake", "--host", "127.0.0.1", "--port", "0", "--no-dispatch"],
        ["flows.serve"],
        ["flows.warm", "respond"],
    ],
)
def test_intake_and_the_runners_refuse_an_outdated_store_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    import os

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0001")
    env = {
        **os.environ,
        "RUNBOOK_STORE_URL": url,
        "RUNBOOK_INTAKE_TOKENS": json.dumps({"alertmanager": "am-token"}),
    }
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"{command[0]}: store schema is at revision 0001, {NEEDS}"
