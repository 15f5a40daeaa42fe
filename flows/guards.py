"""Guards across incidents, at run time (docs/safety.md): one remediation per target at a time, a budget
per target, and the health readings a remediation is judged by.

Usage (inside a flow)::

    with hold_target(rec, target, "rollback: revision 3 → 2") as hold:   # waits (bounded) for another holder
        if hold.waited:
            ...               # someone else remediated meanwhile: re-assess from scratch before any write
        before = reading()    # health before the change; after it: worse → restore once, escalate
        ...

    stop = over_budget(rec, "rollback", "prod/deployment/x", plan)       # Record.act calls it before a claim

- **The lease** (`hold_target`): a row in the incident store keyed by `target_of(workload)` (cluster,
  namespace, Deployment), taken before any write and released after verification. Its expiry
  (`safety.lease_ttl_s`) frees a target whose holder crashed; a thread renews it while held. A runbook
  that finds it held waits at most `safety.lease_wait_s`, then re-assesses from scratch.
- **The budget** (`over_budget`): at most `safety.budget_*` automated changes of one kind per target per
  `safety.budget_window_min`, counted from the store's action records of every incident. Over it, a
  person is asked with the approval form; no yes in time → not done (the runbook escalates).
- **Readings** (`reading`): both health probes, and the error rate where the service's metrics answer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from prefect.input import RunInput
from pydantic import Field

from flows.approval import ask
from flows.flow_run import flow_run_id
from flows.targets import probe_service
from kubeops.models import Workload
from runbook.models import utc_now
from runbook.policy import BUDGETED, target_key
from runbook.store.leases import Lease
from tasks import runtime
from tasks.health import ServiceProbe

if TYPE_CHECKING:
    from flows.record import Record

__all__ = ["BudgetApproval", "Hold", "Reading", "hold_target", "over_budget", "reading", "target_of"]

log = logging.getLogger("flows.guards")


def target_of(target: Workload) -> str:
    """The lease key of `target`: the cluster (as the catalogue names it) from the Kubernetes settings."""
    k8s = runtime.settings().kubernetes
    cluster = "in-cluster" if k8s.in_cluster else (k8s.api_url or k8s.context or "default")
    return target_key(cluster, target.namespace, target.name)


# --- one remediation per target at a time ----------------------------------------------------------------


@dataclass
class Hold:
    """What `hold_target` got: `held` (we hold the lease), `waited` (another remediation held it first)."""

    key: str
    held: bool
    waited: bool = False
    other: Lease | None = None
    waited_s: float = 0.0

    def why(self) -> str:
        """Who held the target, for the timeline and the outcome."""
        if self.other is None:
            return f"{self.key} was free"
        by = f"incident {self.other.incident_id}" if self.other.incident_id else self.other.holder
        what = f" ({self.other.purpose})" if self.other.purpose else ""
        state = "then free" if self.held else "still held"
        return f"{self.key} was held by {by}{what}; waited {self.waited_s:.0f}s, {state}"


@contextmanager
def hold_target(rec: Record, target: Workload, purpose: str) -> Iterator[Hold]:
    """Hold `target`'s lease for the block (renewed while held, released after); wait for another holder.

    A dry run takes no lease (it writes nothing). When the wait ends without the lease, `held` is False:
    the caller must write nothing.
    """
    key = target_of(target)
    if rec.dry_run:
        yield Hold(key, held=False)
        return
    safety = runtime.settings().safety
    store = runtime.store()
    holder = f"{rec.incident.id}:{flow_run_id() or uuid.uuid4().hex}"
    start = time.monotonic()
    other: Lease | None = None
    while True:
        lease = store.take_lease(
            key, holder, safety.lease_ttl_s, incident_id=rec.incident.id, purpose=purpose[:300]
        )
        if lease.won:
            break
        if other is None:
            other = lease
            rec.note(
                "lease",
                f"{key} is being remediated by incident {lease.incident_id} ({lease.purpose}); waiting up "
                f"to {safety.lease_wait_s:.0f}s, then looking again from scratch",
            )
        if time.monotonic() - start >= safety.lease_wait_s:
            hold = Hold(key, held=False, waited=True, other=other, waited_s=time.monotonic() - start)
            rec.note("lease", f"not acting: {hold.why()}")
            yield hold
            return
        time.sleep(safety.lease_poll_s)  # bounded by lease_wait_s
    hold = Hold(key, held=True, waited=other is not None, other=other, waited_s=time.monotonic() - start)
    rec.note("lease", f"holding {key} for {purpose}" + (f" ({hold.why()})" if other else ""))
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(key, holder, safety.lease_ttl_s, stop), name=f"lease {key}", daemon=True
    )
    renewer.start()
    try:
        yield hold
    finally:
        stop.set()
        renewer.join(timeout=10)
        try:
            store.release_lease(key, holder)
        except Exception as exc:  # the store out: the lease expires by itself
            log.warning("could not release the lease on %s (%s); it expires by itself", key, exc)


def _renew(key: str, holder: str, ttl_s: float, stop: threading.Event) -> None:
    """Keep our lease alive until `stop`: renewed every third of its lifetime."""
    while not stop.wait(ttl_s / 3):
        try:
            if not runtime.store().renew_lease(key, holder, ttl_s):
                log.warning("the lease on %s is no longer ours (it expired and was taken)", key)
                return
        except Exception as exc:  # a store blip: try again next time, the lease still has 2/3 left
            log.warning("could not renew the lease on %s: %s", key, exc)


# --- the budget per target ---------------------------------------------------------------------------------


class BudgetApproval(RunInput):
    """Shown on a paused run when a change would exceed its target's budget (the reason is in the timeline)."""

    approve: bool = Field(False, description="Make the change although the target's budget is used up")
    comment: str = Field("", description="Who and why (kept in the incident timeline)")


