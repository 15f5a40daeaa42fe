"""Guide: Running Incident Drill. "Monthly, run incident simulations" — four drills and the monthly run.

Usage::

    drill_high_error_rate()                              # the sandbox, the runbook started directly
    drill_database_failure(target="staging")             # staging: the runbooks' settings must say staging
    drill_external_api_failure(via="intake")             # the alert goes through intake, respond answers it
    drill_monthly(plan="rotate")                         # this month's scenario (prefect.yaml: monthly cron)
    drill_high_error_rate(service="payments")            # a catalogued service (default: the first)

Every drill works on one catalogued service (flows/drilling/services.py): its fault, its monitor, its
alert and the runbook's target are that service's (the drill binds it: tasks/runtime.py). The monthly
drill takes the catalogue's services in turn, one a month.

Each drill, in order:
1. Target check (runbook/drills.py `check_target`): the sandbox by default; staging when the runbooks'
   settings say staging; a target marked production is refused unless `allow_production=True` is given
   explicitly, and that permission is recorded. A refused drill touches nothing and ends Failed.
2. Inject the scenario's fault (tasks/drill_targets.py), after clearing any left over by an earlier drill.
3. Detect: the drill's monitor watches the symptom production monitoring would see, and raises the
   alert monitoring would send: to intake (`via="intake"`), or straight to the runbook (`via="runbook"`)
   or to `respond` (`via="respond"`) as a subflow.
4. Let the response run; a cause that ends by itself (an outage) is lifted after `outage_s`, one that
   needs people's fix (a slow query optimised) once the runbook is done.
5. Verify recovery independently (the monitor sees the symptom gone and the service healthy).
6. **Always** clear the fault: in a `finally` (runbook failure, a crash, a cancellation's SIGTERM), and
   again from the flow's cancellation and crash hooks.
7. Measure detect / acknowledge / mitigate / recover against the guide's targets, keep the result in the
   drill history, publish the report (artifact) and post it to Slack (#incidents).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from pydantic import Field

from flows.drilling.exercise import clear_after_cancellation, run_drill
from flows.drilling.options import DrillOptions, DrillRefused, Via
from flows.drilling.report import publish_history, send_to_slack
from flows.drilling.response import runbook_flow
from flows.drilling.services import monthly_service
from flows.parameters import PollSeconds, Seconds
from runbook.drill_history import open_history
from runbook.drills import DrillResult, scenario, scenarios_for
from runbook.models import utc_now
from tasks import runtime

__all__ = [
    "DRILLS",
    "DrillOptions",
    "DrillRefused",
    "clear_after_cancellation",
    "drill_database_failure",
    "drill_external_api_failure",
    "drill_high_error_rate",
    "drill_monthly",
    "drill_performance_degradation",
    "run_drill",
    "runbook_flow",
    "send_to_slack",
]


# --- the flows --------------------------------------------------------------------------------------------
# One options model (`DrillOptions`) checks every drill's parameters; each flow still spells its parameters
# out, because Prefect builds a deployment's parameter schema (the UI's form, `enforce_parameter_schema`)
# and `prefect deploy` reads it from the function's own signature. The flows differ in their defaults
# (a P2 diagnosis gets 15 minutes), in `outage_s` (only an outage ends by itself) and in their docstrings.

_HOOKS: dict[str, Any] = {
    "on_cancellation": [clear_after_cancellation],
    "on_crashed": [clear_after_cancellation],
}


def _drill(key: str, parameters: dict[str, Any]) -> DrillResult:
    """Scenario `key` with the flow's parameters, checked once by the shared `DrillOptions` model."""
    return run_drill(scenario(key), DrillOptions.model_validate(parameters))


