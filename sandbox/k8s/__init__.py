"""The Kubernetes API emulator: an in-memory cluster (`Cluster`) served over the real REST paths.

Usage::

    from sandbox.k8s import Cluster, serve_cluster, kubeconfig

    cluster = Cluster()
    cluster.seed_deployment("prod", "web", "registry.local/web:1.4.2")
    server = serve_cluster(cluster)              # 127.0.0.1, free port, controller ticking in background
    kubeconfig(server.url, tmp / "kubeconfig")   # for kubectl and kubernetes.config.load_kube_config
    ...
    server.stop()
"""

from sandbox.k8s.cluster import Change, Cluster
from sandbox.k8s.errors import ApiError
from sandbox.k8s.kubeconfig import kubeconfig
from sandbox.k8s.server import ClusterServer, serve_cluster

__all__ = ["ApiError", "Change", "Cluster", "ClusterServer", "kubeconfig", "serve_cluster"]
