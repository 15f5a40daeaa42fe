"""The normalised alert every parser produces: `runbook.models.Alert` (docs/contracts.md), re-exported.

Usage::

    from intake.alert import Alert, AlertStatus, Signals

    Alert(source="alertmanager", fingerprint="alertmanager:1a30ba71cca2921f", status=AlertStatus.FIRING,
          name="ProbeFailure", service="emotionscare", signals=Signals(service_reachable=False))

The parsers import from here, so the intake has one place that names the domain model it fills.
"""

from __future__ import annotations

from runbook.models import Alert, AlertSource, AlertStatus, Signals

__all__ = ["Alert", "AlertSource", "AlertStatus", "Signals"]
