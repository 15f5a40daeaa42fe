"""Incidents played on the topology, one process killed in the middle of each, and what was counted.

Usage::

    results = play(topo, sup, kills=("none", "api", "warm", "intake", "services"))

Each phase: inject `bad-deploy` in the world, wait until the probe fails, post the Alertmanager alert
(then one more firing alert every 0.5 s, to both intake processes in turn, until the incident is
resolved), wait until its `respond` run is Running, `kill -9` the phase's process (its whole process
group), and follow the incident to `resolved` in the store. Counted per phase:

- alerts accepted (202) and alerts stored for the incident: lost = accepted - stored (a POST that
  could not connect, to a killed intake, is sent again to the other, as Alertmanager retries);
- respond runs of the incident, and the most seen Running at once (sampled every 0.5 s);
- rollbacks: the incident's `rollback` action records;
- resolved, and the time from the first alert to `resolved` (the all-clear);
- the killed process back (the supervisor restarts it, as Kubernetes restarts a pod) and when.

Which warm runner is killed: the one executing the incident's `respond` run (its log names the run).
Nothing reports that run's end: its heartbeats stop, the zombie automation (applied by the topology,
window 45 s) sets it Crashed, and intake's sweeper starts the next generation, which repeats none of
the claimed actions. That phase gets `TAKEOVER_EXTRA_S` more than the others' deadline.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.scale.topology import Topology, answers
from runbook.errors import StoreFailed
from runbook.store import open_store
from sandbox.demo.incident import alertmanager_payload
from sandbox.supervise import Child, Supervisor

__all__ = ["KILLS", "Phase", "play"]

KILLS = ("none", "api", "warm", "intake", "services")
TAKEOVER_EXTRA_S = 150.0
"""The warm phase's extra time: the zombie window (45 s after a heartbeat missed, heartbeats every
30 s), the sweeper's pass (5 s), and the next generation's verification."""
LIVE = {"RUNNING", "PENDING"}


@dataclass
class Phase:
    kill: str
    killed: str = ""
    incident_id: str = ""
    alerts_accepted: int = 0
    alerts_stored: int = 0
    respond_runs: int = 0
    respond_live_max: int = 0
    rollbacks: int = 0
    resolved: bool = False
    status: str = ""
    """The incident's status when the phase ended (`resolved`, or where it stopped: `escalated`, ...)."""
    all_clear_s: float | None = None
    killed_at_s: float | None = None
    back_after_s: float | None = None
    ack_s: float | None = None
    """First alert POST → respond's acknowledgement in Slack #alerts-critical (the message's ts)."""
    page_s: float | None = None
    """→ the PagerDuty trigger answered by the Events API (its action record finished)."""
    rollback_s: float | None = None
    """→ the rollback answered by the Kubernetes API (its action record finished)."""
    notes: list[str] = field(default_factory=list)
    killed_mono: float | None = field(default=None, repr=False)
    """`time.monotonic()` at the kill (for `back_after_s` when it comes back after the incident)."""

    @property
    def alerts_lost(self) -> int:
        return self.alerts_accepted - self.alerts_stored

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self) | {"alerts_lost": self.alerts_lost}
        found.pop("killed_mono")
        return found


class _Alerts:
    """Posts firing alerts for one incident to the intake processes in turn."""

    def __init__(self, topo: Topology, service: str, since: datetime) -> None:
        self.topo = topo
        self.payload = alertmanager_payload(service, since)
        self.turn = 0
        self.accepted = 0
        self.incident_id = ""
        self.incidents: set[str] = set()
        """Every incident a 202 named: more than one means an alert opened a second incident."""

    def post(self) -> None:
        urls = self.topo.intakes
        for attempt in range(len(urls) * 2):
            url = urls[(self.turn + attempt) % len(urls)]
            try:
                answer = httpx.post(
                    f"{url}/alerts/alertmanager",
                    json=self.payload,
                    headers={"Authorization": f"Bearer {self.topo.token}"},
                    timeout=5,
                )
            except httpx.HTTPError:
                continue  # that intake is down: the next one (Alertmanager retries likewise)
            if answer.status_code == 202:
                self.accepted += 1
                receipt = answer.json()
                ids = receipt.get("incidents_created") or receipt.get("incidents_joined") or []
                self.incident_id = self.incident_id or (ids[0] if ids else "")
                self.incidents.update(ids)
                break
        self.turn += 1


