"""The bounds the flows' parameters share, written once (Prefect shows and enforces them in each
deployment's form; a value outside is refused before the flow starts).

Usage::

    def my_flow(ready_deadline_s: Seconds = 300.0, poll_interval_s: PollSeconds = 2.0) -> ...
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["IncidentId", "PollSeconds", "RollbackWindowMin", "Seconds", "ServiceName", "Summary"]

Seconds = Annotated[float, Field(gt=0, le=3600)]
"""A deadline or a window: more than nothing, at most an hour."""
PollSeconds = Annotated[float, Field(gt=0, le=60)]
"""How often to look: more than nothing, at most a minute."""
RollbackWindowMin = Annotated[int, Field(ge=1, le=1440)]
"""A deploy this recent (minutes) is rolled back (the guide: 15), at most a day."""

ServiceName = Annotated[str, Field(min_length=1, max_length=200)]
"""The service in trouble; a deployment's form offers the catalogue's services (flows/form.py)."""
Summary = Annotated[str, Field(max_length=500)]
"""What is wrong, in a sentence (shown in Slack)."""
IncidentId = Annotated[str, Field(max_length=200)]
"""An existing incident's id; empty: open one (a plain text field in the form, not a union)."""
