"""`make scale-test`: the production topology on one machine, one process killed in each incident.

Runs `python -m bench.scale` as `make scale-test` does (PostgreSQL, Redis, two Prefect API processes
and one services process, two warm respond runners, a process worker, two intake processes, the
world) and checks its counts: no alert lost, one respond run live at a time, one rollback per
incident, every incident resolved, each killed process back. The warm runner killed is the one
executing the incident's respond: its run is set Crashed by the zombie automation and taken over by
intake's sweeper (two respond runs, never two live at once, still one rollback). Needs Debian's `redis-server` (.ci/run
installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.scale.play import KILLS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="needs redis-server (.ci/run installs it)"
    ),
]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scale_dir() -> Iterator[Path]:
    """Outside pytest's numbered temp folders: another pytest session on the machine removes the
    older ones (keeping three), which took the running PostgreSQL's data folder away once."""
    path = Path(tempfile.mkdtemp(prefix="scale-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_topology_survives_one_kill_per_incident(scale_dir: Path) -> None:
    out = scale_dir / "phases.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--var", str(scale_dir / "var"), "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,  # ~4 min on a quiet machine; 10 min seen at load average 25
        check=False,
    )
    assert out.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    phases = {p["kill"]: p for p in json.loads(out.read_text())}
    assert list(phases) == list(KILLS)
    summary = _summary(phases)
    for kill, phase in phases.items():
        # The summary first: CI shows only the start of a long assertion message.
        assert phase["resolved"], (summary, done.stdout[-3000:])
        assert phase["alerts_accepted"] >= 1 and phase["alerts_lost"] == 0, (kill, phase)
        assert phase["respond_live_max"] <= 1 and phase["respond_runs"] >= 1, (kill, phase)
        if kill == "warm":  # the runner executing respond died: a second generation finished the job
            assert phase["respond_runs"] == 2, (kill, phase)
        assert phase["rollbacks"] == 1, (kill, phase)
        if kill != "none":
            assert phase["killed"], (kill, phase)
            assert phase["back_after_s"] is not None, (kill, phase)  # restarted, as a pod would be
    assert done.returncode == 0, done.stdout[-3000:]


def _summary(phases: dict[str, dict[str, Any]]) -> str:
    """One short line per phase: what a failed run in CI most needs, before anything is cut off."""
    keys = ("status", "killed", "killed_at_s", "all_clear_s", "respond_runs", "rollbacks", "rollback_s")
    return " || ".join(
        f"{kill}: " + ", ".join(f"{k}={phase.get(k)}" for k in keys) + f", notes={phase.get('notes')}"
        for kill, phase in phases.items()
    )
