"""Guide: P1 › Actions by Incident Type › External API Failure (Hume, OpenAI, Spotify).

Check which API is down (`curl https://api.hume.ai/health` …); for each one down: disable the feature
it serves (`kubectl set env deployment/emotionscare FEATURE_MUSIC_GENERATION_ENABLED=false`), notify
users (`POST /api/notifications {"type":"maintenance","feature":"music"}`), monitor the API until it is
back (the guide's `while true; curl ... && break; sleep 30; done`, here bounded by a deadline), then
re-enable the feature and tell users. An API still down at the deadline is escalated, its flag left off.
"""

from __future__ import annotations

import time
from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field

from flows.outages import escalates_on_outage, raise_if_outage
from flows.parameters import IncidentId, ServiceName, Summary
from flows.record import Record
from flows.steps import switch_feature
from flows.targets import base_url, target_workload
from runbook.models import DEFAULT_SERVICE, Evidence, IncidentRef, RunbookOutcome, RunbookResult
from runbook.settings import ExternalApi
from runbook.severity import Severity
from tasks import runtime
from tasks.external_apis import ApiStatus, api_status, check_external_api
from tasks.health import probe_url
from tasks.service import notify_users

__all__ = ["external_api_failure", "poll_until_back"]

RUNBOOK = "external-api-failure"


def poll_until_back(
    apis: list[ExternalApi], deadline_s: float, poll_interval_s: float, timeout_s: float
) -> tuple[set[str], int]:
    """Probe every API in `apis` each interval until all are back or the deadline passes.

    Bounded; logs each attempt; a probe error counts as "still down", never as a crash.
    Returns the names that came back and the number of attempts made.
    """
    logger = get_run_logger()
    deadline = time.monotonic() + deadline_s
    pending = {api.name: api for api in apis}
    back: set[str] = set()
    attempt = 0
    while pending:
        attempt += 1
        for name, api in list(pending.items()):
            try:
                status = api_status(name, probe_url(str(api.health_url), timeout_s))
            except Exception as exc:  # a probe bug must not end the watch; it is logged and retried
                logger.warning("attempt %d: %s probe error %s: %s", attempt, name, type(exc).__name__, exc)
                continue
            if status.up:
                logger.info("attempt %d: ✅ %s back (%s)", attempt, name, status.probe.line())
                back.add(name)
                del pending[name]
            else:
                logger.info("attempt %d: ⏳ %s still down (%s)", attempt, name, status.probe.line())
        if not pending or time.monotonic() + poll_interval_s > deadline:
            break
        time.sleep(poll_interval_s)
    return back, attempt


@flow(name=RUNBOOK, description="P1 › External API Failure: flag off, notify, poll until back, flag on.")
@escalates_on_outage
def external_api_failure(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P1,
    summary: Summary = "",
    incident_id: IncidentId = "",
    apis: list[str] | None = None,
    poll_interval_s: Annotated[float, Field(gt=0, le=600)] = 30.0,
    recovery_deadline_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """External API Failure: find the API that is down, turn its feature off, wait for it, turn it on.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        apis: names of the APIs to check (hume, openai, spotify); empty: every configured API
        poll_interval_s: how often to check a down API (the guide: every 30 s)
        recovery_deadline_s: stop waiting after this long; the flag stays off and the incident escalates
        dry_run: record and log the plan, change nothing
        incident: Python callers: the whole incident instead of the fields above (not in the form)
    """
    rec = Record.open(
        RUNBOOK,
        IncidentRef.from_form(
            incident,
            service=service,
            severity=severity,
            summary=summary,
            incident_id=incident_id,
            default_summary="external API failure",
        ),
        dry_run=dry_run,
    )
    settings = runtime.settings()
    target = target_workload()
    configured = {api.name: api for api in settings.external_apis}
    unknown = sorted(set(apis or []) - set(configured))
    if unknown:
        raise ValueError(f"apis: unknown {unknown}; configured: {sorted(configured)}")
    chosen = [configured[name] for name in (apis or list(configured))]
    timeout_s = settings.service.http_timeout_s

    # Check which API is down
    statuses: list[ApiStatus] = [check_external_api(a.name, str(a.health_url), timeout_s) for a in chosen]
    rec.add_evidence(
        Evidence(
            kind="health",
            title="external APIs",
            content="\n".join(f"{s.name}: {s.probe.line()}" for s in statuses),
        )
    )
    down = [configured[s.name] for s in statuses if not s.up]
    rec.note("assess", "down: " + (", ".join(a.name for a in down) or "none"))
    if not down:
        return rec.finish(RunbookOutcome.RECOVERED_BY_ITSELF, "every external API answers")

    def notify(payload: dict[str, str]) -> None:
        path = settings.service.notifications_path
        rec.act(
            "notify-users",
            f"{payload['type']}:{payload['feature']}",
            lambda: notify_users(base_url(), path, payload, timeout_s),
            f"POST {path} {payload}",
        )

    # Temporary fix: disable the affected feature, then tell users
    for api in down:
        off = switch_feature(rec, target, api.feature_flag, False)
        if off.error is not None:  # not disabled: users are not told it is, nothing waits on it
            raise_if_outage(off.error)
            return rec.finish(
                RunbookOutcome.ESCALATED,
                f"turning {api.feature_flag} off was not done ({off.error}); escalated",
            )
        notify({"type": "maintenance", "feature": api.feature})
    if dry_run:
        return rec.finish(
            RunbookOutcome.MITIGATED, f"would disable {[a.feature_flag for a in down]} and wait"
        )

    # Monitor API recovery (bounded)
    rec.note(
        "monitor",
        f"polling {[a.name for a in down]} every {poll_interval_s:g}s for up to {recovery_deadline_s:g}s",
    )
    back, attempts = poll_until_back(down, recovery_deadline_s, poll_interval_s, timeout_s)
    rec.note("monitor", f"after {attempts} attempts: back {sorted(back) or 'none'}")

    # Re-enable the feature of each API that came back
    for api in down:
        if api.name not in back:
            continue
        on = switch_feature(rec, target, api.feature_flag, True)
        if on.error is not None:  # still off: users are not told it is back
            raise_if_outage(on.error)
            return rec.finish(
                RunbookOutcome.ESCALATED,
                f"{api.name} back, but turning {api.feature_flag} on was not done ({on.error}); escalated",
            )
        notify({"type": "maintenance-over", "feature": api.feature})

    still = [a.name for a in down if a.name not in back]
    if still:
        return rec.finish(
            RunbookOutcome.ESCALATED,
            f"{', '.join(still)} still down after {recovery_deadline_s:g}s; feature left disabled; escalated",
        )
    return rec.finish(
        RunbookOutcome.RECOVERED, f"{', '.join(sorted(back))} back; features re-enabled, users told"
    )