def _respond_runs(api: str, incident_id: str) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": ["respond"]}}, "limit": 200}
    try:
        answer = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=5)
        answer.raise_for_status()
    except httpx.HTTPError:
        return []
    runs: list[dict[str, Any]] = answer.json()
    return [r for r in runs if _incident_of(r.get("parameters") or {}) == incident_id]


def _incident_of(parameters: dict[str, Any]) -> str | None:
    """The incident a respond run was started for: `incident_id` (what intake and the sweeper send), or
    the older `incident: {incident_id}` shape."""
    return parameters.get("incident_id") or (parameters.get("incident") or {}).get("incident_id")


def _kill(child: Child) -> None:
    try:
        os.killpg(child.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _victim(topo: Topology, kill: str, runs: list[dict[str, Any]], phase: Phase) -> Child | None:
    children = topo.children
    if kill == "api":
        return children["api-1"]
    if kill == "intake":
        return children["intake-1"]
    if kill == "services":
        return children["services"]
    if kill == "warm":
        names = {str(r["name"]) for r in runs}
        executing = [
            n
            for n in ("warm-1", "warm-2")
            if any(f"'{name}'" in children[n].log_path.read_text(errors="replace") for name in names)
        ]
        if len(executing) != 1:
            return None  # its log has not shown the run yet (a busy machine): look again next round
        phase.notes.append(
            f"killed {executing[0]}, which executed respond: taken over after the zombie window"
        )
        return children[executing[0]]
    return None


def _service_unhealthy(topo: Topology) -> bool:
    try:
        return (
            httpx.get(f"{topo.sandbox_env['RUNBOOK_SERVICE_BASE_URL']}/api/health", timeout=2).status_code
            >= 500
        )
    except httpx.HTTPError:
        return True


def _status(store: Any, incident_id: str) -> str:
    """The incident's status; "" before it is known or while the store does not answer (read again)."""
    try:
        return str(store.get_incident(incident_id, with_timeline=False).status.value) if incident_id else ""
    except StoreFailed:
        return ""


def _open_incidents(store: Any) -> bool:
    try:
        return bool(store.list_incidents(open_only=True, limit=1))
    except StoreFailed:
        return True  # not known: read again


def _no_open_incident(topo: Topology, timeout_s: float = 60.0) -> bool:
    with open_store(topo.store_url) as store:
        deadline = time.monotonic() + timeout_s
        while _open_incidents(store):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    return True


def play_one(topo: Topology, kill: str, deadline_s: float = 120.0) -> Phase:
    phase = Phase(kill)
    if not _no_open_incident(topo):
        phase.notes.append("an incident of the previous phase was still open")
    answer = httpx.post(f"{topo.control()}/faults/bad-deploy", json={}, timeout=30)
    answer.raise_for_status()
    deadline = time.monotonic() + 60
    while not _service_unhealthy(topo):
        if time.monotonic() > deadline:
            phase.notes.append("the bad deploy never made /api/health fail")
            return phase
        time.sleep(0.2)
    service = topo.sandbox_env.get("RUNBOOK_SERVICE_NAME", "emotionscare")
    alerts = _Alerts(topo, service, datetime.now(UTC))
    started, posted_at = time.monotonic(), time.time()
    alerts.post()
    store = open_store(topo.store_url)
    victim: Child | None = None
    restarts_before = 0
    try:
        deadline = started + deadline_s + (TAKEOVER_EXTRA_S if kill == "warm" else 0)
        while time.monotonic() < deadline:
            runs = _respond_runs(topo.api, alerts.incident_id) if alerts.incident_id else []
            phase.respond_live_max = max(
                phase.respond_live_max, sum(r.get("state_type") in LIVE for r in runs)
            )
            if kill != "none" and victim is None and any(r.get("state_type") == "RUNNING" for r in runs):
                victim = _victim(topo, kill, runs, phase)
                if victim is not None:
                    restarts_before = victim.restarts
                    phase.killed = victim.name
                    _kill(victim)
                    phase.killed_at_s = time.monotonic() - started
                    phase.killed_mono = time.monotonic()
            if (
                victim is not None
                and phase.back_after_s is None
                and victim.restarts > restarts_before
                and victim.alive
            ):
                phase.back_after_s = time.monotonic() - started - (phase.killed_at_s or 0)
            status = _status(store, alerts.incident_id)
            if status == "resolved":
                phase.resolved = True
                phase.all_clear_s = time.monotonic() - started
                break
            if status in ("triggered", "acknowledged", ""):  # monitoring fires until the fix is in
                alerts.post()
            time.sleep(0.5)
        phase.incident_id = alerts.incident_id
        phase.status = _status(store, alerts.incident_id)
        phase.alerts_accepted = alerts.accepted
        if len(alerts.incidents) > 1:
            phase.notes.append(f"the alerts named {len(alerts.incidents)} incidents")
        if alerts.incident_id:
            phase.alerts_stored = sum(len(store.list_alerts(incident_id=i)) for i in alerts.incidents)
            actions = store.list_actions(alerts.incident_id)
            phase.rollbacks = sum(a.action == "rollback" for a in actions)
            phase.rollback_s = _finished_after(actions, "rollback", "", posted_at)
            phase.page_s = _finished_after(actions, "pagerduty", ":trigger", posted_at)
            phase.ack_s = _acknowledged_after(topo, posted_at)
            phase.respond_runs = len(_respond_runs(topo.api, alerts.incident_id))
    finally:
        store.close()
    return phase


def play(
    topo: Topology, sup: Supervisor, kills: tuple[str, ...] = KILLS, deadline_s: float = 120.0
) -> list[Phase]:
    phases = []
    for kill in kills:
        phase = play_one(topo, kill, deadline_s)
        phases.append(phase)
        _settle(topo, phase)
    return phases


def _settle(topo: Topology, phase: Phase, timeout_s: float = 90.0) -> None:
    """Before the next phase: the killed process back and ready (a killed runner re-registers)."""
    if not phase.killed:
        return
    child = topo.children[phase.killed]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = child.log_path.read_text(errors="replace")
        restarted, _, after = text.rpartition("restarted by the supervisor")
        if restarted and child.alive and _ready_again(topo, phase.kill, after):
            if phase.back_after_s is None and phase.killed_mono is not None:  # back after the incident ended
                phase.back_after_s = time.monotonic() - phase.killed_mono
            return
        time.sleep(0.2)
    phase.notes.append(f"{child.name} was not back within {timeout_s:.0f}s")


def _ready_again(topo: Topology, kill: str, log_since_restart: str) -> bool:
    if kill == "warm":
        return "warm runner ready" in log_since_restart
    if kill == "api":
        return answers(f"http://127.0.0.1:{topo.api_ports[0]}/api/health")
    if kill == "intake":
        return answers(f"{topo.intakes[0]}/readyz")
    return True


def _finished_after(actions: list[Any], action: str, target_suffix: str, posted_at: float) -> float | None:
    done = [
        a.finished_at.timestamp()
        for a in actions
        if a.action == action and a.target.endswith(target_suffix) and a.finished_at is not None
    ]
    return min(done) - posted_at if done else None


def _acknowledged_after(topo: Topology, posted_at: float) -> float | None:
    """The first "Acknowledged" message in #alerts-critical since the alert, from the Slack stand-in."""
    from sandbox.slack import channel_id_for

    env = topo.sandbox_env
    try:
        history = httpx.get(
            f"{env['RUNBOOK_SLACK_API_URL'].rstrip('/')}/conversations.history",
            params={"channel": channel_id_for("alerts-critical")},
            headers={"Authorization": f"Bearer {env.get('RUNBOOK_SLACK_TOKEN', '')}"},
            timeout=5,
        ).json()
    except (httpx.HTTPError, ValueError):
        return None
    stamps = [
        float(m["ts"])
        for m in history.get("messages", [])
        if "Acknowledged" in str(m.get("text", "")) and float(m["ts"]) >= posted_at
    ]
    return min(stamps) - posted_at if stamps else None
