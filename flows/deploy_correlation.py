"""Recent deploys: "was code deployed recently?", from the rollout history, and the known-good revision.

A revision's deploy time is when it became live (its ReplicaSet last scaled up from 0), and the
known-good revision is one the API can still show had Ready pods (`known_good`, docs/safety.md). Kubernetes
or git failing is noted in the incident's timeline, never a failed flow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from flows.record import Record
from kubeops import KubernetesError
from kubeops.models import Revision, RolloutFacts, Workload
from runbook.models import Evidence, utc_now
from runbook.policy import deployed_recently
from tasks import runtime
from tasks.deploys import GitLogFailed, list_recent_commits
from tasks.kubernetes import get_rollout_facts

__all__ = ["DeployCorrelation", "known_good", "recent_deploys"]


class DeployCorrelation(BaseModel):
    """ "Was code deployed recently?": the live revision, the known-good one to go back to, and whether
    the live one became live within the window."""

    current: Revision | None = None
    previous: Revision | None = None  # the known-good revision: the rollback's target (see known_good)
    why_good: str = ""
    recent: bool = False
    window_min: int = 15

    @property
    def can_roll_back(self) -> bool:
        """Deployed within the window, with a known-good earlier revision to go back to."""
        return self.recent and self.current is not None and self.previous is not None

    def age(self, now: datetime) -> str:
        """ "3 min ago", or "unknown" without a live revision's time."""
        since = self.current.live_since if self.current is not None else None
        if since is None:
            return "unknown"
        return f"{(now - since).total_seconds() / 60:.0f} min ago"

    def line(self, now: datetime) -> str:
        since = self.current.live_since if self.current is not None else None
        if self.current is None or since is None:
            return "no rollout history"
        age = (now - since).total_seconds() / 60
        verdict = "within" if self.recent else "not within"
        good = (
            f"; known good: revision {self.previous.revision} ({self.why_good})"
            if self.previous is not None
            else f"; {self.why_good}"
            if self.why_good
            else ""
        )
        return (
            f"live revision {self.current.revision} ({', '.join(self.current.images)}) deployed "
            f"{_age(age)} ago: {verdict} the last {self.window_min} min{good}"
        )


def _age(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


def known_good(facts: RolloutFacts) -> tuple[Revision | None, str]:
    """The newest revision older than the live one whose pods were Ready, and why it counts as such.

    The API keeps no readiness record of a ReplicaSet scaled to zero, so "were Ready" is what it can
    still show (docs/safety.md, "Rollback to a known-good revision"):
    - its ReplicaSet has Ready pods now (the old release still serving beside a rollout that is stuck); or
    - it is the revision the live one replaced (the next-highest number) and the Deployment has been
      `Available` since before the live one went live: the available pods then were its pods.
    None (with the reason) when no revision qualifies: then nothing is rolled back blindly.
    """
    live = facts.live
    if live is None:
        return None, "no live revision"
    older = sorted(
        (r for r in facts.revisions if r.revision < live.revision and r.replica_set != live.replica_set),
        key=lambda r: -r.revision,
    )
    went_live = live.live_since
    for rank, candidate in enumerate(older):
        if candidate.ready_replicas > 0:
            return candidate, f"{candidate.ready_replicas} Ready pods of {candidate.replica_set} now"
        if (
            rank == 0
            and facts.available_since is not None
            and went_live is not None
            and facts.available_since <= went_live
        ):
            return candidate, (
                f"the Deployment was Available (since {facts.available_since:%Y-%m-%d %H:%M} UTC) on its "
                f"pods when revision {live.revision} replaced it"
            )
    return None, "no earlier revision is known to have had Ready pods"


def recent_deploys(rec: Record, target: Workload, window_min: int = 15) -> DeployCorrelation:
    """The rollout history (and the repository's last commits where one is configured) as evidence.

    A revision's deploy time is when it became live (its ReplicaSet last scaled up from 0, as the
    Deployment's events show it), not when its ReplicaSet was created: a re-deployed release reuses its
    old ReplicaSet. Kubernetes failing is noted and answered with "no rollout history" (nothing to roll
    back), so an API-server outage turns into evidence instead of a crashed runbook.
    """
    try:
        facts = get_rollout_facts(target)
    except KubernetesError as exc:
        rec.note("assess", f"rollout history unavailable: {exc}")
        return DeployCorrelation(window_min=window_min)
    history = facts.revisions
    current = facts.live
    good, why = known_good(facts)
    now = utc_now()
    since = current.live_since if current is not None else None
    recent = since is not None and deployed_recently(since, now, timedelta(minutes=window_min))
    found = DeployCorrelation(
        current=current, previous=good, why_good=why, recent=recent, window_min=window_min
    )
    rec.add_evidence(
        Evidence(
            kind="deploys",
            title="rollout history",
            content="\n".join(
                f"{r.revision:>4}  {r.live_since:%Y-%m-%d %H:%M:%S}  {', '.join(r.images)}"
                f"  ready {r.ready_replicas}{'  (live)' if r.current else ''}  {r.change_cause or ''}".rstrip()
                for r in history
                if r.live_since
            ),
            data={"revisions": [r.model_dump(mode="json") for r in history]},
        )
    )
    repo = runtime.settings().deploys.repo_path
    if repo is not None:
        try:
            commits = list_recent_commits(repo, count=5)
            rec.add_evidence(
                Evidence(
                    kind="deploys",
                    title="git log --oneline -5",
                    content="\n".join(f"{c.sha} {c.subject}" for c in commits),
                )
            )
        except GitLogFailed as exc:
            rec.note("deploys", f"recent commits unavailable: {exc}")
    rec.note("assess", f"deployment correlation: {found.line(now)}")
    return found
