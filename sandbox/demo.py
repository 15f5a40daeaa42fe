"""`make demo` (`python -m sandbox.demo`): the whole system on one machine, then one real incident.

Usage::

    python -m sandbox.demo                 # start everything, play the incident, keep running (Ctrl-C)
    python -m sandbox.demo --no-incident   # start everything and wait: run things from the UI
    python -m sandbox.demo --once          # ... and stop after the incident's all-clear (CI, scripts)

What it starts, each a process of its own (logs in `var/demo/logs/`), on 127.0.0.1 only:

1. a Prefect server on SQLite (`RUNBOOK_DEMO_PREFECT_PORT`, 4200): the UI and the API;
2. the sandbox world (`python -m sandbox up`, ports from `RUNBOOK_DEMO_SANDBOX_PORT_BASE`, 8100):
   the Kubernetes API emulator, the service under care, PostgreSQL, Slack/PagerDuty/Sentry stand-ins;
3. intake (`python -m intake`, `RUNBOOK_INTAKE_PORT`, 8088) with a fresh bearer token per source;
4. `python -m flows.warm respond`: the `respond` deployment, run in a warm process (an alert's
   response starts within a second, docs/latency.md);
5. `python -m flows.serve --exclude respond`: every other deployment (the runbooks, the P2 flows, the
   drills with their monthly schedule, the post-mortem), polling every second.

Then the incident: `bad-deploy` is injected (a broken release, deployed now), the Alertmanager webhook
the sandbox's monitoring would send goes to intake, and the terminal follows what happens: the flow
runs (with their UI links), the sandbox's Slack as the response posts to it, the rollback, and the
all-clear. Everything stays up until Ctrl-C (or SIGTERM), which stops every process it started and
checks that every port is free again. A second run starts from a clean `var/demo` (its state is
removed at start); a port still in use is reported by number, with the setting that moves it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from sandbox.control import CONTROL_VAR, control_url, read_env_file
from sandbox.private_files import private_dir, write_private
from sandbox.supervise import StartFailed, Supervisor, http_ready, port_free, wait_port_closed

__all__ = ["main"]

SANDBOX_PORTS = 11  # `python -m sandbox up --port-base N` listens on N .. N+10
INTAKE_SOURCES = ("alertmanager", "generic", "grafana")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
LATER = timedelta(seconds=30)  # a scheduled run due later than this is a schedule's, not the incident's


class DemoError(Exception):
    """One line for the terminal, exit 2 (bad settings, a port in use)."""


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything."""


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Ports:
    prefect: int
    intake: int
    sandbox_base: int

    def all(self) -> dict[int, str]:
        ports = {self.prefect: "RUNBOOK_DEMO_PREFECT_PORT", self.intake: "RUNBOOK_INTAKE_PORT"}
        for p in range(self.sandbox_base, self.sandbox_base + SANDBOX_PORTS):
            ports.setdefault(p, "RUNBOOK_DEMO_SANDBOX_PORT_BASE")
        return ports


@dataclass
class Demo:
    """The running system: where each part answers, and what the children need in their environment."""

    root: Path
    var: Path
    ports: Ports
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    sandbox_env: dict[str, str] = field(default_factory=dict)

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ports.prefect}"

    @property
    def api(self) -> str:
        return f"{self.ui}/api"

    @property
    def intake(self) -> str:
        return f"http://127.0.0.1:{self.ports.intake}"

    def env(self, **extra: str) -> dict[str, str]:
        """The children's environment: ours, Prefect pointed at the demo's server, the sandbox's RUNBOOK_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "PREFECT_HOME": str(self.var / "prefect"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        env |= self.sandbox_env
        env |= {
            "RUNBOOK_INTAKE_HOST": "127.0.0.1",
            "RUNBOOK_INTAKE_PORT": str(self.ports.intake),
            "RUNBOOK_INTAKE_TOKENS": json.dumps(dict.fromkeys(INTAKE_SOURCES, self.token)),
        }
        return env | extra


# --- starting ------------------------------------------------------------------------------------------


def _python() -> str:
    return sys.executable


def _wait(what: str, ready: Callable[[], bool], children: list[Any], timeout_s: float) -> None:
    """Poll `ready` until true; a child that exits meanwhile fails the start with its log's tail."""
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive:
                raise StartFailed(
                    f"{child.name} exited with {child.proc.returncode}; last lines of {child.log_path}:\n"
                    f"{child.tail()}"
                )
        if ready():
            say(f"✓ {what} ready ({time.monotonic() - started:.1f}s)")
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {c.log_path}:\n{c.tail()}" for c in children)
    raise StartFailed(f"{what} not ready after {timeout_s:.0f}s\n{tails}")


