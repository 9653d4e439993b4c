"""Where query nodes run, and which pod leaves when their workload shrinks.

A pool's query nodes run in one workload the operator scales (`spec.scaleTargetRef`, as an HPA names its
target): a StatefulSet, a Deployment (the Milvus Helm chart's shape), or a milvus-operator `Milvus` (two
blue/green Deployments; its query-node replicas live in the CR). What differs between them, for the planner:

- **Who leaves on scale-in.** A StatefulSet removes its highest ordinals: the operator cannot choose, so it
  drains whatever Milvus placed there. A ReplicaSet (behind a Deployment, or each Deployment of a `Milvus`)
  removes pods in the order of `pkg/controller/controller_utils.go` `ActivePodsWithRanks.Less`: unscheduled
  before scheduled, Pending before Unknown before Running, not Ready before Ready, lower
  `controller.kubernetes.io/pod-deletion-cost` first, then Ready for less time, more restarts, newer. The
  operator steers it with the cost (lowest on a pod that is drained and holds nothing, highest on a serving
  one) and lowers replicas only by the number of pods whose rank makes them the ones removed.
- **When scaling waits.** A workload mid-rollout (several ReplicaSets with pods, a `Milvus` switching its
  blue/green Deployments) is not scaled in: its controller would pick from pods the rank here does not
  describe, and the operator never fights a rollout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from milvus_rg_operator.core.types import DEPLOYMENT as DEPLOYMENT  # re-exported: the kinds with their rules
from milvus_rg_operator.core.types import MILVUS as MILVUS
from milvus_rg_operator.core.types import STATEFULSET as STATEFULSET
from milvus_rg_operator.core.types import PodState
from milvus_rg_operator.core.types import WorkloadRef as WorkloadRef
from milvus_rg_operator.core.types import WorkloadState as WorkloadState

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

# Deletion costs the operator sets (an int32 annotation): the safer a pod is to remove, the lower.
COST_EMPTY = -1000  # no Milvus node, or a node drained out of every group that holds nothing
COST_SPARE = 0  # a node in the pending group
COST_SERVING = 1000  # a node serving a group
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_cost(pod: PodState) -> int:
    """The pod's deletion cost as the ReplicaSet reads it: 0 when absent or not an integer."""
    try:
        return int(pod.annotations.get(DELETION_COST, "0"))
    except ValueError:
        return 0


def replicaset_rank(pod: PodState, cost: int | None = None) -> tuple[bool, int, bool, int, float, int, float, str]:
    """`ActivePodsWithRanks.Less` as a sort key, first removed first (`cost`: the deletion cost to rank with,
    default the pod's own). Left out: "more pods of the same ReplicaSet on the node first", which needs every
    pod's node (the sandbox's embedded pods have none); costs decide before it."""
    return (pod.scheduled, _PHASE_RANK.get(pod.phase, 2), pod.ready, deletion_cost(pod) if cost is None else cost,
            -pod.ready_since, -pod.restarts, -pod.created_at, pod.name)


def removal_order(workload: WorkloadState, pods: Sequence[PodState],
                  costs: Mapping[str, int] | None = None) -> list[str]:
    """Every live pod of the workload, in the order its controller removes them on scale-in: a StatefulSet
    its highest ordinals first; a ReplicaSet by rank, with `costs` (pod -> deletion cost) where given. The one
    place the victim rule lives."""
    if not workload.ref.ranks_pods:  # by name: a replica whose pod is not there yet counts too
        return [statefulset_pod(workload.name, ordinal) for ordinal in range(workload.replicas - 1, -1, -1)]
    costs = costs or {}
    live = [p for p in pods if not p.terminating]
    return [p.name for p in sorted(live, key=lambda p: replicaset_rank(p, costs.get(p.name)))]


def statefulset_pod(statefulset: str, ordinal: int) -> str:
    return f"{statefulset}-{ordinal}"
