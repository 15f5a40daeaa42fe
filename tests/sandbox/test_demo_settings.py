"""The demo's settings live beside the demo, out of the runbooks' production model."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.errors import SettingsError
from runbook.settings import Settings
from sandbox.demo.settings import load_demo_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RUNBOOK_DEMO_PREFECT_PORT", "RUNBOOK_DEMO_SANDBOX_PORT_BASE", "RUNBOOK_DEMO_VAR"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_demo_settings()
    assert (defaults.prefect_port, defaults.sandbox_port_base, defaults.var) == (4200, 8100, Path("var/demo"))
    monkeypatch.setenv("RUNBOOK_DEMO_PREFECT_PORT", "4300")
    (tmp_path / ".env").write_text("RUNBOOK_DEMO_VAR=elsewhere\n")
    settings = load_demo_settings()
    assert (settings.prefect_port, settings.var) == (4300, Path("elsewhere"))


def test_invalid_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_DEMO_PREFECT_PORT", "80")
    with pytest.raises(SettingsError) as err:
        load_demo_settings(env_file=None)
    assert str(err.value).startswith("RUNBOOK_DEMO_PREFECT_PORT: ")
    assert "\n" not in str(err.value)


def test_the_production_model_has_no_demo_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_DEMO_PREFECT_PORT", "80")  # not the runbooks' business: ignored
    assert "demo" not in Settings.model_fields
    Settings(_env_file=None)
