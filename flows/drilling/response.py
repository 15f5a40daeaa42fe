"""The alert a drill raises and the flow that answers it: the scenario's runbook or `respond` as a subflow,
or intake (the alert POSTed as monitoring would, the incident's run awaited).

Usage::

    name, start = responder(s, opts.via)               # resolved before the fault goes in
    response = respond_direct(s, alert, opts, log, start) if start else respond_via_intake(s, alert, opts, log)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client

from flows.drilling.monitor import DrillLog
from flows.drilling.options import DrillOptions
from runbook.drills import Scenario
from runbook.errors import RunbookError
from runbook.models import Alert, AlertSource, IncidentRef, Signals, utc_now
from tasks import runtime

__all__ = ["Response", "drill_alert", "respond_direct", "respond_via_intake", "responder", "runbook_flow"]


# --- responding -------------------------------------------------------------------------------------------


def runbook_flow(name: str) -> Callable[..., Any]:
    """The flow called `name` in the catalogue (tests replace this to make a runbook fail)."""
    from flows.catalogue import flows_by_name

    flows = flows_by_name()
    if name not in flows:
        raise RunbookError(f"runbook {name!r} is not in the catalogue (known: {', '.join(sorted(flows))})")
    return flows[name]


def drill_alert(s: Scenario, drill_id: str) -> Alert:
    """The alert monitoring would send for this scenario, marked as a drill."""
    return Alert(
        source=AlertSource.DRILL,
        fingerprint=f"drill:{s.key}:{drill_id}",
        name=s.alert_name,
        service=runtime.settings().service.name,
        labels={"drill": drill_id, "scenario": s.key},
        annotations={"summary": s.summary},
        signals=Signals(**s.signals),
        starts_at=utc_now(),
    )


@dataclass
class Response:
    incident_id: str | None = None
    flow_run_id: str | None = None
    outcome: str | None = None
    error: str | None = None


def responder(s: Scenario, via: str) -> tuple[str, Callable[..., Any] | None]:
    """The flow that answers the alert (None: intake starts it), resolved (imported) before the fault
    goes in, so an unknown runbook fails the drill untouched and import time is not response time."""
    if via == "intake":
        return "respond", None
    name = s.runbook if via == "runbook" else "respond"
    return name, runbook_flow(name)


def respond_direct(
    s: Scenario, alert: Alert, opts: DrillOptions, log: DrillLog, start: Callable[..., Any]
) -> Response:
    """`via="runbook"` / `"respond"`: open the incident the alert would open, run the flow as a subflow."""
    store = runtime.store()
    store.add_alert(alert)
    incident, _created = store.open_incident_for(alert, s.severity, f"drill.{s.key}", s.runbook)
    log.incident_id = incident.id
    for entry in log.entries:  # the story so far, into the incident's timeline
        store.append_timeline(incident.id, entry)
    ref = IncidentRef(
        incident_id=incident.id, service=incident.service, severity=s.severity, summary=s.summary
    )
    if opts.via == "runbook":
        name, parameters = s.runbook, {**s.runbook_parameters, **opts.runbook_parameters}
    else:  # respond runs the runbook itself; the scenario's runbook options travel with it
        name, parameters = "respond", dict(opts.runbook_parameters)
        parameters["runbook_options"] = {**s.runbook_parameters, **parameters.get("runbook_options", {})}
    log.note("respond", f"starting {name} for incident {incident.id} as a subflow")
    try:
        result = start(incident=ref, **parameters)
    except Exception as exc:  # the runbook failing is what a drill is there to find: recorded, reported
        detail = f"{type(exc).__name__}: {exc}"[:500]
        log.note("respond-failed", f"{name} failed: {detail}")
        return Response(incident.id, error=detail)
    outcome = getattr(getattr(result, "outcome", None), "value", None) or str(
        getattr(result, "outcome", "done")
    )
    log.note("respond", f"{name} ended: {outcome}: {getattr(result, 'summary', '')}".rstrip(": "))
    return Response(incident.id, outcome=outcome)


def respond_via_intake(s: Scenario, alert: Alert, opts: DrillOptions, log: DrillLog) -> Response:
    """`via="intake"`: POST the alert to intake as monitoring would; wait for its incident and its run."""
    settings = runtime.settings()
    token = settings.intake.tokens.get("generic")
    host = "127.0.0.1" if settings.intake.host in ("0.0.0.0", "::") else settings.intake.host
    url = f"http://{host}:{settings.intake.port}/alerts/generic"
    body = {
        "alerts": [
            {
                "name": alert.name,
                "service": alert.service,
                "summary": alert.summary,
                "fingerprint": alert.fingerprint,
                "runbook": s.runbook,
                "severity": s.severity.value,
                "labels": alert.labels,
                "signals": alert.signals.observed(),
                "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
            }
        ]
    }
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        answer = httpx.post(url, json=body, headers=headers, timeout=settings.service.http_timeout_s)
    except httpx.HTTPError as exc:
        return Response(error=f"intake unreachable at {url}: {type(exc).__name__}: {exc}")
    if answer.status_code != 202:
        return Response(error=f"intake answered {answer.status_code}: {answer.text[:300]}")
    receipt = answer.json()
    opened = [*receipt.get("incidents_created", []), *receipt.get("incidents_joined", [])]
    if not opened:
        return Response(error=f"intake accepted the alert but opened no incident: {receipt}")
    incident_id = str(opened[0])
    log.note("alert", f"alert {alert.name} posted to intake ({url}): 202, incident {incident_id}")
    store = runtime.store()
    for entry in log.entries:  # the story so far, into the incident's timeline
        store.append_timeline(incident_id, entry)
    log.incident_id = incident_id
    deadline = time.monotonic() + opts.recover_deadline_s
    run_id, state = _wait_for_run(incident_id, deadline, opts.poll_interval_s)
    if run_id is None:
        return Response(incident_id, error="no flow run was started for the incident before the deadline")
    if state != "COMPLETED":
        return Response(incident_id, run_id, error=f"the incident's flow run ended {state}")
    outcomes = [e.message for e in store.timeline(incident_id) if e.kind == "outcome"]
    outcome = outcomes[-1].split(":", 1)[0] if outcomes else "completed"
    log.note("respond", f"flow run {run_id} of incident {incident_id} completed: {outcome}")
    return Response(incident_id, run_id, outcome=outcome)


def _wait_for_run(incident_id: str, deadline: float, poll_interval_s: float) -> tuple[str | None, str | None]:
    store = runtime.store()
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run_id = store.get_incident(incident_id, with_timeline=False).flow_run_id
            if run_id is not None:
                run = client.read_flow_run(UUID(run_id))
                if run.state is not None and run.state.is_final():
                    return run_id, run.state.type.value
            time.sleep(poll_interval_s)
        run_id = store.get_incident(incident_id, with_timeline=False).flow_run_id
    return run_id, "TIMED OUT"
