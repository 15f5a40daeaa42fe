"""The bounds the flows' parameters share, written once (Prefect shows and enforces them in each
deployment's form; a value outside is refused before the flow starts).

Usage::

    def my_flow(ready_deadline_s: Seconds = 300.0, poll_interval_s: PollSeconds = 2.0) -> ...
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["PollSeconds", "RollbackWindowMin", "Seconds"]

Seconds = Annotated[float, Field(gt=0, le=3600)]
"""A deadline or a window: more than nothing, at most an hour."""
PollSeconds = Annotated[float, Field(gt=0, le=60)]
"""How often to look: more than nothing, at most a minute."""
RollbackWindowMin = Annotated[int, Field(ge=1, le=1440)]
"""A deploy this recent (minutes) is rolled back (the guide: 15), at most a day."""
