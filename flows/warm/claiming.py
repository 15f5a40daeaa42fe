"""Steps 2 and 3 of the warm runner: find the due runs of its deployments, and claim one.

Usage::

    runs = await due_runs(client, deployment_ids, prefetch_s=10, mark_ready=False)
    state = await claim(client, flow_run)      # Pending, or None when another runner has it

Both are the Runner's own queries (`prefect.runner`, 3.9.1), as functions so the runner's loop
(flows/warm/runner.py) reads as its steps.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

__all__ = ["claim", "due_runs"]

log = logging.getLogger("flows.warm")


async def claim(client: Any, flow_run: Any) -> Any | None:
    """Propose `Pending` for a scheduled run; the accepted state, or None if another runner has it.

    The server accepts Scheduled → Pending once and aborts the rest, as `ScheduledRunPoller._submit_run`
    relies on: a run is executed once however many warm runners or `flows.serve` processes watch it.
    """
    from prefect.exceptions import Abort, ObjectNotFound
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state

    try:
        state = await propose_state(client, Pending(), flow_run_id=flow_run.id)
    except Abort as exc:
        log.debug("flow run %s is not ours: %s", flow_run.id, exc)
        return None
    except ObjectNotFound:
        log.debug("flow run %s was deleted before it was claimed", flow_run.id)
        return None
    return state if state.is_pending() else None


async def due_runs(
    client: Any, deployment_ids: Sequence[UUID], *, prefetch_s: float, mark_ready: bool
) -> list[Any]:
    """Scheduled runs of `deployment_ids` due before now + `prefetch_s`, earliest first.

    `mark_ready`: the Runner's own `POST /deployments/get_scheduled_flow_runs`, which also marks the
    deployments ready in the UI (a write); otherwise a read-only `POST /flow_runs/filter` with the same
    filter, so frequent polls do not take SQLite's write lock from run creations (which then answer 503).
    """
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterNextScheduledStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    before = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=prefetch_s)
    ids = list(deployment_ids)
    if mark_ready:
        runs: list[Any] = await client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=ids, scheduled_before=before
        )
        return runs
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=ids),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=before),
        ),
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
        limit=50,
    )
    return runs
