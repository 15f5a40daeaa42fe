"""Crashed runs detected: Prefect's zombie automation, created once and updated in place.

Usage::

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.automations apply   # create or update
    python -m flows.automations apply --dry-run      # print what it would do, change nothing
    python -m flows.automations show                 # the automation on the server (or "none")

    settings = load_crash_detection_settings()       # RUNBOOK_CRASH_DETECTION_* (one-line errors)
    result = apply(settings)                         # Applied(action="created"|"updated"|"unchanged", ...)

Why: a flow run whose process is killed (`kill -9`, an evicted pod, a lost machine) stays Running
forever in Prefect, and nothing that waits for it ever learns that it ended. Prefect's own answer
(docs "detect zombie flows"): every flow run emits a `prefect.flow-run.heartbeat` event every
`PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds from a thread of the flow engine (in a `flow.serve`
child, in a worker's Job pod and in `flows.warm`'s threads alike: the engine does it, not the
runner), and a proactive automation sets a run Crashed when, after a heartbeat, neither another
heartbeat nor a final state arrives within the window. Ours also arms the window when the run turns
Running (an event the server emits itself, not the run's process): a runner killed in the first
moments of a run, before its first heartbeat left the process, otherwise leaves a run that no
heartbeat ever armed, Running for ever (the scale bench's kill of the warm runner that has just
begun a run can land there on a slow machine). The server's triggers service evaluates it
(every `PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY`, 5 s), so a dead run is Crashed `window_s` to
`window_s + 5` seconds after its last heartbeat: `window_s - heartbeat_s` to `window_s + 5` seconds
after its process died.

Idempotent: the automation is found by its name; none → created, one → updated in place (same id),
several (two applies raced) → the first by id updated and the others deleted. A paused run keeps its
process and its heartbeats (`pause_flow_run` waits in the flow), so a person's slow answer is not a
crash. Prefect refuses heartbeat frequencies under 30 s, so the window is at least 45 s.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings

from runbook.errors import SettingsError
from runbook.settings.fields import env_config

__all__ = [
    "AUTOMATION_NAME",
    "ENV_PREFIX",
    "Applied",
    "CrashDetectionSettings",
    "apply",
    "desired",
    "heartbeat_env",
    "load_crash_detection_settings",
    "main",
    "show",
]

AUTOMATION_NAME = "runbooks: crashed runs (no heartbeat)"
ENV_PREFIX = "RUNBOOK_CRASH_DETECTION_"
HEARTBEAT = "prefect.flow-run.heartbeat"
RUNNING = "prefect.flow-run.Running"
"""Emitted by the server when it sets a run Running: it arms the window even when the run's process
died before its first heartbeat left it (the events worker sends in batches from a thread)."""
FINAL_EVENTS = tuple(f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed"))
PREFECT_MINIMUM_HEARTBEAT_S = 30  # prefect.flow_engine.MINIMUM_HEARTBEAT_INTERVAL; lower is refused
MARGIN_S = 15  # a heartbeat may arrive this late (event batching, a busy server) without a false crash


class CrashDetectionSettings(BaseSettings):
    """How often runs say they are alive, and how long a silence means the run is dead."""

    model_config = env_config(ENV_PREFIX)

    heartbeat_s: int = Field(
        30,
        ge=PREFECT_MINIMUM_HEARTBEAT_S,
        le=3600,
        description="seconds between a flow run's heartbeats (PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the runners)",
    )
    window_s: int = Field(
        90,
        ge=PREFECT_MINIMUM_HEARTBEAT_S + MARGIN_S,
        le=86400,
        description="a run with no heartbeat (nor final state) for this long is set Crashed",
    )

    @model_validator(mode="after")
    def _window_covers_a_heartbeat(self) -> CrashDetectionSettings:
        if self.window_s < self.heartbeat_s + MARGIN_S:
            raise ValueError(
                f"window_s must be at least heartbeat_s + {MARGIN_S} = {self.heartbeat_s + MARGIN_S} "
                "(a shorter window crashes live runs)"
            )
        return self


def load_crash_detection_settings(
    *, env_file: str | None = ".env", **overrides: Any
) -> CrashDetectionSettings:
    """The settings; `SettingsError` with one line naming the variable when invalid."""
    try:
        return CrashDetectionSettings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "_".join(str(part) for part in first.get("loc", ()))
        name = ENV_PREFIX + (loc.upper() or "WINDOW_S")
        raise SettingsError(f"{name}: {first.get('msg', 'invalid')} (got {first.get('input')!r})") from exc


def heartbeat_env(settings: CrashDetectionSettings) -> dict[str, str]:
    """What a runner's environment needs for its flow runs to emit heartbeats at `heartbeat_s`."""
    return {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(settings.heartbeat_s)}


