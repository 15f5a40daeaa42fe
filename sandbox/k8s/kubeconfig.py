"""A kubeconfig pointing at an emulator, for kubectl and `kubernetes.config.load_kube_config`.

Usage::

    path = kubeconfig(server.url, tmp / "kubeconfig", namespace="prod")
    subprocess.run(["kubectl", "--kubeconfig", str(path), "get", "deploy"], ...)
    kubernetes.config.load_kube_config(config_file=str(path))
"""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.private_files import write_private

__all__ = ["kubeconfig"]


def kubeconfig(url: str, path: str | Path, namespace: str = "prod", context: str = "sandbox") -> Path:
    """Write a kubeconfig with one cluster, user and context (current) for the plain-HTTP `url`.
    JSON is valid YAML, so both kubectl and the Python client read it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": f"{context}-admin", "user": {"token": "sandbox-token"}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": f"{context}-admin", "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    return write_private(path, json.dumps(config, indent=2) + "\n")
