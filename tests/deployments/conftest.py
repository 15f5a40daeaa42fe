"""Fixtures of the deployments/ tests: the manifests as kustomize lists them, the example Secrets, the
work-pool template.

- `objects`: every object of every file listed in deployments/kustomization.yaml (Secrets excluded by
  design: they are created by hand);
- `example_secrets`: Secret name → its keys and placeholder values, from secrets.example.yaml;
- `config_maps`: ConfigMap name → data;
- `work_pool_template`: deployments/work-pool-kubernetes.json, parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="session")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def objects(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found += _load(DEPLOY / name)
    return found


@pytest.fixture(scope="session")
def example_secrets() -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: s["stringData"] for s in _load(DEPLOY / "secrets.example.yaml")}


@pytest.fixture(scope="session")
def config_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"}


@pytest.fixture(scope="session")
def work_pool_template() -> dict[str, Any]:
    return json.loads((DEPLOY / "work-pool-kubernetes.json").read_text(encoding="utf-8"))
