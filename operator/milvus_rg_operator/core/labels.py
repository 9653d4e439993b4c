"""Pod labels that say where Milvus actually placed each query node (nodes map to pods by hostname).

- `milvusrg.io/resource-group`: the group's label value (see `names.label_value`); the annotation of the
  same key holds the exact Milvus name. Absent while the node is in no group.
- `milvusrg.io/node-id`: the Milvus node id of the pod's current process.
- `milvusrg.io/state`: serving | pending | draining | joining | terminating; absent on a new pod until
  Milvus registers its node.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from milvus_rg_operator.constants import LABEL_NODE_ID as LABEL_NODE_ID  # re-exported: the labels planned here
from milvus_rg_operator.constants import LABEL_RESOURCE_GROUP as LABEL_RESOURCE_GROUP
from milvus_rg_operator.constants import LABEL_STATE as LABEL_STATE
from milvus_rg_operator.core.names import label_value
from milvus_rg_operator.core.types import MilvusState, PodState
from milvus_rg_operator.core.workloads import DELETION_COST

ANNOTATION_RESOURCE_GROUP = LABEL_RESOURCE_GROUP  # the exact Milvus name (label values are restricted)
OWN_LABELS = frozenset({LABEL_RESOURCE_GROUP, LABEL_NODE_ID, LABEL_STATE})


@dataclass(frozen=True)
class PodPatch:
    labels: Mapping[str, str | None]  # merge patch: None removes
    annotations: Mapping[str, str | None]


def pod_placement(pod: PodState, milvus: MilvusState, pending_group: str,
                  draining: Collection[str] = ()) -> tuple[str | None, int | None, str]:
    """(Milvus group or None, node id or None, state) of one pod."""
    node = milvus.node_of_pod(pod.name)
    group = milvus.group_of_node(node.node_id) if node else None
    node_id = node.node_id if node else None
    if pod.terminating:
        return group, node_id, "terminating"
    if node is None or not pod.ready:
        return group, node_id, "joining"
    if pod.name in draining or group is None:
        return group, node_id, "draining" if pod.name in draining else "joining"
    return group, node_id, "pending" if group == pending_group else "serving"


def plan_pod_labels(pods: Sequence[PodState], milvus: MilvusState, pending_group: str,
                    draining: Collection[str] = (), costs: Mapping[str, int] | None = None) -> dict[str, PodPatch]:
    """Only pods whose labels or annotations differ appear: a converged pool yields {}. `costs`: the
    pod-deletion-cost to set on some pods (core.workloads), in the same patch."""
    patches: dict[str, PodPatch] = {}
    values: dict[str, str] = {}  # group -> label value, computed once per group
    costs = costs or {}
    for pod in pods:
        group, node_id, state = pod_placement(pod, milvus, pending_group, draining)
        cost = {DELETION_COST: str(costs[pod.name])} if pod.name in costs else {}
        if (state == "joining" and group is None and node_id is None and not OWN_LABELS & pod.labels.keys()
                and not cost):
            # A new pod Milvus does not know yet: nothing to say until its node registers (one patch per new
            # pod, not "joining" then its placement: 1,000 writes fewer when 1,000 pods start together).
            continue
        if group and group not in values:
            values[group] = label_value(group)
        wanted_labels = {
            LABEL_RESOURCE_GROUP: values[group] if group else None,
            LABEL_NODE_ID: str(node_id) if node_id is not None else None,
            LABEL_STATE: state,
        }
        wanted_annotations = {ANNOTATION_RESOURCE_GROUP: group, **cost}
        label_changes = _changes(pod.labels, wanted_labels)
        annotation_changes = _changes(pod.annotations, wanted_annotations)
        if label_changes or annotation_changes:
            patches[pod.name] = PodPatch(label_changes, annotation_changes)
    return patches


def _changes(current: Mapping[str, str], wanted: Mapping[str, str | None]) -> dict[str, str | None]:
    return {k: v for k, v in wanted.items() if current.get(k) != v and not (v is None and k not in current)}
