"""The emulator's HTTP face (`ClusterServer`, `serve_cluster`): see `sandbox.k8s.server.app`.

`RecordedRequest` (what `ClusterServer.requests` holds) is re-exported for the tests that read it.
"""

from sandbox.http_messages import RecordedRequest
from sandbox.k8s.server.app import ClusterServer, serve_cluster

__all__ = ["ClusterServer", "RecordedRequest", "serve_cluster"]
