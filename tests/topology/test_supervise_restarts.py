"""sandbox/supervise.py restarts: a `restart=True` child that dies is started again (same command,
log appended); a child without it is left down; nothing is restarted once `stop_all` began."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from sandbox.supervise import Supervisor
from sandbox.testing import wait_for

BLOCK = [sys.executable, "-c", "import threading; print('up', flush=True); threading.Event().wait()"]


def test_a_restartable_child_killed_is_started_again_and_the_other_is_not(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(tmp_path / "logs", say=said.append)
    try:
        kept = sup.start("kept", BLOCK, env=dict(os.environ), restart=True)
        left = sup.start("left", BLOCK, env=dict(os.environ))
        sup.keep_restarting(interval_s=0.05)
        first = kept.proc.pid
        wait_for(lambda: "up" in kept.log_path.read_text(), timeout_s=30)
        os.kill(first, signal.SIGKILL)
        os.kill(left.proc.pid, signal.SIGKILL)

        wait_for(lambda: kept.alive and kept.proc.pid != first, timeout_s=30)
        assert kept.restarts == 1
        assert "✗ kept exited with -9; restarting it in 1s" in said
        assert any(line.startswith(f"↻ kept restarted (pid {kept.proc.pid}, restart 1)") for line in said)
        wait_for(lambda: kept.log_path.read_text().count("up") == 2, timeout_s=30)  # appended, not truncated
        assert "restarted by the supervisor after exit -9" in kept.log_path.read_text()
        assert not left.alive and not any("left restarted" in line for line in said)
        # the back-off doubles with each restart, up to its ceiling
        assert sup.backoff_s(kept) == 2.0
    finally:
        sup.stop_all(grace_s=5)
    assert not kept.alive
    assert sup.restart_if_exited(kept) is False  # stopping: never started again
