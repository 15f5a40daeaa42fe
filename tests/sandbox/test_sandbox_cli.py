"""`python -m sandbox up` in one process, `fault`/`clear`/`status` from another; nothing left after SIGINT."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from sandbox.control import read_env_file
from sandbox.testing import wait_for


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args, "--var", "var"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "SANDBOX_"))}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _ports(env: dict[str, str]) -> set[int]:
    """Every loopback port named in the settings (URLs, the DSN, the external APIs' JSON)."""
    return {int(port) for value in env.values() for port in re.findall(r"127\.0\.0\.1:(\d+)", value)}


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_up_fault_clear_and_sigint_leaves_nothing_behind(tmp_path: Path) -> None:
    log = (tmp_path / "up.log").open("w")
    child = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--var", "var", "--traffic", "0", "--pod-start-delay-s", "0"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    try:
        env_file = tmp_path / "var" / "sandbox.env"
        wait_for(lambda: env_file.exists() or child.poll() is not None, timeout_s=60)
        assert child.poll() is None, (tmp_path / "up.log").read_text()
        env = read_env_file(env_file)
        api_health = env["RUNBOOK_SERVICE_BASE_URL"] + "/api/health"
        family = psutil.Process(child.pid).children(recursive=True)  # PostgreSQL's processes
        assert any("postgres" in p.name() for p in family)
        assert (tmp_path / "var" / "kubeconfig").exists()
        for secret in (env_file, tmp_path / "var" / "kubeconfig"):  # tokens: readable by the owner only
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
        assert stat.S_IMODE((tmp_path / "var").stat().st_mode) & 0o066 == 0  # (PostgreSQL may traverse)
        printed = (tmp_path / "up.log").read_text()
        assert "Kubernetes API emulator ready" in printed and "export RUNBOOK_SERVICE_BASE_URL=" in printed

        assert httpx.get(api_health).status_code == 200
        injected = _run(tmp_path, "fault", "bad-deploy", "--ago", "5")
        assert injected.returncode == 0, injected.stderr
        assert "v1.2.0-broken" in injected.stdout
        assert httpx.get(api_health).status_code == 500

        unknown = _run(tmp_path, "clear", "nope")
        assert unknown.returncode == 2
        assert unknown.stderr.count("\n") == 1 and "unknown fault 'nope'; valid: bad-deploy" in unknown.stderr
        bad_arg = _run(tmp_path, "fault", "api-down", "github")
        assert bad_arg.returncode == 2 and "api must be one of hume, openai, spotify" in bad_arg.stderr

        assert "active faults: bad-deploy" in _run(tmp_path, "status").stdout
        cleared = _run(tmp_path, "clear")
        assert cleared.returncode == 0 and "rolled out again" in cleared.stdout
        wait_for(lambda: httpx.get(api_health).status_code == 200)

        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        log.close()
    assert "every port freed" in (tmp_path / "up.log").read_text()
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    ports = _ports(env)
    assert len(ports) == 11  # PostgreSQL, emulator, service, 3 stand-ins, 3 APIs, provider, control
    assert all(_refused(port) for port in ports), [p for p in ports if not _refused(p)]
    assert not env_file.exists()

    gone = _run(tmp_path, "fault", "bad-deploy")
    assert gone.returncode == 2 and "no sandbox is running" in gone.stderr
