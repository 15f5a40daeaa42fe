"""How a Kubernetes operation fails: the `KubernetesError` family, and the client's exceptions turned into it.

Usage::

    with api_call(f"reading {workload}"):        # ApiException / urllib3 errors -> KubernetesError
        AppsV1Api(api).read_namespaced_deployment(...)

404 is `WorkloadNotFound`, 409 `Conflict`; a status `tasks.retry.is_transient_status` calls transient
(429, 5xx...) or no answer at all is `KubernetesUnavailable` (`transient = True`); any other refusal is
`KubernetesRequestFailed`. Whether a failure is worth another try is decided in one place for every
client: `tasks.retry.is_transient` (it reads `transient`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from kubeops.models import RolloutStatus, Workload
from runbook.errors import RunbookError
from tasks.retry import is_transient_status


class KubernetesError(RunbookError):
    """A Kubernetes operation failed. `transient` says whether trying again may help."""

    transient: bool = False


class WorkloadNotFound(KubernetesError):
    """404: the Deployment (or the object named in the message) does not exist."""


class Conflict(KubernetesError):
    """409: the object changed under us (resourceVersion conflict) or already exists."""


class KubernetesUnavailable(KubernetesError):
    """The API server could not answer: 5xx, 429, refused connection, timeout. Worth retrying."""

    transient = True


class KubernetesRequestFailed(KubernetesError):
    """Any other refusal by the API server (400, 401, 403, 415, 422...): retrying will not help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NoRolloutHistory(KubernetesError):
    """`rollout undo` to the previous revision, but the Deployment has only one."""


class RevisionNotFound(KubernetesError):
    """`rollout undo --to-revision=N` with no ReplicaSet at revision N."""


class DeploymentPaused(KubernetesError):
    """Undo and restart refuse a paused Deployment, as kubectl does."""


class RolloutFailed(KubernetesError):
    """`rollout status` answered with an error (progress deadline exceeded, revision changed)."""

    def __init__(self, status: RolloutStatus) -> None:
        super().__init__(status.message)
        self.status = status


class RolloutTimedOut(KubernetesError):
    """`wait_for_rollout` ran out of time; `last` is the last status seen (None if none was read)."""

    def __init__(self, workload: Workload, deadline_s: float, last: RolloutStatus | None) -> None:
        seen = last.message if last is not None else "no status could be read"
        super().__init__(
            f'deployment "{workload.name}" did not finish rolling out within {deadline_s:g}s: {seen}'
        )
        self.workload = workload
        self.deadline_s = deadline_s
        self.last = last


class NoPodsFound(KubernetesError):
    """`deployment_logs` found no pod for the Deployment's selector."""


class ContainerNotFound(KubernetesError):
    """The container named by the workload is not in the pod template or the pod."""


class MetricsUnavailable(KubernetesError):
    """`/apis` does not list metrics.k8s.io v1beta1 (no metrics-server)."""


def _server_message(exc: ApiException) -> str:
    """The `message` of the Status object the server replied with, else the HTTP reason."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            return body.strip()[:500]
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return str(status["message"])
    return f"{exc.status} {exc.reason}"


@contextmanager
def api_call(what: str) -> Iterator[None]:
    """Turn the client's exceptions into ours; `what` leads the message (`reading deployment/web in prod`)."""
    try:
        yield
    except ApiException as exc:
        message = f"{what}: {_server_message(exc)}"
        if exc.status == 404:
            raise WorkloadNotFound(message) from exc
        if exc.status == 409:
            raise Conflict(message) from exc
        if is_transient_status(exc.status):
            raise KubernetesUnavailable(message) from exc
        raise KubernetesRequestFailed(message, status=exc.status) from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise KubernetesUnavailable(f"{what}: {exc}") from exc