def over_budget(rec: Record, action: str, target: str, plan: str) -> str | None:
    """None when `action` on `target` is within its budget (or a person approved going over); else why not."""
    limit_name = BUDGETED.get(action)
    if limit_name is None:
        return None
    safety = runtime.settings().safety
    limit: int = getattr(safety, limit_name)
    since = utc_now() - timedelta(minutes=safety.budget_window_min)
    used = runtime.store().count_changes(action, target, since)
    if used < limit:
        return None
    why = (
        f"budget: {used} automated {action}(s) of {target} in the last {safety.budget_window_min:g} min "
        f"(limit {limit}, setting safety.{limit_name})"
    )
    timeout_s = safety.budget_approval_timeout_s
    rec.note(
        "approval", f"{why}: waiting up to {timeout_s}s for a person to approve: {action} {target}: {plan}"
    )
    try:
        answer = ask(BudgetApproval, timeout_s=timeout_s)
    except Exception as exc:  # cannot pause (the Prefect API down): nobody can say yes
        return f"{why}; could not ask a person ({type(exc).__name__}: {str(exc)[:200]}); not done"
    if answer is None:
        return f"{why}; nobody approved within {timeout_s}s; not done"
    comment = f" ({answer.comment})" if answer.comment else ""
    if not answer.approve:
        return f"{why}; declined by a person{comment}; not done"
    rec.note("approval", f"{why}: approved by a person{comment}")
    return None


# --- health readings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """Health at one moment: both probes, and the error rate where the service's metrics answer."""

    probe: ServiceProbe
    error_rate_pct: float | None = None

    @property
    def failing(self) -> int:
        """How many of the two health endpoints fail."""
        return sum(not p.ok for p in (self.probe.health, self.probe.api_health))

    @property
    def healthy(self) -> bool:
        return self.probe.healthy

    def line(self) -> str:
        rate = f"; error rate {self.error_rate_pct:g}%" if self.error_rate_pct is not None else ""
        return f"{self.probe.summary()}{rate}"


def reading(metrics_window_s: float = 60.0) -> Reading:
    """Health now: both probes and (where measured) the error rate over the last `metrics_window_s`."""
    from flows.diagnoses import MetricsUnavailable, read_metrics  # diagnoses imports the record

    probe = probe_service()
    try:
        rate: float | None = read_metrics(metrics_window_s).error_rate_pct
    except MetricsUnavailable:
        rate = None
    return Reading(probe, rate)
