"""The drill's documents as markdown: the drill report, its Slack summary, and the drill history
as table-artifact rows with the MTTR trend per scenario.

Guide: Running Incident Drill ("Document drill results and improve procedures"). Pure: no Prefect, no
I/O; flows/drills.py gathers the facts and publishes these. `runbook.postmortem` re-exports every name
here (its old home). The formats are held by golden tests (tests/flows/drills/golden/).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import AwareDatetime, BaseModel

from runbook.drills import DrillResult, DrillStatus, Scenario, Step, human_s, targets_for
from runbook.report_format import cell, hms, stamp

__all__ = ["HistoryRow", "drill_slack_text", "history_rows", "history_summary", "render_drill_report"]


def _mark(passed: bool) -> str:
    return "✅ pass" if passed else "❌ fail"


def render_drill_report(result: DrillResult, scenario: Scenario) -> str:
    """The drill report: what was simulated, the figures against the guide's targets, pass or fail per
    step, what to improve, the timeline."""
    targets = targets_for(scenario.severity)
    verdict = {
        DrillStatus.PASSED: "✅ PASSED",
        DrillStatus.FAILED: "❌ FAILED",
        DrillStatus.REFUSED: "⛔ REFUSED",
    }
    out = [
        f"# Drill: {scenario.label}: {verdict[result.status]}",
        "",
        f"**Simulate** {scenario.simulate} (sandbox fault `{scenario.fault_text}`) · "
        f"**Expected response** {scenario.response} (`{scenario.runbook}`, {scenario.severity})",
        "",
        f"**Drill** `{result.drill_id}` · **Target** {result.target} ({result.environment}) · "
        f"**Path** {result.via} · **Started** {stamp(result.started_at)} · "
        f"**Finished** {stamp(result.finished_at)}",
    ]
    if result.allow_production:
        out += ["", "**Production drill allowed explicitly** (`allow_production=True`)."]
    if result.reason:
        out += ["", f"**Why**: {result.reason}"]
    if result.status == DrillStatus.REFUSED:
        out += ["", "Nothing was injected and the target was not contacted."]
        return "\n".join(out) + "\n"
    mttr = result.mttr_s
    out += [
        "",
        f"**Incident** `{result.incident_id or '-'}` · **Runbook** {result.runbook or '-'}: "
        f"{result.runbook_outcome or '-'}"
        + (f" (error: {result.runbook_error})" if result.runbook_error else ""),
        "",
        f"**Fault cleared**: {'yes' if result.fault_cleared else 'NO'}"
        + (f" at {hms(result.times.cleared_at)}" if result.times.cleared_at else "")
        + (f" ({result.clear_error})" if result.clear_error else "")
        + f" · **MTTR** (fault → verified recovery): {human_s(mttr)}",
        "",
        "## Figures against the guide's targets",
        "",
        f"Targets: {targets.source}.",
        "",
        "| step | at (UTC) | measured | from | target | result | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in result.steps:
        target = f"< {human_s(s.target_s)}" if s.target_s is not None else "none in the guide"
        out.append(
            f"| {s.step.value} | {hms(s.at)} | {human_s(s.elapsed_s)} | {s.origin} | {target} | "
            f"{_mark(s.passed)} | {cell(s.note)} |"
        )
    out += ["", "## What to improve", ""]
    out += [f"- {line}" for line in result.improvements]
    out += ["", "## Timeline", "", "| time (UTC) | who | what |", "|---|---|---|"]
    out += [
        f"| {stamp(e.at)} | {cell(e.actor)} | {cell(e.kind)}: {cell(e.message)} |" for e in result.timeline
    ]
    return "\n".join(out).rstrip("\n") + "\n"


def drill_slack_text(result: DrillResult, scenario: Scenario, link: str | None = None) -> str:
    """The drill report's Slack summary (the full report is the artifact `link` points to)."""
    icon = {
        DrillStatus.PASSED: ":white_check_mark:",
        DrillStatus.FAILED: ":x:",
        DrillStatus.REFUSED: ":no_entry:",
    }
    head = f"{icon[result.status]} *Drill {scenario.label}*: {result.status.value} on {result.target}"
    if result.status == DrillStatus.REFUSED:
        return f"{head}\n{result.reason}"
    parts = [f"{s.step.value} {human_s(s.elapsed_s)}" + ("" if s.passed else " (fail)") for s in result.steps]
    lines = [head, " · ".join(parts) + f" · MTTR {human_s(result.mttr_s)}"]
    if result.improvements:
        lines.append("Improve: " + result.improvements[0])
    if not result.fault_cleared:
        lines.append(":warning: the fault could not be cleared: clean the target by hand")
    if link:
        lines.append(f"Report: {link}")
    return "\n".join(lines)


