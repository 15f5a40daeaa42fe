"""Smoke: the intake throughput bench runs end to end with tiny counts and reports its figures.

A real `python -m intake` per store, scenario and client (SQLite file; a database on the session's
embedded PostgreSQL), real HTTP over loopback, with the bench's lean client (the default) and httpx. No
timing is asserted: only that every request was accepted, the store holds exactly what was answered 202,
and the report carries the table, the client's CPU and the ratios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import intake_throughput
from bench.__main__ import main
from bench.loadgen import CLIENTS

pytestmark = pytest.mark.postgres


def test_intake_bench_reports_both_stores_and_both_scenarios(pg_server: Any, tmp_path: Path) -> None:
    options = intake_throughput.Options(requests=12, concurrency=3, warmup=2)
    rows = intake_throughput.run(options, postgres=pg_server, workdir=tmp_path)

    assert [(r.store, r.scenario) for r in rows] == [  # each scenario on both stores back to back
        ("sqlite", "distinct"),
        ("postgresql", "distinct"),
        ("sqlite", "storm"),
        ("postgresql", "storm"),
    ]
    for row in rows:
        assert row.client == "lean"
        assert row.accepted == row.sent == 12, row.errors
        assert row.store_check.startswith("ok"), row.store_check
        assert row.client_cpu_s > 0
        assert row.alerts_per_s > 0 and len(row.latencies_s) == 12
        assert 0 < row.latency.median <= row.latency.p99 <= row.latency.max
    assert rows[0].incidents == rows[1].incidents == 12  # distinct: stored = answered 202
    storm = rows[2]
    assert storm.incidents == 1 and storm.alerts_in_incident == 12

    text = intake_throughput.report(rows, options)
    assert "| sqlite | storm | lean | 12 / 12 |" in text
    assert "| postgresql | distinct | lean | 12 / 12 |" in text
    assert "distinct, lean: PostgreSQL / SQLite = " in text and "sqlite, lean: storm / distinct = " in text
    assert "client CPU ms/req" in text


def test_both_clients_store_what_they_were_answered(tmp_path: Path) -> None:
    options = intake_throughput.Options(
        requests=10, concurrency=3, warmup=0, stores=("sqlite",), scenarios=("distinct",), clients=CLIENTS
    )
    rows = intake_throughput.run(options, workdir=tmp_path)

    assert [r.client for r in rows] == ["lean", "httpx"]
    for row in rows:  # each client on its own intake and store
        assert row.codes == {202: 10}, row.errors
        assert row.incidents == row.accepted == 10 and len(row.latencies_s) == 10
    text = intake_throughput.report(rows, options)
    assert "| sqlite | distinct | httpx | 10 / 10 |" in text
    assert "sqlite distinct: lean / httpx = " in text and "client CPU " in text


def test_bad_options_are_refused_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intake", "--stores", "mysql"]) == 2
    assert capsys.readouterr().err.strip() == "bench: unknown store 'mysql'; known: sqlite, postgresql"
    assert main(["intake", "--client", "curl"]) == 2
    assert capsys.readouterr().err.strip() == "bench: unknown client 'curl'; known: lean, httpx"
    assert main(["nope"]) == 2
    assert "unknown bench nope" in capsys.readouterr().err
