"""What the warm runner may run: the deployments named to it, none of them a drill or a flow with hooks.

Usage::

    target = WarmTarget.of(respond, "respond")            # ok
    WarmTarget.of(drill_high_error_rate, "drill")         # NotWarmSafe: a drill, and it has hooks

The bounds, and why (docs/latency.md "What the warm runner may run"):

- **Named deployments only.** There is no "everything" default: a deployment runs here because
  someone chose it for the fast path (in practice `respond`), never because it is in the catalogue.
- **No `on_crashed` / `on_cancellation` hooks.** Prefect's runner calls them from the parent
  process: on_cancellation after it kills a cancelled run's child, on_crashed when the child exits
  badly. Here there is no child: a run in a thread cannot be cancelled (it runs to its end, so its
  cancellation hook would never fire), and when the runner itself dies (`kill -9`, OOM) the hooks
  die with it. Running them ourselves would promise what this process cannot keep, so a flow that
  relies on them is refused and belongs to `flows.serve` or a worker, where they do run.
- **No drill** (a catalogue entry tagged `drill`, or a flow named `drill-*`): a drill injects a
  fault and clears it from those hooks when it is cancelled or crashes; run here, a cancelled drill
  would leave its fault injected. Refused even if a future drill had no hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["DRILL_TAG", "HOOKS", "NotWarmSafe", "WarmTarget", "refusal"]

DRILL_TAG = "drill"
HOOKS = ("on_crashed", "on_cancellation")
"""Flow hooks Prefect's runner calls from outside the run's process: the warm runner cannot."""


class NotWarmSafe(ValueError):
    """The flow must not run in the warm runner; the message says why in one line."""


def refusal(flow: Any, tags: Iterable[str] = ()) -> str | None:
    """Why `flow` (deployed with `tags`) must not run warm, or None when it may."""
    name = getattr(flow, "name", repr(flow))
    if DRILL_TAG in set(tags) or str(name).startswith("drill-"):
        return f"flow {name!r} is a drill: drills run under flows.serve or a worker, never warm"
    hooked = [hook for hook in HOOKS if getattr(flow, f"{hook}_hooks", None)]
    if hooked:
        return (
            f"flow {name!r} has {' and '.join(hooked)} hooks, which only run when a run has its own "
            "process: run it with flows.serve or a worker"
        )
    if getattr(flow, "isgenerator", False):
        return f"flow {name!r}: generator flows are not supported by the warm runner"
    return None


@dataclass(frozen=True)
class WarmTarget:
    """One deployment this runner executes: the flow object and the deployment it is registered as."""

    flow: Any
    deployment: Any

    @classmethod
    def of(cls, flow: Any, name: str, **deployment: Any) -> WarmTarget:
        """`flow.to_deployment(name=name, **deployment)` (call outside an event loop).

        Raises NotWarmSafe for a flow `refusal` refuses.
        """
        reason = refusal(flow, deployment.get("tags") or ())
        if reason is not None:
            raise NotWarmSafe(reason)
        return cls(flow=flow, deployment=flow.to_deployment(name=name, **deployment))

    @property
    def name(self) -> str:
        return f"{self.flow.name}/{self.deployment.name}"