def _deployments_registered(api: str, want: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            answer = httpx.post(f"{api}/deployments/count", json={}, timeout=2)
            return answer.status_code == 200 and int(answer.json()) >= want
        except (httpx.HTTPError, ValueError):
            return False

    return check


def start_all(sup: Supervisor, demo: Demo) -> None:
    from flows import catalogue

    python = _python()
    prefect_bin = str(Path(python).with_name("prefect"))
    say(f"starting the Prefect server (SQLite in {demo.var / 'prefect'}) and the sandbox world, side by side")
    server = sup.start(
        "prefect-server",
        [prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(demo.ports.prefect)],
        env=demo.env(),
        cwd=demo.root,
    )
    sandbox = sup.start(
        "sandbox",
        [python, "-m", "sandbox", "up", "--var", str(demo.var), "--port-base", str(demo.ports.sandbox_base)],
        env=demo.env(),
        cwd=demo.root,
    )
    env_file = demo.var / "sandbox.env"
    _wait("sandbox world", lambda: control_url(env_file) is not None, [sandbox], 60)
    demo.sandbox_env = read_env_file(env_file)
    _wait(f"Prefect server at {demo.ui}", http_ready(f"{demo.api}/health"), [server], 120)

    say("starting intake and the flow runners")
    intake = sup.start("intake", [python, "-m", "intake"], env=demo.env(), cwd=demo.root, ready=None)
    warm = sup.start("runner-respond", [python, "-m", "flows.warm", "respond"], env=demo.env(), cwd=demo.root)
    serve = sup.start(
        "runner-serve", [python, "-m", "flows.serve", "--exclude", "respond"], env=demo.env(), cwd=demo.root
    )
    _wait(f"intake at {demo.intake}", http_ready(f"{demo.intake}/readyz"), [intake], 60)
    want = len(catalogue.entries())
    _wait(f"{want} deployments served", _deployments_registered(demo.api, want), [warm, serve], 120)


def _write_env_file(demo: Demo) -> Path:
    """var/demo/demo.env: what a person needs in another shell (the intake token included, mode 600)."""
    path = demo.var / "demo.env"
    lines = {
        "PREFECT_API_URL": demo.api,
        "INTAKE_URL": demo.intake,
        "INTAKE_TOKEN": demo.token,
        CONTROL_VAR: demo.sandbox_env.get(CONTROL_VAR, ""),
    }
    return write_private(path, "".join(f"export {k}={v}\n" for k, v in lines.items()))


def print_ready(demo: Demo, started: float) -> None:
    env_file = _write_env_file(demo)
    slack = demo.sandbox_env.get("RUNBOOK_SLACK_API_URL", "")
    say(f"ready in {time.monotonic() - started:.1f}s")
    print(
        f"""
  Prefect UI      {demo.ui}    (Deployments: the runbooks, respond, the drills; Run › Custom run)
  intake          {demo.intake}/alerts/{{alertmanager,grafana,generic,sentry}}  (bearer token in {env_file})
  sandbox         python -m sandbox status --var {demo.var}   |   fault bad-deploy   |   clear
  Slack stand-in  {slack}/conversations.history?channel=…
  logs            {demo.var / "logs"}/

  Try: in the UI, Deployments › service-down › Run › Custom run (dry_run, settle_s) after
       `python -m sandbox fault bad-deploy --var {demo.var}`; or a drill: drill-database-failure › Run.
""",
        flush=True,
    )


# --- the incident --------------------------------------------------------------------------------------


def alertmanager_payload(service: str, started: datetime) -> dict[str, Any]:
    """The webhook (version 4) Alertmanager sends when the blackbox probe of /api/health fails."""
    labels = {
        "alertname": "ServiceDown",
        "service": service,
        "namespace": "prod",
        "severity": "critical",
        "job": "blackbox",
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{service="{service}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incident-runbooks",
        "groupLabels": {"service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.sandbox:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"{service}: /api/health answers 500 (every API request fails)",
                    "description": "probe_success == 0 for /api/health for 1m (sandbox demo)",
                },
                "startsAt": started.isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.sandbox:9090/graph?g0.expr=probe_success+%3D%3D+0",
                "fingerprint": secrets.token_hex(8),
            }
        ],
    }


