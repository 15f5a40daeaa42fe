"""Evidence from sources that may be out: the Deployment's logs, Sentry's unresolved issues.

Each source is optional: Kubernetes or Sentry failing becomes a note in the incident's timeline
(evidence that the source was out), never a failed flow. Sentry failing is its own refusal
(`SentryFailed`) or a transport failure that outlived the task's retries (refused, timed out, 5xx:
`httpx.HTTPError`). `flows.steps` re-exports both.
"""

from __future__ import annotations

import httpx

from flows.record import Record
from kubeops import KubernetesError
from kubeops.models import DeploymentLogs, Workload
from runbook.models import Evidence
from tasks import runtime
from tasks.kubernetes import get_deployment_logs
from tasks.sentry import SentryFailed, SentryIssueSummary, get_latest_event, list_unresolved_issues

__all__ = ["read_logs", "sentry_evidence"]

# What Sentry being out looks like once the read task's retries are spent.
_SENTRY_DOWN = (SentryFailed, httpx.HTTPError)


# --- logs -----------------------------------------------------------------------------------------------


def read_logs(
    rec: Record, target: Workload, step: str, *, tail_lines: int = 100, grep: str | None = None
) -> DeploymentLogs | None:
    """`kubectl logs deployment/X --tail=N | grep -i …`; None, noted under `step`, when Kubernetes fails."""
    try:
        return get_deployment_logs(target, tail_lines=tail_lines, grep=grep)
    except KubernetesError as exc:
        rec.note(step, f"logs unavailable: {exc}")
        return None


# --- Sentry -----------------------------------------------------------------------------------------------


def sentry_evidence(rec: Record, step: str, limit: int = 5) -> list[SentryIssueSummary]:
    """Sentry's unresolved issues (most events first) and the top one's latest event, as evidence.

    [] when Sentry is not configured or does not answer (noted under `step`). Every call is bounded by
    the settings' Sentry timeout.
    """
    sentry = runtime.settings().sentry
    if sentry.token is None:
        rec.note(step, "Sentry not configured (no token): skipped")
        return []
    try:
        issues = list_unresolved_issues(
            str(sentry.api_url),
            sentry.org,
            sentry.project,
            sentry.token,
            limit=limit,
            timeout_s=sentry.timeout_s,
        )
    except _SENTRY_DOWN as exc:
        rec.note(step, f"Sentry unavailable: {exc}")
        return []
    issues = sorted(issues, key=lambda i: -i.count)
    rec.add_evidence(
        Evidence(
            kind="sentry",
            title="Sentry grouping: unresolved issues",
            content="\n".join(f"{i.count:>6}  {i.title}  ({i.culprit})" for i in issues) or "none",
            data={"issues": [i.model_dump() for i in issues]},
        )
    )
    if issues:
        try:
            event = get_latest_event(
                str(sentry.api_url), issues[0].id, sentry.token, timeout_s=sentry.timeout_s
            )
            rec.add_evidence(
                Evidence(
                    kind="sentry",
                    title=f"Sentry: latest event of {issues[0].title}",
                    content=f"{event.message}\n{event.stack_text()}",
                    data={"exception_type": event.exception_type, "frames": event.frames},
                )
            )
        except _SENTRY_DOWN as exc:
            rec.note(step, f"Sentry latest event unavailable: {exc}")
    rec.note(step, f"Sentry: {len(issues)} unresolved issues, top: {issues[0].title if issues else '-'}")
    return issues
