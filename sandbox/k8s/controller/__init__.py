"""The deployment and replica-set controllers, one deterministic pass at a time.

Usage (through `Cluster.tick()`, which runs the kubelet, then these two)::

    ReplicaSetController(cluster).sync_all(now)    # pods per ReplicaSet, ReplicaSet status
    DeploymentController(cluster).sync_all(now)    # rollouts, revisions, Deployment status, pruning

Follows kubernetes `pkg/controller/deployment` and `pkg/controller/replicaset`, one module per part:
`deployment` (the controller: new and old ReplicaSets, revisions, scaling, pruning), `rollout` (the
RollingUpdate and Recreate strategies), `progress` (status and conditions), `util` (ownership, revisions,
surge arithmetic), `replicaset` (pods per ReplicaSet).
"""

from sandbox.k8s.controller.deployment import DeploymentController
from sandbox.k8s.controller.replicaset import ReplicaSetController
from sandbox.k8s.controller.util import controlled_by, revision_of

__all__ = ["DeploymentController", "ReplicaSetController", "controlled_by", "revision_of"]
