"""What every parser shares: the parse context, fingerprints, timestamps, the service of an alert.

Usage::

    ctx = ParseContext(default_service="emotionscare")
    stable_fingerprint("grafana", "emotionscare", "High CPU usage", {"zone": "eu-1"})   # "grafana:3f0c…"
    parse_time("0001-01-01T00:00:00Z")                                                # None (not ended)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

from intake.services import canonical_labels, name_service
from runbook.catalogue import Catalogue

__all__ = [
    "ZERO_TIME",
    "ParseContext",
    "SourceTime",
    "key_labels",
    "parse_time",
    "pick_service",
    "stable_fingerprint",
]

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero time: Alertmanager and Grafana send `0001-01-01T00:00:00Z` for "not ended yet"."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ParseContext:
    """Settings the parsers need; built from `IntakeConfig` (intake/config.py)."""

    default_service: str = "emotionscare"
    service_labels: tuple[str, ...] = ("service", "app", "app_kubernetes_io_name")
    sentry_projects: Mapping[str, str] = field(default_factory=dict)
    max_alerts: int = 1000
    catalogue: Catalogue | None = None
    """The service catalogue: alerts carry its canonical names (intake/services.py). None: the labels'
    names as given, `default_service` for none (tests that build the context by hand)."""
    clock: Callable[[], datetime] = _utc_now
    """Now, for how long a firing alert has been firing (tests pin it)."""

    def firing_for_s(self, status: str, starts_at: datetime | None) -> float | None:
        """Seconds since `starts_at` of a firing alert; None when resolved or unknown."""
        if status != "firing" or starts_at is None:
            return None
        return max(0.0, (self.clock() - starts_at).total_seconds())


def stable_fingerprint(source: str, service: str, name: str, labels: Mapping[str, str]) -> str:
    """`"<source>:<16 hex>"`: SHA-256 of service, alert name and the sorted labels. Same inputs, same key."""
    material = json.dumps([service, name, sorted(labels.items())], separators=(",", ":"), ensure_ascii=False)
    return f"{source}:{hashlib.sha256(material.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value.year <= 1:
        return ZERO_TIME
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp out of range") from exc


SourceTime = Annotated[datetime, AfterValidator(_to_utc)]
"""A timestamp as sources send it (RFC 3339), validated to aware UTC; Go's zero time kept as `ZERO_TIME`."""


def parse_time(value: datetime | None) -> datetime | None:
    """None for a missing value or Go's zero time (`0001-01-01T00:00:00Z`), else the value."""
    if value is None or value.year <= 1:
        return None
    return value


def pick_service(
    labels: Mapping[str, str],
    ctx: ParseContext,
    *,
    sentry_project: str | None = None,
    given: str | None = None,
) -> str:
    """The alert's service: through the catalogue when there is one (`intake.services.name_service`);
    else `given`, the first non-empty label of `ctx.service_labels`, the Sentry project, the default."""
    if ctx.catalogue is not None:
        return name_service(ctx.catalogue, labels, sentry_project=sentry_project, given=given)
    if given:
        return given
    for key in ctx.service_labels:
        value = labels.get(key, "").strip()
        if value:
            return value
    return sentry_project or ctx.default_service


def key_labels(labels: Mapping[str, str], ctx: ParseContext, service: str) -> Mapping[str, str]:
    """The labels a fingerprint hashes: with a catalogue, those naming `service` by an alias rewritten."""
    return labels if ctx.catalogue is None else canonical_labels(ctx.catalogue, labels, service)
