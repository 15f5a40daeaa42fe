"""The post-mortem of a real sandbox incident: its timeline in order with times, actions with outcomes,
the five prevention items, the document as a file and an artifact, the meeting reminder in the thread."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.drills import drill_high_error_rate
from flows.postmortem import postmortem
from runbook.postmortem import PREVENTION
from runbook.store import open_store
from tasks.slack import send_message

ROW = re.compile(r"^\| (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| ([^|]+) \| (.+) \|$")


def test_postmortem_of_a_sandbox_incident(prefect_api: str, world_target: Any, tmp_path: Path) -> None:
    world = world_target
    drill = drill_high_error_rate(
        poll_interval_s=0.05,
        detect_deadline_s=20,
        recover_deadline_s=60,
        post_to_slack=False,
        runbook_parameters={"settle_s": 0, "poll_interval_s": 0.05},
    )
    assert drill.incident_id is not None and drill.runbook_outcome == "rolled_back"
    # the incident thread respond would have opened in #incidents
    parent = send_message("#incidents", "🔴 [P1 - CRITICAL] emotionscare answers 500 (drill)")
    with open_store(world.store_url) as store:
        store.update_incident(drill.incident_id, slack_thread_ts=parent.ts)
        stored = store.timeline(drill.incident_id)

    path = Path(postmortem(incident_id=drill.incident_id, output_dir=str(tmp_path)))
    text = path.read_text(encoding="utf-8")
    assert path.parent == tmp_path and path.name.endswith(f"{drill.incident_id[:12]}.md")

    # the timeline: every store entry, with its time, in order, among the alerts and flow runs
    timeline = text[text.index("## Timeline") : text.index("## 1. What happened?")]
    rows = [m.groups() for line in timeline.splitlines() if (m := ROW.match(line))]
    times = [datetime.fromisoformat(t) for t, _source, _what in rows]
    assert times == sorted(times)
    listed = [(t, what) for t, _source, what in rows]
    for entry in stored:
        assert (
            f"{entry.at:%Y-%m-%d %H:%M:%S}",
            f"{entry.kind}: {entry.message}".replace("|", "\\|"),
        ) in listed
    sources = {source.strip() for _t, source, _w in rows}
    assert {"alert:drill", "runbook:service-down", "drill", "prefect"} <= sources
    assert any(re.search(r"flow run \S+ \(service-down\) ended Completed", what) for _t, _s, what in rows)
    assert any(what.startswith("firing: ServiceDown") for _t, _s, what in rows)

    # the actions taken, with their outcomes
    actions = text[text.index("## 3. How did we respond?") : text.index("## 4. What went well?")]
    assert re.search(
        r"\| rollback \| prod/deployment/emotionscare \| succeeded \| \d\d:\d\d:\d\d \|", actions
    )
    assert "runbook:service-down ended: rolled_back" in actions

    # the five prevention items as action items with an owner field; people's questions as prompts
    for item, why in PREVENTION:
        assert f"| [ ] | {item} ({why}) |" in text
    assert text.count("_assign_") == 5 and "> _Prompt: the root cause" in text
    assert "Step 3: deployed" in text  # the runbook's own decision, offered as evidence for question 2

    # the artifact, and the reminder in the incident thread, posted once even if the flow runs again
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"postmortem-{drill.incident_id[:12]}"])
            )
        )
    assert artifact.data == text
    postmortem(incident_id=drill.incident_id, output_dir=str(tmp_path))
    replies = [m["text"] for m in world.slack.thread("incidents", parent.ts)][1:]
    assert len(replies) == 1 and "Post-mortem for" in replies[0] and "within 24 hours" in replies[0]
    with open_store(world.store_url) as store:
        kinds = [e.kind for e in store.timeline(drill.incident_id)]
    assert kinds.count("postmortem") == 2


def test_postmortem_of_an_unknown_incident_names_it(prefect_api: str, world_target: Any) -> None:
    state = postmortem(incident_id="nope", return_state=True)
    assert state.is_failed() and "incident_id: no incident 'nope'" in str(state.message)
