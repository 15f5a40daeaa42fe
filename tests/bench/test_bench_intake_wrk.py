"""`python -m bench.intake_wrk`: says plainly when wrk is missing; with wrk, a short run stores every 202.

wrk is Debian's package, not in CI: the run is skipped where it is not installed. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import REPO


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.intake_wrk", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_wrk_it_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # a PATH with no wrk on it

    done = _run(["--stores", "sqlite"], env, 60)

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "bench.intake_wrk: wrk is not installed (Debian/Ubuntu: apt-get install wrk); nothing measured"
    )


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (not in CI)")
def test_a_short_run_on_sqlite_stores_every_accepted_alert(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    args = [
        "--stores",
        "sqlite",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--connections",
        "4",
        "--json",
        str(out),
    ]

    done = _run(args, dict(os.environ), 120)

    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [(r["store"], r["scenario"]) for r in rows] == [("sqlite", "distinct"), ("sqlite", "storm")]
    for row in rows:
        assert row["accepted"] > 0 and row["refused"] == 0
        assert row["accepted"] <= row["stored"] <= row["accepted"] + 4  # in flight at wrk's stop: uncounted
    assert "| this | sqlite | storm |" in done.stdout
