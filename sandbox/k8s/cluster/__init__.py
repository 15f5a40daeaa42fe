"""The emulated Kubernetes cluster (`Cluster`), in layers: state and reads, events, writes, the rest.

See `sandbox.k8s.cluster.facade` for usage; `Cluster` and `Change` are what callers import from here.
"""

from sandbox.k8s.cluster.facade import Cluster
from sandbox.k8s.store import Change

__all__ = ["Change", "Cluster"]
