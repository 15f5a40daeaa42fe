"""Smoke: the intake throughput bench runs end to end with tiny counts and reports its figures.

A real `python -m intake` per store and scenario (SQLite file; a database on the session's embedded
PostgreSQL), real HTTP over loopback. No timing is asserted: only that every request was accepted,
the store holds what it should, and the report carries the table and the ratios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import intake_throughput
from bench.__main__ import main

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
        assert row.accepted == row.sent == 12, row.errors
        assert row.store_check.startswith("ok"), row.store_check
        assert row.alerts_per_s > 0 and len(row.latencies_s) == 12
        assert 0 < row.latency.median <= row.latency.p99 <= row.latency.max
    storm = rows[2]
    assert storm.incidents == 1 and storm.alerts_in_incident == 12

    text = intake_throughput.report(rows, options)
    assert "| sqlite | storm | 12 / 12 |" in text
    assert "| postgresql | distinct | 12 / 12 |" in text
    assert "distinct: PostgreSQL / SQLite = " in text and "sqlite: storm / distinct = " in text


def test_bad_options_are_refused_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intake", "--stores", "mysql"]) == 2
    assert capsys.readouterr().err.strip() == "bench: unknown store 'mysql'; known: sqlite, postgresql"
    assert main(["nope"]) == 2
    assert "unknown bench nope" in capsys.readouterr().err
