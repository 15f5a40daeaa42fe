"""`kubectl get events --sort-by=.lastTimestamp`, for a namespace or one object in it.

Usage::

    list_events(api, "prod", involved_name="web", limit=20)     # oldest first, the newest 20
"""

from __future__ import annotations

from datetime import datetime

from kubernetes.client import ApiClient, CoreV1Api, CoreV1Event

from kubeops.errors import api_call
from kubeops.models import EventInfo
from kubeops.objects import EPOCH, aware
from tasks.clients import request_timeout_s


def _event_time(event: CoreV1Event) -> datetime | None:
    """kubectl --sort-by=.lastTimestamp, with events.k8s.io events (no lastTimestamp) placed by eventTime."""
    created = event.metadata.creation_timestamp if event.metadata else None
    return aware(event.last_timestamp or event.event_time or event.first_timestamp or created)


def list_events(
    api: ApiClient, namespace: str, involved_name: str | None = None, limit: int = 50
) -> list[EventInfo]:
    """`kubectl get events -n NS [--field-selector involvedObject.name=X] --sort-by=.lastTimestamp`.

    Oldest first, as kubectl prints them; only the newest `limit` are kept.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1 (got {limit})")
    selector = f"involvedObject.name={involved_name}" if involved_name else None
    with api_call(f"listing events in {namespace}"):
        events = (
            CoreV1Api(api)
            .list_namespaced_event(
                namespace, field_selector=selector, _request_timeout=request_timeout_s(api)
            )
            .items
        )
    events.sort(key=lambda e: _event_time(e) or EPOCH)
    return [
        EventInfo(
            type=e.type,
            reason=e.reason,
            message=e.message,
            kind=e.involved_object.kind,
            name=e.involved_object.name,
            count=e.count,
            last_seen=_event_time(e),
            source=(e.source.component if e.source else None) or e.reporting_component,
        )
        for e in events[-limit:]
    ]