@flow(
    name="drill-database-failure",
    description="Drill, Scenario 1: Database Failure (db-down).",
    **_HOOKS,
)
def drill_database_failure(
    target: str = "sandbox",
    service: str | None = None,
    allow_production: bool = False,
    via: Via = "runbook",
    poll_interval_s: PollSeconds = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 600.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 1: Database Failure. Simulate: the database goes away (PostgreSQL stopped); Response: the
    Database Connection Lost recovery procedure (restart the database, reset the pool, verify).

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        service: the catalogued service drilled (its fault, its alert, its runbook); empty: the first one
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start database-lost directly), respond (start respond), intake (post the alert there)
        poll_interval_s: how often the drill's monitor looks at the service
        detect_deadline_s: the monitor gives up if the symptom has not shown by then
        recover_deadline_s: how long to wait for the response and the verified recovery
        runbook_parameters: parameters of the flow started (the runbook; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    return _drill("database-failure", locals())


@flow(
    name="drill-high-error-rate", description="Drill, Scenario 2: High Error Rate (a buggy deploy).", **_HOOKS
)
def drill_high_error_rate(
    target: str = "sandbox",
    service: str | None = None,
    allow_production: bool = False,
    via: Via = "runbook",
    poll_interval_s: PollSeconds = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 600.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 2: High Error Rate. Simulate: deploy buggy code; Response: identify and roll back.

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        service: the catalogued service drilled (its fault, its alert, its runbook); empty: the first one
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start service-down directly), respond (start respond), intake (post the alert to intake)
        poll_interval_s: how often the drill's monitor looks at the service
        detect_deadline_s: the monitor gives up if the symptom has not shown by then
        recover_deadline_s: how long to wait for the response and the verified recovery
        runbook_parameters: parameters of the flow started (the runbook; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    return _drill("high-error-rate", locals())


@flow(
    name="drill-performance-degradation",
    description="Drill, Scenario 3: Performance Degradation (a slow query).",
    **_HOOKS,
)
def drill_performance_degradation(
    target: str = "sandbox",
    service: str | None = None,
    allow_production: bool = False,
    via: Via = "runbook",
    poll_interval_s: PollSeconds = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 900.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 3: Performance Degradation. Simulate: a slow database query; Response: troubleshoot, optimise.

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        service: the catalogued service drilled (its fault, its alert, its runbook); empty: the first one
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start the diagnosis directly), respond (start respond), intake (post the alert there)
        poll_interval_s: how often the drill's monitor measures the latency
        detect_deadline_s: the monitor gives up if the latency has not risen by then
        recover_deadline_s: how long to wait for the diagnosis and the verified recovery (P2: 15 min)
        runbook_parameters: parameters of the flow started (the diagnosis; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    return _drill("performance-degradation", locals())


@flow(
    name="drill-external-api-failure",
    description="Drill, Scenario 4: External API Failure (Hume blocked).",
    **_HOOKS,
)
def drill_external_api_failure(
    target: str = "sandbox",
    service: str | None = None,
    allow_production: bool = False,
    via: Via = "runbook",
    outage_s: Seconds = 120.0,
    poll_interval_s: PollSeconds = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 900.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 4: External API Failure. Simulate: block Hume API calls; Response: fallback/maintenance mode.

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        service: the catalogued service drilled (its fault, its alert, its runbook); empty: the first one
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start external-api-failure directly), respond (start respond), intake (post to intake)
        outage_s: Hume comes back this long after it was blocked
        poll_interval_s: how often the drill's monitor looks at Hume and the service
        detect_deadline_s: the monitor gives up if the symptom has not shown by then
        recover_deadline_s: how long to wait for the response and the verified recovery
        runbook_parameters: parameters of the flow started (the runbook; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    return _drill("external-api-failure", locals())


DRILLS: dict[str, Callable[..., DrillResult]] = {
    "database-failure": drill_database_failure,
    "high-error-rate": drill_high_error_rate,
    "performance-degradation": drill_performance_degradation,
    "external-api-failure": drill_external_api_failure,
}


@flow(name="drill-monthly", description="Running Incident Drill: this month's scenarios, then the history.")
def drill_monthly(
    plan: Literal["rotate", "quarterly", "all"] = "rotate",
    month: Annotated[int, Field(ge=1, le=12)] | None = None,
    target: str = "sandbox",
    services: list[str] | None = None,
    allow_production: bool = False,
    via: Via = "runbook",
    post_to_slack: bool = True,
) -> list[DrillResult]:
    """Monthly incident simulations: rotate (one scenario a month), quarterly (all four each quarter), all.

    Args:
        plan: rotate (one scenario a month, 1 to 4 in turn), quarterly (all four in Jan/Apr/Jul/Oct), all
        month: the month to plan for (1-12); empty: the current month (UTC)
        target: where to inject the faults: sandbox (default), or the environment the settings name
        services: the services drilled in turn, one a month (empty: the catalogue's, in its order)
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start each runbook directly), respond (start respond), intake (post alerts to intake)
        post_to_slack: post each drill report to #incidents
    """
    when = month or utc_now().month
    chosen = scenarios_for(plan, when)
    logger = get_run_logger()
    logger.info("plan %s: %s", plan, ", ".join(s.label for s in chosen) or "no drill this month")
    results = []
    for s in chosen:
        service = monthly_service(s, services, when)
        if service is None:
            logger.warning(
                "%s: no service it can be played on in %s; skipped", s.label, services or "the catalogue"
            )
            continue
        logger.info("%s on %s", s.label, service.name)
        results.append(
            DRILLS[s.key](
                target=target,
                service=service.name,
                allow_production=allow_production,
                via=via,
                post_to_slack=post_to_slack,
            )
        )
    with open_history(runtime.settings().store.url) as history:
        publish_history(history.list(limit=200))
    return results
