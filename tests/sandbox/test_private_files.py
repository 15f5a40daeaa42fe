"""The files holding the sandbox's secrets are readable by their owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.demo.system import Demo, Ports, _write_env_file
from sandbox.k8s import kubeconfig
from sandbox.private_files import open_private, private_dir, write_private
from sandbox.supervise import Supervisor


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask of 0 would leave every new file world-readable: the modes must not depend on it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_write_private_creates_0600_and_narrows_an_existing_file(tmp_path: Path) -> None:
    fresh = write_private(tmp_path / "fresh.env", "TOKEN=x\n")
    assert mode(fresh) == 0o600 and fresh.read_text() == "TOKEN=x\n"
    wide = tmp_path / "wide.env"
    wide.write_text("old")
    wide.chmod(0o644)
    write_private(wide, "new")
    assert mode(wide) == 0o600 and wide.read_text() == "new"


def test_open_private_appends_and_refuses_other_modes(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    with open_private(path, "ab") as log:
        log.write(b"one\n")
    with open_private(path, "ab") as log:
        log.write(b"two\n")
    assert path.read_text() == "one\ntwo\n" and mode(path) == 0o600
    with pytest.raises(ValueError, match="mode must be"):
        open_private(path, "rb")


def test_private_dir_is_0700(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "a" / "b")
    assert mode(folder) == 0o700


def test_demo_env_file_kubeconfig_and_children_logs(tmp_path: Path) -> None:
    var = private_dir(tmp_path / "demo")
    demo = Demo(root=tmp_path, var=var, ports=Ports(4200, 8088, 8100), sandbox_env={})
    assert mode(_write_env_file(demo)) == 0o600  # the intake token
    assert mode(kubeconfig("http://127.0.0.1:1", tmp_path / "kubeconfig")) == 0o600
    sup = Supervisor(var / "logs", say=lambda _line: None)
    try:
        child = sup.start("echo", [sys.executable, "-c", "print('RUNBOOK_SLACK_TOKEN=x')"], env=os.environ)
        child.proc.wait(timeout=30)
    finally:
        sup.stop_all(grace_s=1)
    assert mode(var) == 0o700 and mode(var / "logs") == 0o700
    assert mode(child.log_path) == 0o600 and "RUNBOOK_SLACK_TOKEN" in child.log_path.read_text()
