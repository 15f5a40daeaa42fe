"""flows/warm: the runner runs only what is named to it, never a drill, never a flow with crash or
cancellation hooks (it cannot run them: there is no child process to kill or lose).

- no name and no `--flow`: refused in one line, exit 2 (no "serve everything" default);
- every catalogue drill, by name or by `--flow`: refused in one line naming it a drill;
- a flow with `on_crashed` or `on_cancellation` hooks: refused, the hook named;
- `respond` (and a plain flow) are accepted.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow

from flows import catalogue
from flows.warm import NotWarmSafe, WarmTarget, main, refusal


def _hook(flow_: Any, flow_run: Any, state: Any) -> None:
    """Never called: the flows below are only checked."""


@flow(name="warm-bounds-crash-hooked", on_crashed=[_hook])
def crash_hooked() -> None:
    """Has an on_crashed hook."""


@flow(name="warm-bounds-cancel-hooked", on_cancellation=[_hook])
def cancel_hooked() -> None:
    """Has an on_cancellation hook."""


@flow(name="warm-bounds-plain", on_failure=[_hook])
def plain() -> None:
    """An on_failure hook runs inside the run (the engine calls it): fine warm."""


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flows.warm: ") and "\n" not in err, err
    return err


def test_no_names_is_refused_not_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert "name the deployments to run warm" in _one_line_error([], capsys)


DRILLS = [e.name for e in catalogue.entries() if "drill" in e.tags]


def test_the_catalogue_has_drills_to_refuse() -> None:
    assert len(DRILLS) >= 5 and "drill-monthly" in DRILLS


@pytest.mark.parametrize("name", DRILLS)
def test_a_catalogue_drill_is_refused_by_name(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error(["respond", name], capsys)
    assert "is a drill" in err and name in err


def test_a_drill_is_refused_through_flow_too(capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error(["--flow", "flows.drills:drill_high_error_rate=warm"], capsys)
    assert "'drill-high-error-rate' is a drill" in err


@pytest.mark.parametrize(
    ("hooked", "hook"), [(crash_hooked, "on_crashed"), (cancel_hooked, "on_cancellation")]
)
def test_a_flow_with_crash_or_cancellation_hooks_is_refused(hooked: Any, hook: str) -> None:
    with pytest.raises(NotWarmSafe, match=f"has {hook} hooks"):
        WarmTarget.of(hooked, "x")


def test_a_drill_tag_alone_is_refused() -> None:
    assert refusal(plain, tags=["drill"]) is not None
    with pytest.raises(NotWarmSafe, match="is a drill"):
        WarmTarget.of(plain, "x", tags=["drill"])


def test_respond_and_a_plain_flow_are_accepted() -> None:
    from flows.respond import respond

    assert refusal(respond, ["respond"]) is None
    assert WarmTarget.of(respond, "respond").name == "respond/respond"
    assert WarmTarget.of(plain, "plain").name == "warm-bounds-plain/plain"
    # Only respond is meant to run warm; nothing else in the catalogue has hooks but the drills.
    hooked = [e.name for e in catalogue.entries() if refusal(e.flow, e.tags) is not None]
    assert sorted(hooked) == sorted(DRILLS)


def test_parameters_become_the_deployments_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.warm.cli import catalogue_targets

    [target] = catalogue_targets(["respond"], {"stability_window_s": 2.0})
    assert target.deployment.parameters == {"stability_window_s": 2.0}
    with pytest.raises(SystemExit) as exited:
        main(["respond", "--parameters", "[1]"])
    assert exited.value.code == 2
    assert "--parameters must be a JSON object" in capsys.readouterr().err
