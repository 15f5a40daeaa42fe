"""The incident the demo plays: a bad deploy injected, the Alertmanager webhook monitoring would send,
and the terminal following what happens (flow runs, Slack, the rollback) to the all-clear."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sandbox.control import CONTROL_VAR
from sandbox.demo.system import Demo, say

__all__ = ["Follower", "alertmanager_payload", "play_incident"]

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
LATER = timedelta(seconds=30)  # a scheduled run due later than this is a schedule's, not the incident's


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
