"""The generated references (docs/settings.md, docs/contracts.md, the generated sections of
docs/catalogue.md) are what the code produces now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runbook.docs import CATALOGUE_EXAMPLE, GENERATED, command, contracts_markdown, generated, splice

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_generated_document_is_current(path: str) -> None:
    on_disk = (REPO / path).read_text(encoding="utf-8")
    assert on_disk == generated(path), f"{path} is not current; regenerate it: {command(path)}"


def test_contracts_name_the_public_api_with_signatures() -> None:
    doc = contracts_markdown(("runbook.models", "sandbox.service.*"))
    assert "## runbook/models.py" in doc and "## sandbox/service/database.py" in doc
    assert "- `action_key(incident_id: str, action: str, target: str) -> str`: " in doc
    assert "enum `IncidentStatus`: `TRIGGERED`, `ACKNOWLEDGED`, `MITIGATED`, `RESOLVED`" in doc
    assert " at 0x" not in contracts_markdown()  # nothing that changes from one run to the next


def test_the_command_prints_a_document() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runbook.docs", "settings"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == generated("docs/settings.md")


def test_catalogue_page_shows_the_checked_example_and_the_schema() -> None:
    doc = generated("docs/catalogue.md")
    example = (REPO / CATALOGUE_EXAMPLE).read_text(encoding="utf-8")
    assert f"```yaml\n{example.rstrip()}\n```" in doc  # the very file the check command is tested on
    assert '### A service (`services[]`) <a id="service"></a>' in doc
    assert command("docs/catalogue.md") == "python -m runbook.docs --write"  # prose by hand: in place


def test_splice_replaces_only_between_the_markers() -> None:
    text = "intro\n<!-- generated: a -->\nold\n<!-- end: a -->\noutro\n"
    assert splice(text, {"a": "new\n"}) == "intro\n<!-- generated: a -->\nnew\n<!-- end: a -->\noutro\n"
    with pytest.raises(ValueError, match="generated: b"):
        splice(text, {"b": "x"})