def desired(settings: CrashDetectionSettings) -> Any:
    """The automation as Prefect's docs give it (detect zombie flows), with our name and window."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=AUTOMATION_NAME,
        description=(
            f"Sets a flow run Crashed when it sent no heartbeat for {settings.window_s} s (heartbeats every "
            f"{settings.heartbeat_s} s): its process died. Managed by `python -m flows.automations apply`."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={HEARTBEAT, RUNNING},
            expect={HEARTBEAT, *FINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=settings.window_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"Flow run marked Crashed: no heartbeat for {settings.window_s} s (its process died).",
            )
        ],
    )


@dataclass(frozen=True)
class Applied:
    """What `apply` did: `created`, `updated`, `unchanged` (or, on a dry run, `would create` ...)."""

    action: str
    automation_id: Any
    removed: tuple[Any, ...] = ()

    def line(self) -> str:
        extra = f"; removed {len(self.removed)} duplicate(s)" if self.removed else ""
        return f"automation {AUTOMATION_NAME!r} {self.action} ({self.automation_id}){extra}"


_SET_FIELDS = ("after", "expect", "for_each")


def _comparable(automation: Any) -> dict[str, Any]:
    data: dict[str, Any] = automation.model_dump(
        mode="json", include={"name", "description", "enabled", "trigger", "actions"}
    )
    data["trigger"].pop("id", None)
    # `after`, `expect` and `for_each` are sets: their JSON order is the set's iteration order, which
    # depends on the process's hash seed (the server's and ours differ), so compare them sorted.
    for key in _SET_FIELDS:
        if isinstance(data["trigger"].get(key), list):
            data["trigger"][key] = sorted(data["trigger"][key])
    return data


def _existing(client: Any) -> list[Any]:
    found = [a for a in client.read_automations_by_name(AUTOMATION_NAME) if a.name == AUTOMATION_NAME]
    return sorted(found, key=lambda a: str(a.id))  # the same one kept whoever applies


def apply(settings: CrashDetectionSettings, *, dry_run: bool = False) -> Applied:
    """Create the automation, or update the one of that name in place; never two of them."""
    from prefect.automations import AutomationCore
    from prefect.client.orchestration import get_client

    want = desired(settings)
    prefix = "would be " if dry_run else ""
    with get_client(sync_client=True) as client:
        found = _existing(client)
        if not found:
            if dry_run:
                return Applied("would be created", None)
            new_id = client.create_automation(AutomationCore(**want.model_dump(exclude={"id"})))
            return Applied("created", new_id)
        keep, duplicates = found[0], tuple(a.id for a in found[1:])
        if _comparable(keep) == _comparable(want):
            action = "unchanged"
        else:
            action = prefix + "updated"
            if not dry_run:
                client.update_automation(
                    keep.id, AutomationCore(**want.model_dump(exclude={"id", "owner_resource"}))
                )
        if duplicates and not dry_run:
            for duplicate in duplicates:
                client.delete_automation(duplicate)
        return Applied(action, keep.id, duplicates)


def show() -> list[dict[str, Any]]:
    """The automations of that name on the server (JSON-ready; empty when none)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [a.model_dump(mode="json") for a in _existing(client)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.automations", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    do = sub.add_parser("apply", help="create the crashed-runs automation, or update it in place")
    do.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    sub.add_parser("show", help="print the automation as the server has it (JSON)")
    args = parser.parse_args(argv)
    command: Literal["apply", "show"] = args.command
    try:
        if command == "show":
            print(json.dumps(show(), indent=2))
            return 0
        settings = load_crash_detection_settings()
        print(apply(settings, dry_run=args.dry_run).line(), flush=True)
    except SettingsError as exc:
        print(f"flows.automations: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the API unreachable or refusing: one line, exit 1 (a Job retries)
        print(f"flows.automations: {command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
