"""The automation switch at run time: read from Prefect Variables right before each write; in
`approve` mode, ask a person with a typed form first.

People flip it in the Prefect UI (Variables page), with no restart; a run in flight reads it again
before each of its writes (after any wait), so it honours a change before its next write:

- `runbook_automation_mode`: "auto", "approve" or "observe" (unset: the `automation_mode` setting);
- `runbook_automation_mode_by_service`: a JSON object, service → mode, e.g. {"emotionscare": "observe"}.

The effective mode is the stricter of the two (`runbook.switch.decide`). When the Prefect API cannot
be read, or a value is not a mode, the switch decides `approve` (see runbook/switch.py for why).
Writes that only tell people (Slack, PagerDuty, escalations) are not switched: turning automation
down must never silence the hand-over to a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prefect.input import RunInput
from prefect.variables import Variable
from pydantic import Field

from flows.approval import ask
from runbook.switch import Decision, Mode, decide, unreadable
from tasks import runtime

__all__ = [
    "BY_SERVICE_VARIABLE",
    "MODE_VARIABLE",
    "TELLS_PEOPLE",
    "Gate",
    "WriteApproval",
    "before_write",
    "current",
]

MODE_VARIABLE = "runbook_automation_mode"
BY_SERVICE_VARIABLE = "runbook_automation_mode_by_service"
TELLS_PEOPLE = ("slack", "pagerduty", "escalate")  # a tuple: its repr (in docs/contracts.md) is stable


class WriteApproval(RunInput):
    """Shown on a paused run when the switch is `approve`: one change the runbook wants to make."""

    approve: bool = Field(False, description="Make the change named in the run's timeline (approve mode)")
    comment: str = Field("", description="Who and why (kept in the incident timeline)")


@dataclass(frozen=True)
class Gate:
    """What the switch decided for one write: `stopped` (why) when it must not happen at all."""

    decision: Decision
    stopped: str | None = None

    @property
    def observe(self) -> bool:
        return self.stopped is None and self.decision.mode is Mode.OBSERVE


def current(service: str) -> Decision:
    """The effective mode for `service`, read now from the Prefect Variables; fail-safe if unreadable."""
    default = runtime.settings().automation.mode
    try:
        overall = Variable.get(MODE_VARIABLE, None)
        by_service = Variable.get(BY_SERVICE_VARIABLE, None)
    except Exception as exc:  # the Prefect API down or refusing: any failure means "cannot tell"
        return unreadable(f"the switch could not be read ({type(exc).__name__}: {str(exc)[:200]})")
    return decide(
        overall,
        by_service,
        service,
        default=default,
        global_name=MODE_VARIABLE,
        by_service_name=BY_SERVICE_VARIABLE,
    )


def before_write(service: str, what: str, note: Callable[[str, str], object]) -> Gate:
    """Decide one write (`what`: "rollback prod/deployment/x: plan"); in approve mode, ask first, then
    read the switch again (the wait may have been long). `note(kind, message)` records each step."""
    decision = current(service)
    if decision.mode is not Mode.APPROVE:
        return Gate(decision)
    label = decision.label()
    timeout_s = runtime.settings().automation.approval_timeout_s
    note("approval", f"{label}: waiting up to {timeout_s}s for a person to approve: {what}")
    try:
        answer = ask(WriteApproval, timeout_s=timeout_s)
    except Exception as exc:  # cannot pause (the Prefect API down): nobody can say yes
        why = f"{label}: could not ask a person ({type(exc).__name__}: {str(exc)[:200]}); not done"
        return Gate(decision, stopped=why)
    if answer is None:
        return Gate(decision, stopped=f"{label}: nobody approved within {timeout_s}s; not done")
    comment = f" ({answer.comment})" if answer.comment else ""
    if not answer.approve:
        return Gate(decision, stopped=f"{label}: declined by a person{comment}; not done")
    note("approval", f"{label}: approved by a person{comment}")
    after = current(service)
    if after.mode is Mode.OBSERVE:
        return Gate(after)  # turned down further while we waited: plan only
    return Gate(decision)
