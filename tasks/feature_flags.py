"""Feature flags, the guide's way: an environment variable on the Deployment, behind a small interface.

Usage::

    flags = flag_backend()                                  # from settings; DeploymentEnvFlags by default
    change = set_feature_flag(target, "FEATURE_MUSIC_GENERATION_ENABLED", enabled=False)
    change.changed, change.previous                         # False/"false" when it was already off

The guide: `kubectl set env deployment/emotionscare FEATURE_MUSIC_GENERATION_ENABLED=false`. A flag
service (LaunchDarkly, Unleash, a config table) replaces it by implementing `FlagBackend`; the flows
only call the two tasks below. Setting a flag to the value it has is a no-op (idempotent write).
"""

from __future__ import annotations

from typing import Protocol

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

import kubeops
from kubeops.models import Workload
from tasks import runtime
from tasks.clients import cluster_api

__all__ = ["DeploymentEnvFlags", "FlagBackend", "FlagChange", "set_feature_flag"]


class FlagChange(BaseModel):
    flag: str
    enabled: bool
    previous: str | None
    changed: bool


class FlagBackend(Protocol):
    def get(self, flag: str) -> str | None: ...
    def set(self, flag: str, enabled: bool) -> FlagChange: ...


class DeploymentEnvFlags:
    """Flags as env vars on one Deployment's container (a change rolls the pods, as in the guide)."""

    def __init__(self, target: Workload) -> None:
        self.target = target

    def get(self, flag: str) -> str | None:
        api = cluster_api(runtime.settings())
        return kubeops.get_deployment_env(api, self.target).get(flag)

    def set(self, flag: str, enabled: bool) -> FlagChange:
        api = cluster_api(runtime.settings())
        previous = kubeops.get_deployment_env(api, self.target).get(flag)
        change = kubeops.set_env(api, self.target, {flag: "true" if enabled else "false"})
        return FlagChange(flag=flag, enabled=enabled, previous=previous, changed=change.changed)


def flag_backend(target: Workload) -> FlagBackend:
    return DeploymentEnvFlags(target)


@task(name="set_feature_flag", cache_policy=NO_CACHE)
def set_feature_flag(target: Workload, flag: str, enabled: bool) -> FlagChange:
    """Turn a feature on or off (`FEATURE_X_ENABLED=true|false`); a no-op if it already is."""
    return flag_backend(target).set(flag, enabled)