class HistoryRow(BaseModel):
    """One drill in the history (runbook.drill_history stores these)."""

    drill_id: str
    scenario: str
    target: str
    environment: str
    via: str
    status: str
    allow_production: bool = False
    started_at: AwareDatetime
    detect_s: float | None = None
    acknowledge_s: float | None = None
    mitigate_s: float | None = None
    recover_s: float | None = None
    mttr_s: float | None = None
    incident_id: str | None = None
    flow_run_id: str | None = None

    @classmethod
    def of(cls, result: DrillResult, flow_run_id: str | None = None) -> HistoryRow:
        def elapsed(step: Step) -> float | None:
            s = result.step(step)
            return s.elapsed_s if s else None

        return cls(
            drill_id=result.drill_id,
            scenario=result.scenario,
            target=result.target,
            environment=result.environment,
            via=result.via,
            status=result.status.value,
            allow_production=result.allow_production,
            started_at=result.started_at,
            detect_s=elapsed(Step.DETECT),
            acknowledge_s=elapsed(Step.ACKNOWLEDGE),
            mitigate_s=elapsed(Step.MITIGATE),
            recover_s=elapsed(Step.RECOVER),
            mttr_s=result.mttr_s,
            incident_id=result.incident_id,
            flow_run_id=flow_run_id or result.flow_run_id,
        )


def history_rows(history: Iterable[HistoryRow]) -> list[dict[str, Any]]:
    """The drill history as table-artifact rows, newest first, MTTR trend per scenario.

    `trend` compares a drill's MTTR with the previous drill of the same scenario: "▼ 12.0 s" faster,
    "▲ 3.0 s" slower, "first" for the first measured one.
    """
    rows = sorted(history, key=lambda r: r.started_at)
    previous: dict[str, float] = {}
    out: list[dict[str, Any]] = []
    for r in rows:
        trend = "-"
        if r.mttr_s is not None:
            before = previous.get(r.scenario)
            if before is None:
                trend = "first"
            else:
                delta = r.mttr_s - before
                trend = "=" if abs(delta) < 0.05 else f"{'▲' if delta > 0 else '▼'} {human_s(abs(delta))}"
            previous[r.scenario] = r.mttr_s
        out.append(
            {
                "started (UTC)": f"{r.started_at:%Y-%m-%d %H:%M}",
                "scenario": r.scenario,
                "target": r.target + (" (production, allowed)" if r.allow_production else ""),
                "status": r.status,
                "detect": human_s(r.detect_s),
                "acknowledge": human_s(r.acknowledge_s),
                "mitigate": human_s(r.mitigate_s),
                "recover": human_s(r.recover_s),
                "MTTR": human_s(r.mttr_s),
                "MTTR trend": trend,
            }
        )
    out.reverse()
    return out


def history_summary(history: Iterable[HistoryRow]) -> list[dict[str, Any]]:
    """Per scenario: drills run, passed, last and mean MTTR (the trend at a glance)."""
    by: dict[str, list[HistoryRow]] = {}
    for r in sorted(history, key=lambda r: r.started_at):
        by.setdefault(r.scenario, []).append(r)
    out = []
    for name, rows in sorted(by.items()):
        measured = [r.mttr_s for r in rows if r.mttr_s is not None]
        out.append(
            {
                "scenario": name,
                "drills": len(rows),
                "passed": sum(r.status == DrillStatus.PASSED.value for r in rows),
                "last MTTR": human_s(measured[-1] if measured else None),
                "mean MTTR": human_s(sum(measured) / len(measured) if measured else None),
                "last run": f"{rows[-1].started_at:%Y-%m-%d}",
            }
        )
    return out
