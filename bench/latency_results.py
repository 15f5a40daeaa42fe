"""Bench 2's options and results: what each trial measured, each path's summary, and the report.

`Options` says what to run (paths, trials, gaps, timeouts); a `Trial` holds one alert's times (POST,
202 answer, first line, and the flow run's Created / Pending / Running from the API); a `PathResult`
a path's trials, summarised with `bench.stats`; `report` renders the tables the bench prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Summary, markdown_table

__all__ = ["EXTRA_PATHS", "PATHS", "STANDIN", "Options", "PathResult", "Trial", "report"]

PATHS = ("serve", "worker", "warm", "warm-poll")
EXTRA_PATHS = ("warm-and-serve",)
"""Not run unless asked: `flows.warm` and `serve()` watching one deployment (who claims the runs?)."""
STANDIN = "bench.standin:respond"


@dataclass(frozen=True)
class Options:
    n: int = 20
    warmup: int = 1
    paths: tuple[str, ...] = PATHS
    gap_s: tuple[float, float] = (0.2, 1.2)
    seed: int = 6
    trial_timeout_s: float = 30.0
    startup_timeout_s: float = 90.0
    warm_poll_s: float = 0.25
    prefect_db: str = "sqlite"
    """The database of the Prefect server the bench starts: `sqlite` or `postgresql` (embedded)."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.warmup < 0:
            raise ValueError("n must be >= 1 and warmup >= 0")
        unknown = [p for p in self.paths if p not in PATHS + EXTRA_PATHS]
        if unknown:
            known = ", ".join(PATHS + EXTRA_PATHS)
            raise ValueError(f"unknown path(s) {', '.join(unknown)}; known: {known}")
        if self.prefect_db not in ("sqlite", "postgresql"):
            raise ValueError(f"prefect_db must be sqlite or postgresql (got {self.prefect_db!r})")
        if not 0 <= self.gap_s[0] <= self.gap_s[1]:
            raise ValueError(f"gap_s must be (low, high) with 0 <= low <= high (got {self.gap_s})")


@dataclass
class Trial:
    index: int
    warmup: bool
    incident_id: str
    post_at: float
    answered_at: float
    first_line_at: float
    pid: int
    flow_run_id: str
    created_at: float | None = None
    pending_at: float | None = None
    running_at: float | None = None

    @property
    def first_line_s(self) -> float:
        return self.first_line_at - self.post_at

    def since_post(self, at: float | None) -> float | None:
        return None if at is None else at - self.post_at


@dataclass
class PathResult:
    path: str
    executor_pid: int
    """The warm runner's process when the path has one, else the executor's (runs never run in it)."""
    trials: list[Trial] = field(default_factory=list)
    executions: Counter[str] = field(default_factory=Counter)

    @property
    def measured(self) -> list[Trial]:
        return [t for t in self.trials if not t.warmup]

    def summary(self, what: str = "first_line") -> Summary:
        values = [_value(t, what) for t in self.measured]
        return Summary.of([v for v in values if v is not None])

    @property
    def in_process(self) -> bool:
        return bool(self.measured) and self.in_new_process == 0

    @property
    def in_new_process(self) -> int:
        """Measured trials whose flow ran in a process other than the warm runner's."""
        return sum(t.pid != self.executor_pid for t in self.measured)

    @property
    def exactly_once(self) -> bool:
        return all(self.executions.get(t.flow_run_id) == 1 for t in self.trials)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "n": len(self.measured),
            "first_line_s": _summary_json(self.summary("first_line")),
            "api_running_s": _summary_json(self.summary("running")),
            "warmup_first_line_s": [t.first_line_s for t in self.trials if t.warmup],
            "in_executor_process": self.in_process,
            "in_new_process": self.in_new_process,
            "exactly_once": self.exactly_once,
            "trials": [t.__dict__ for t in self.trials],
        }


def _value(trial: Trial, what: str) -> float | None:
    if what == "first_line":
        return trial.first_line_s
    if what == "answer":
        return trial.answered_at - trial.post_at
    return trial.since_post(
        {"created": trial.created_at, "pending": trial.pending_at, "running": trial.running_at}[what]
    )


def _summary_json(s: Summary) -> dict[str, float]:
    return {"n": s.n, "median": s.median, "p95": s.p95, "max": s.max, "min": s.min}


def _new_process_text(result: PathResult) -> str:
    if result.in_process:
        return "no (in-process)"
    if result.in_new_process == len(result.measured) and result.path != "warm-and-serve":
        return "yes"
    return f"{result.in_new_process} of {len(result.measured)}"


def report(results: list[PathResult], options: Options | None = None) -> str:
    options = options or Options()

    def ms(value: float) -> str:
        return f"{value * 1000:,.0f}"

    rows = []
    for r in results:
        first, api = r.summary("first_line"), r.summary("running")
        rows.append(
            [
                r.path,
                first.n,
                ms(first.median),
                ms(first.p95),
                ms(first.max),
                ms(api.median),
                ms(api.p95),
                _new_process_text(r),
                "yes" if r.exactly_once else "NO",
            ]
        )
    table = markdown_table(
        [
            "path",
            "n",
            "first line median ms",
            "p95 ms",
            "max ms",
            "API Running median ms",
            "p95 ms",
            "new process per run",
            "each run once",
        ],
        rows,
    )
    breakdown = markdown_table(
        [
            "path",
            "202 answer",
            "run created",
            "Pending (claimed)",
            "Running (API)",
            "first line",
            "warm-up first line",
        ],
        [
            [
                r.path,
                ms(r.summary("answer").median),
                ms(r.summary("created").median),
                ms(r.summary("pending").median),
                ms(r.summary("running").median),
                ms(r.summary("first_line").median),
                ", ".join(ms(t.first_line_s) for t in r.trials if t.warmup) or "–",
            ]
            for r in results
        ],
    )
    return "\n".join(
        [
            f"Alert POST → first line of `respond` ({STANDIN}); n={options.n} per path after "
            f"{options.warmup} warm-up; gap {options.gap_s[0]:g}–{options.gap_s[1]:g} s; "
            f"Prefect server on {options.prefect_db}; times in ms",
            "",
            table,
            "",
            "Medians since the POST, ms (from the API, except the answer and the first line):",
            "",
            breakdown,
        ]
    )