class Follower:
    """Prints what happens: new flow runs and their states, Slack messages, until the all-clear."""

    def __init__(self, demo: Demo, since: datetime) -> None:
        self.demo = demo
        self.since = since
        self.http = httpx.Client(timeout=5)
        self.flows: dict[str, str] = {}
        self.deployments: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.seen_ts: set[tuple[str, str]] = set()
        self.all_clear = False
        slack = demo.sandbox_env["RUNBOOK_SLACK_API_URL"]
        self.slack = slack.rstrip("/")
        self.slack_headers = {"Authorization": f"Bearer {demo.sandbox_env.get('RUNBOOK_SLACK_TOKEN', '')}"}

    def _flow_name(self, flow_id: str) -> str:
        if flow_id not in self.flows:
            answer = self.http.get(f"{self.demo.api}/flows/{flow_id}")
            self.flows[flow_id] = answer.json().get("name", "?") if answer.status_code == 200 else "?"
        return self.flows[flow_id]

    def runs(self) -> dict[str, str]:
        """New runs and state changes are printed; returns run name → state of the runs seen."""
        body = {"limit": 50, "sort": "EXPECTED_START_TIME_DESC"}
        answer = self.http.post(f"{self.demo.api}/flow_runs/filter", json=body)
        answer.raise_for_status()
        for run in answer.json():
            created = datetime.fromisoformat(run["created"].replace("Z", "+00:00"))
            if created < self.since:
                continue
            rid, state = run["id"], (run.get("state") or {}).get("type", "?")
            expected = run.get("expected_start_time")
            later = (
                expected
                and datetime.fromisoformat(expected.replace("Z", "+00:00")) > datetime.now(UTC) + LATER
            )
            if state == "SCHEDULED" and rid not in self.states and later:
                continue  # a schedule's future run (the monthly drill), not part of this incident
            name = f"{self._flow_name(run['flow_id'])}/{run['name']}"
            if rid not in self.states:
                say(f"flow run {name}: {self.demo.ui}/runs/flow-run/{rid}")
            if self.states.get(rid) != state:
                say(f"  {name} → {(run.get('state') or {}).get('name', state)}")
            self.states[rid], self.names[rid] = state, name
        return {self.names[r]: s for r, s in self.states.items()}

    def slack_messages(self) -> None:
        from sandbox.slack import channel_id_for

        for channel in ("alerts-critical", "incidents"):
            cid = channel_id_for(channel)
            history = self.http.get(
                f"{self.slack}/conversations.history", params={"channel": cid}, headers=self.slack_headers
            ).json()
            for message in reversed(history.get("messages", [])):
                self._print(channel, message)
                if message.get("reply_count") or message.get("thread_ts"):
                    replies = self.http.get(
                        f"{self.slack}/conversations.replies",
                        params={"channel": cid, "ts": message["ts"]},
                        headers=self.slack_headers,
                    ).json()
                    for reply in replies.get("messages", [])[1:]:
                        self._print(channel, reply, thread=True)

    def _print(self, channel: str, message: dict[str, Any], thread: bool = False) -> None:
        key = (channel, message["ts"])
        if key in self.seen_ts:
            return
        self.seen_ts.add(key)
        text = str(message.get("text", ""))
        first = text.strip().splitlines()[0] if text.strip() else "(no text)"
        say(f"slack #{channel}{' (thread)' if thread else ''}: {first[:140]}")
        if "[RESOLVED]" in first:
            self.all_clear = True
            for line in text.splitlines()[1:]:
                print(f"      {line}", flush=True)

    def close(self) -> None:
        self.http.close()


def play_incident(demo: Demo, stop: threading.Event, deadline_s: float) -> bool:
    """Inject bad-deploy, post the alert, follow to the all-clear. True when it arrived."""
    control = demo.sandbox_env[CONTROL_VAR]
    service = demo.sandbox_env.get("RUNBOOK_SERVICE_BASE_URL", "")
    name = demo.sandbox_env.get("RUNBOOK_SERVICE_NAME", "emotionscare")
    since = datetime.now(UTC)
    say("▶ the incident: injecting bad-deploy (a broken release, deployed now)")
    answer = httpx.post(f"{control}/faults/bad-deploy", json={}, timeout=30)
    if answer.status_code >= 300:
        say(f"✗ the sandbox refused bad-deploy: {answer.status_code} {answer.text[:200]}")
        return False
    say(f"  sandbox: {answer.json().get('message', answer.text)[:160]}")
    started = time.monotonic()
    while not stop.is_set():  # the probe fails within seconds, as the blackbox exporter would see
        try:
            status = httpx.get(f"{service}/api/health", timeout=2).status_code
        except httpx.HTTPError:
            status = 0
        if status >= 500 or status == 0:
            say(f"  monitoring: GET {service}/api/health → {status or 'refused'}")
            break
        if time.monotonic() - started > 60:
            say("✗ the bad deploy never made /api/health fail")
            return False
        time.sleep(0.2)
    payload = alertmanager_payload(name, since)
    answer = httpx.post(
        f"{demo.intake}/alerts/alertmanager",
        json=payload,
        headers={"Authorization": f"Bearer {demo.token}"},
        timeout=10,
    )
    if answer.status_code != 202:
        say(f"✗ intake answered {answer.status_code}: {answer.text[:200]}")
        return False
    receipt = answer.json()
    say(
        f"  Alertmanager → intake: 202, incident {', '.join(receipt.get('incidents_created') or receipt.get('incidents_joined') or ['?'])}"
    )
    follower = Follower(demo, since)
    try:
        return _follow(demo, follower, stop, started, deadline_s)
    finally:
        follower.close()


