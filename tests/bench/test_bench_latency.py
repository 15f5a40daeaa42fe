"""Smoke: the alert → first line bench runs its paths once each against the session's Prefect server.

Each path starts its real executor (`serve()`, a process worker, `python -m flows.warm`) and a real
`python -m intake` that dispatches to it; one alert each. `warm-poll` is `warm` with `--no-events`
and is left to the bench itself, to keep this folder near a minute. No timing is asserted: that each
path produced its figures, that serve and worker ran the flow in a new process and the warm runner
in its own, and that each run was executed once.
"""

from __future__ import annotations

from pathlib import Path

from bench import alert_latency


def test_every_path_reports_a_first_line_and_api_times(prefect_api: str, tmp_path: Path) -> None:
    paths = ("serve", "worker", "warm")
    options = alert_latency.Options(n=1, warmup=0, paths=paths, gap_s=(0.0, 0.0), startup_timeout_s=60)
    results = alert_latency.run(options, api_url=prefect_api, workdir=tmp_path)

    assert [r.path for r in results] == list(paths)
    for result in results:
        [trial] = result.measured
        assert trial.post_at < trial.answered_at and trial.post_at < trial.first_line_at
        assert None not in (trial.created_at, trial.pending_at, trial.running_at)
        assert result.exactly_once, result.executions
        assert result.summary("first_line").n == 1 and result.summary("running").n == 1
    by_path = {r.path: r for r in results}
    assert by_path["warm"].in_process
    assert not by_path["serve"].in_process and not by_path["worker"].in_process

    text = alert_latency.report(results, options)
    for path in paths:
        assert f"| {path} | 1 |" in text
    assert "no (in-process)" in text and "Pending (claimed)" in text
