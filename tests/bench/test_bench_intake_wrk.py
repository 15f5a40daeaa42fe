"""`python -m bench.intake_wrk`: says plainly when wrk is missing; with wrk, a short run stores every 202.

wrk is Debian's package (`.ci/run` installs it; the bench installs it when missing): the run is skipped
where it is not installed. No timing is asserted.
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


MISSING = "bench.intake_wrk: wrk is not installed (Debian/Ubuntu: apt-get install wrk); nothing measured"


@pytest.mark.parametrize("how", ["no-install", "no-apt"])
def test_without_wrk_and_no_way_to_install_it_it_says_so_and_exits_2(tmp_path: Path, how: str) -> None:
    """`--no-install`, or a machine without apt-get (a PATH with neither wrk nor apt-get on it)."""
    env = {**os.environ, "PATH": str(tmp_path)}

    done = _run(["--stores", "sqlite", *(["--no-install"] if how == "no-install" else [])], env, 60)

    assert done.returncode == 2
    assert done.stderr.strip() == MISSING


def test_without_wrk_it_installs_it_with_apt_and_says_what_it_ran(tmp_path: Path) -> None:
    """An apt-get that installs a wrk (a script on a PATH of its own: the real one would change the
    machine): the bench runs `update`, then `install -y wrk`, and goes on with the wrk it put there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-calls"
    apt = bin_dir / "apt-get"
    apt.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" = install ]; then printf "#!/bin/sh\\nexit 3\\n" > {bin_dir}/wrk; /bin/chmod +x {bin_dir}/wrk; fi\n'
    )
    apt.chmod(0o755)
    sudo = bin_dir / "sudo"  # not root: the bench goes through `sudo -n`; this one just runs the command
    sudo.write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    sudo.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"}
    if shutil.which("wrk", path="/usr/bin:/bin") is not None:
        env["PATH"] = f"{bin_dir}:{Path(sys.executable).parent}"  # hide the machine's own wrk

    done = _run(["--stores", "sqlite", "--duration", "1", "--warmup", "0"], env, 120)

    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq wrk"]
    assert f"wrk is missing: {apt} install -y -qq wrk" in done.stderr
    assert MISSING not in done.stderr  # it went on, with the wrk apt installed (this one fails at once)


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
