"""Every dependency outage ends in an escalation, never in a traceback: one guard for every runbook
flow, the P2 diagnosis flows and `respond`.

Usage::

    @flow(name=RUNBOOK)
    @escalates_on_outage                     # under @flow: Prefect sees a normal return
    def service_down(incident: IncidentRef | None = None, ...) -> RunbookResult: ...

    classify(exc)     # Outage("the Kubernetes API", "reading deployment/emotionscare: 503 ...") or None
    raise_if_outage(done.error)   # a claimed write that failed for an outage: the guard escalates

What counts as an outage (`classify`, the exception and its causes): the Kubernetes API (kubeops'
`KubernetesError`, the client's `ApiException`, urllib3 errors), the incident store (`StoreFailed`,
SQLAlchemy's connection errors), the service's database (psycopg's connection errors), Slack,
PagerDuty and Sentry (their `...Failed`; httpx errors for Sentry's URL), the Prefect API (its HTTP
errors, httpx errors for its URL), the service itself (metrics, admin calls) and plain network errors. Anything else is a bug and is
raised as before: the run fails with its traceback, so it gets fixed.

What the guard does with an outage, each step on its own (one failing never stops the next):
- the run's log says which dependency and why (one line, no traceback);
- the incident's timeline gets an `outage` entry (when the store works);
- a run that is not a subflow hands over: a message in the incident thread (when Slack works; the
  #incidents channel when the thread cannot be read) and a PagerDuty trigger on the incident's key
  when the level is P1 or cannot be read (when PagerDuty works). A runbook run by `respond` leaves
  the hand-over to `respond`, which escalates an `escalated` result to the team lead anyway;
- a markdown artifact on the run (when the Prefect API works);
- the flow returns `RunbookResult(outcome=escalated)` naming the dependency: its state is Completed.

Why the record is read from the flow's frame: each flow opens its `Record` itself (`Record.open`),
and the guard must stay one decorator line on each flow. On an outage the traceback holds that frame;
its `Record` local (if it was opened) gives the timeline so far, the actions and the incident.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec

import httpx
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL

from flows.flow_run import artifact_key, run_logger
from flows.record import Record, render_markdown
from kubeops import KubernetesError
from runbook.errors import NotFound, StoreFailed
from runbook.models import Evidence, IncidentRef, RunbookOutcome, RunbookResult, TimelineEntry, utc_now
from runbook.severity import Severity
from tasks import runtime
from tasks.database import DatabaseRestartFailed
from tasks.pagerduty import PagerDutyFailed, send_event
from tasks.sentry import SentryFailed
from tasks.service import ServiceCallFailed
from tasks.slack import SlackFailed, send_message

__all__ = [
    "KUBERNETES",
    "PAGERDUTY",
    "PREFECT",
    "SENTRY",
    "SERVICE_DATABASE",
    "SLACK",
    "STORE",
    "Outage",
    "classify",
    "escalates_on_outage",
    "raise_if_outage",
]

P = ParamSpec("P")

KUBERNETES = "the Kubernetes API"
STORE = "the incident store"
SERVICE_DATABASE = "the service's database"
SLACK = "Slack"
PAGERDUTY = "PagerDuty"
SENTRY = "Sentry"
PREFECT = "the Prefect API"
SERVICE = "the service"
PROVIDER = "the database provider"
NETWORK = "a dependency (network)"


@dataclass(frozen=True)
class Outage:
    """A dependency that failed: which one, and what it said."""

    dependency: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.dependency} failed: {self.detail}"[:500]


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, then what caused it (explicit causes first), each once, at most 10 deep."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _requested(exc: httpx.HTTPError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # an httpx error raised without a request
        return ""


def _is_prefect(exc: httpx.HTTPError) -> bool:
    api = str(PREFECT_API_URL.value() or "")
    return bool(api) and _requested(exc).startswith(api.rstrip("/"))


def _is_sentry(exc: httpx.HTTPError) -> bool:
    try:
        api = str(runtime.settings().sentry.api_url or "")
    except Exception:  # settings unreadable: the error is not named Sentry's
        return False
    return bool(api) and _requested(exc).startswith(api.rstrip("/"))


def _one(exc: BaseException) -> str | None:
    """The dependency `exc` itself names, or None."""
    import psycopg
    import sqlalchemy.exc

    if isinstance(exc, KubernetesError | ApiException | urllib3.exceptions.HTTPError):
        return KUBERNETES
    if isinstance(exc, StoreFailed) and not isinstance(exc, NotFound):
        return STORE
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return STORE  # only the store speaks SQLAlchemy
    if isinstance(exc, psycopg.OperationalError):
        return SERVICE_DATABASE  # the store wraps its own errors in StoreFailed first
    if isinstance(exc, SlackFailed):
        return SLACK
    if isinstance(exc, PagerDutyFailed):
        return PAGERDUTY
    if isinstance(exc, SentryFailed):
        return SENTRY
    if isinstance(exc, PrefectHTTPStatusError):
        return PREFECT
    if isinstance(exc, httpx.HTTPError):
        return PREFECT if _is_prefect(exc) else SENTRY if _is_sentry(exc) else SERVICE
    if isinstance(exc, ServiceCallFailed) or type(exc).__name__ == "MetricsUnavailable":
        return SERVICE
    if isinstance(exc, DatabaseRestartFailed):
        return PROVIDER
    if isinstance(exc, ConnectionError | TimeoutError):
        return NETWORK
    return None


def classify(exc: BaseException) -> Outage | None:
    """The dependency outage behind `exc` (it or one of its causes), or None for anything else (a bug)."""
    for link in _chain(exc):
        dependency = _one(link)
        if dependency is not None:
            return Outage(dependency, f"{type(exc).__name__}: {exc}".strip())
    return None


def raise_if_outage(error: BaseException | None) -> None:
    """Re-raise `error` (a claimed write's, `ActDone.error`) when it is a dependency outage.

    `Record.act` records a failed write and returns it; a runbook that goes on as if the write were
    only refused would tell users or the timeline what did not happen (a feature "left disabled" that
    was never disabled). Raised instead, the guard ends the run escalated, naming the dependency.
    """
    if error is not None and classify(error) is not None:
        raise error


# ---- the guard ------------------------------------------------------------------------------------------


def escalates_on_outage(fn: Callable[P, RunbookResult]) -> Callable[P, RunbookResult]:
    """Run the flow body; a dependency outage (see `classify`) becomes an escalated result."""
    now, on_error = utc_now, _on_error

    def guarded(*args: P.args, **kwargs: P.kwargs) -> RunbookResult:
        started = now()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return on_error(fn, exc, started, args, kwargs)

    # Prefect builds the flow's parameter model from its signature and resolves the annotations in
    # the wrapper's globals: the wrapper (which names only its closure) runs with the flow module's.
    rebound = types.FunctionType(guarded.__code__, fn.__globals__, fn.__name__, None, guarded.__closure__)
    return functools.update_wrapper(rebound, fn)


def _on_error(
    fn: Callable[..., Any], exc: Exception, started: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RunbookResult:
    outage = classify(exc)
    if outage is None:
        raise exc
    ref = kwargs.get("incident") or next((a for a in args if isinstance(a, IncidentRef)), None)
    if ref is None and kwargs.get("incident_id"):  # started by intake or the form: the id alone
        ref = IncidentRef(incident_id=str(kwargs["incident_id"]))
    return escalate(_record_of(exc, fn), ref if isinstance(ref, IncidentRef) else None, outage, started)


def _record_of(exc: BaseException, fn: Callable[..., Any]) -> Record | None:
    """The `Record` the flow body had opened when `exc` was raised (see the module docstring)."""
    code = getattr(fn, "__code__", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return next((v for v in tb.tb_frame.f_locals.values() if isinstance(v, Record)), None)
        tb = tb.tb_next
    return None


def _runbook_name() -> str:
    ctx = FlowRunContext.get()
    return ctx.flow.name if ctx is not None and ctx.flow is not None else "runbook"


def _is_subflow() -> bool:
    ctx = FlowRunContext.get()
    return bool(ctx and ctx.flow_run and ctx.flow_run.parent_task_run_id)


def _attempt(what: str, step: Callable[[], object]) -> bool:
    """One step of the escalation: a failure is logged (one line) and the next step goes on."""
    try:
        step()
    except Exception as exc:  # the escalation must end; each of its channels may be down too
        run_logger("flows.outages").warning(
            "outage escalation: %s failed: %s: %s", what, type(exc).__name__, exc
        )
        return False
    return True


def escalate(rec: Record | None, ref: IncidentRef | None, outage: Outage, started: Any) -> RunbookResult:
    """Record the outage everywhere that still works, hand over when not a subflow, and return escalated."""
    runbook = rec.runbook if rec is not None else _runbook_name()
    incident_id = rec.incident.id if rec is not None else (ref.incident_id if ref is not None else None)
    summary = f"escalated: {outage.reason}"
    logger = run_logger("flows.outages")
    logger.error("%s stopped: %s; escalating to a person", runbook, outage.reason)
    entry = TimelineEntry(actor=f"runbook:{runbook}", kind="outage", message=summary)
    timeline = list(rec.timeline) if rec is not None else []
    timeline.append(entry)
    if incident_id is not None:
        _attempt("timeline", lambda: runtime.store().append_timeline(incident_id, entry))
    if not _is_subflow() and not (rec is not None and rec.dry_run):
        _hand_over(rec, runbook, incident_id, outage)
    evidence = list(rec.evidence) if rec is not None else []
    evidence.append(
        Evidence(kind="outage", title=f"{outage.dependency} unavailable", content=outage.detail,
                 data={"dependency": outage.dependency})
    )  # fmt: skip
    result = RunbookResult(
        runbook=runbook,
        incident_id=incident_id,
        outcome=RunbookOutcome.ESCALATED,
        summary=summary,
        actions=list(rec.actions) if rec is not None else [],
        evidence=evidence,
        timeline=timeline,
        started_at=rec.started_at if rec is not None else started,
        finished_at=utc_now(),
    )
    if FlowRunContext.get() is not None:
        _attempt(
            "artifact",
            lambda: create_markdown_artifact(
                key=artifact_key(f"{runbook}-{(incident_id or 'outage')[:12]}"),
                markdown=render_markdown(result),
                description=f"{runbook}: escalated ({outage.dependency} unavailable)",
            ),
        )
    return result


def _hand_over(rec: Record | None, runbook: str, incident_id: str | None, outage: Outage) -> None:
    """Tell people: the incident thread (or #incidents) and, on P1 or an unknown level, PagerDuty."""
    from flows.comms import Comms

    slack = runtime.settings().slack
    text = (
        f"🚨 {runbook} stopped: {outage.reason}\n"
        f"Automation cannot go on; escalating to {slack.oncall_handle} and the team lead. "
        f"Incident: {incident_id or 'not recorded (the incident store is down)'}"
    )
    key = f"outage-{runbook}"
    if outage.dependency != SLACK:
        sent = rec is not None and _attempt("Slack (thread)", lambda: Comms(rec, tasks=False).post(key, text))
        if not sent:
            _attempt("Slack (#incidents)", lambda: send_message(slack.incidents_channel, text))
    if outage.dependency == PAGERDUTY:
        return
    severity: Severity | None = None
    if incident_id is not None:

        def level() -> None:
            nonlocal severity
            severity = runtime.store().get_incident(incident_id, with_timeline=False).severity

        _attempt("incident level", level)
    if severity not in (None, Severity.P1):
        return
    summary = f"{runbook} stopped: {outage.dependency} unavailable"
    service = rec.incident.service if rec is not None else runtime.settings().service.name
    paged = rec is not None and _attempt(
        "PagerDuty (claimed)",
        lambda: Comms(rec, tasks=False).page(
            key, "trigger", summary=summary, details={"reason": outage.reason}
        ),
    )
    if not paged:
        _attempt(
            "PagerDuty",
            lambda: send_event(
                "trigger", incident_id or f"outage:{runbook}", summary=summary, source=service,
                details={"reason": outage.reason},
            ),
        )  # fmt: skip