def _follow(demo: Demo, follower: Follower, stop: threading.Event, started: float, deadline_s: float) -> bool:
    """Until the all-clear (and respond's end), then the post-mortem run it starts (bounded)."""
    respond_state = None
    while not stop.is_set():
        try:
            runs = follower.runs()
            follower.slack_messages()
        except (httpx.HTTPError, ValueError) as exc:
            say(f"  (could not read progress: {type(exc).__name__}; retrying)")
            runs = {}
        respond_state = next((s for n, s in runs.items() if n.startswith("respond/")), respond_state)
        if follower.all_clear and respond_state in FINAL_STATES:
            break
        if respond_state in FINAL_STATES - {"COMPLETED"}:
            break
        if time.monotonic() - started > deadline_s:
            say(f"✗ no all-clear after {deadline_s:.0f}s (logs: {demo.var / 'logs'})")
            return False
        stop.wait(0.5)
    if stop.is_set():
        return False
    status = httpx.get(f"{demo.sandbox_env[CONTROL_VAR]}/status", timeout=10).json()
    dep = status.get("deployment", {})
    say(f"  sandbox: {dep.get('name')} revision {dep.get('revision')}, image {dep.get('image')}")
    if not (follower.all_clear and respond_state == "COMPLETED"):
        say(f"✗ respond ended {respond_state} without an all-clear (logs: {demo.var / 'logs'})")
        return False
    say(f"✅ all-clear {time.monotonic() - started:.1f}s after the bad deploy; the rollback held")
    # Post-Incident: respond started the post-mortem run; show it to its end (bounded, not required)
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            runs = follower.runs()
        except (httpx.HTTPError, ValueError):
            runs = {}
        if any(n.startswith("postmortem/") and s in FINAL_STATES for n, s in runs.items()):
            say("  post-mortem written: the markdown artifact on its run, and a file in var/postmortems/")
            break
        stop.wait(0.5)
    return True


# --- main ----------------------------------------------------------------------------------------------


def _check_ports(ports: Ports) -> None:
    for port, setting in ports.all().items():
        if not port_free(port):
            raise DemoError(
                f"port {port} on 127.0.0.1 is in use (another `make demo` still running?); "
                f"stop it, or move the demo with {setting}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--no-incident", action="store_true", help="start everything, play no incident")
    parser.add_argument("--once", action="store_true", help="stop after the incident (or once ready)")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to wait for the all-clear")
    args = parser.parse_args(argv)
    from runbook.errors import SettingsError
    from runbook.settings import load_settings
    from sandbox.demo_settings import load_demo_settings

    try:
        settings = load_settings()
        demo_settings = load_demo_settings()
        ports = Ports(demo_settings.prefect_port, settings.intake.port, demo_settings.sandbox_port_base)
        if settings.intake.port == 0:
            raise DemoError("RUNBOOK_INTAKE_PORT: the demo needs a fixed port (got 0)")
        _check_ports(ports)
    except (SettingsError, DemoError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    root = Path.cwd()
    var = demo_settings.var if demo_settings.var.is_absolute() else root / demo_settings.var
    if var.exists():
        shutil.rmtree(var)  # a fresh start: no run, incident or world left from last time
    private_dir(var)  # its env file and logs hold the intake token and the stand-ins' credentials
    demo = Demo(root=root, var=var, ports=ports)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    code = 0
    sup = Supervisor(var / "logs", say=say)
    try:
        start_all(sup, demo)
        print_ready(demo, started)
        if not args.no_incident:
            ok = play_incident(demo, stop, args.deadline)
            code = 0 if ok else 1
        if not args.once:
            say("running; start runbooks and drills from the UI. Ctrl-C stops everything")
            while not stop.is_set():
                stop.wait(1)
    except Stop as exc:
        say(f"{exc}: stopping")
    except StartFailed as exc:
        say(f"✗ {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sup.stop_all()
        busy = [p for p in ports.all() if not wait_port_closed(p, timeout_s=10)]
        if busy:
            say(f"✗ still listening after the stop: ports {', '.join(map(str, busy))}")
            code = code or 1
        else:
            say(
                f"stopped: every process ended, ports {ports.prefect}, {ports.intake} and "
                f"{ports.sandbox_base}-{ports.sandbox_base + SANDBOX_PORTS - 1} free"
            )
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


if __name__ == "__main__":
    sys.exit(main())
