"""Pod labels say, by value, what Milvus says of each pod's node: whatever the pods carried before, once the
planned patches are applied every label equals Milvus's placement, and planning again patches nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from milvus_rg_operator.core.labels import (
    ANNOTATION_RESOURCE_GROUP,
    LABEL_NODE_ID,
    LABEL_RESOURCE_GROUP,
    LABEL_STATE,
    plan_pod_labels,
)
from milvus_rg_operator.core.names import label_value
from milvus_rg_operator.core.types import PodState
from tests.core.strategies import PENDING, World, worlds

ANY_LABELS = st.dictionaries(st.sampled_from([LABEL_RESOURCE_GROUP, LABEL_NODE_ID, LABEL_STATE, "app"]),
                             st.sampled_from(["rg1", "pending_nodes", "7", "serving", "pending", "x"]), max_size=4)


def patched(values: Mapping[str, str], patch: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in {**values, **patch}.items() if v is not None}


def expected_state(pod: PodState, group: str | None, draining: set[str]) -> str:
    if pod.terminating:
        return "terminating"
    if not pod.ready or (group is None and pod.name not in draining):
        return "joining"
    if pod.name in draining:
        return "draining"
    return "pending" if group == PENDING else "serving"


@given(worlds(), st.data())
def test_every_pods_labels_equal_milvus_placement_once_patched(world: World, data: st.DataObject) -> None:
    pods = [replace(p, labels=data.draw(ANY_LABELS), annotations=data.draw(st.sampled_from(
        [{}, {ANNOTATION_RESOURCE_GROUP: "rg1"}]))) for p in world.pods]
    draining = {d.pod for d in world.drains}
    patches = plan_pod_labels(pods, world.milvus, PENDING, draining)
    after = []
    for pod in pods:
        patch = patches.get(pod.name)
        labels = patched(pod.labels, patch.labels if patch else {})
        annotations = patched(pod.annotations, patch.annotations if patch else {})
        after.append(replace(pod, labels=labels, annotations=annotations))
        assert labels.get("app") == pod.labels.get("app")  # only the operator's own labels change
        node = world.milvus.node_of_pod(pod.name)
        if node is None:  # no node: nothing about one (a new pod gets no label until Milvus registers it)
            assert LABEL_NODE_ID not in labels and LABEL_RESOURCE_GROUP not in labels
            continue
        group = world.milvus.group_of_node(node.node_id)
        assert labels[LABEL_NODE_ID] == str(node.node_id)
        assert labels.get(LABEL_RESOURCE_GROUP) == (label_value(group) if group else None)
        assert annotations.get(ANNOTATION_RESOURCE_GROUP) == group
        assert labels[LABEL_STATE] == expected_state(pod, group, draining)
    assert plan_pod_labels(after, world.milvus, PENDING, draining) == {}
