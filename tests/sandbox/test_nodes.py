"""Nodes on both Kubernetes backends: the real tier's kwok nodes, and on the embedded one the same Node objects
created by the test (without them the embedded kubelet runs every pod unbound). A cordoned or tainted node takes no
new pod, and `kubectl drain` (cordon, then evict the node's pods within their PodDisruptionBudget) moves them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from milvus_rg_sandbox.realkube.control_plane import fake_node
from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import NODES, PDBS, PODS, REPLICASETS
from tests.support import wait_for

from .workload_helpers import NS, Obj, RawApi, container, name_of, ready_pods, replicaset

pytestmark = pytest.mark.kube_backends
NODE_NAMES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")


@pytest.fixture
async def nodes(sandbox: Sandbox) -> AsyncIterator[list[str]]:
    """The three nodes (created on the embedded backend as the real tier has them); cordons and taints undone."""
    if not await sandbox.kube.store.list(NODES):
        for name in NODE_NAMES:
            await sandbox.kube.store.create(NODES, fake_node(name, 1000))
    try:
        yield list(NODE_NAMES)
    finally:
        for name in NODE_NAMES:
            await sandbox.kube.store.patch(NODES, "", name, {"spec": {"unschedulable": None, "taints": None}})


def node_of(pod: Obj) -> str:
    return str(pod["spec"].get("nodeName") or "")


async def test_pods_are_bound_to_nodes(sandbox: Sandbox, nodes: list[str]) -> None:
    await sandbox.kube.store.create(REPLICASETS, replicaset("web", 3))
    pods = await ready_pods(sandbox, "app=web", 3)
    assert all(node_of(pod) in nodes for pod in pods), [node_of(pod) for pod in pods]
    assert all(pod["status"]["hostIP"] == "127.0.0.1" for pod in pods)


async def test_drain_moves_the_pods_of_a_cordoned_node_within_the_budget(sandbox: Sandbox, nodes: list[str]) -> None:
    await sandbox.kube.store.create(REPLICASETS, replicaset("web", 3))
    pods = await ready_pods(sandbox, "app=web", 3)
    await sandbox.kube.store.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                           "metadata": {"name": "web", "namespace": NS},
                                           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    drained = node_of(pods[0])
    await sandbox.kube.store.patch(NODES, "", drained, {"spec": {"unschedulable": True}})  # kubectl cordon
    api = RawApi(sandbox)
    for pod in [p for p in pods if node_of(p) == drained]:  # kubectl drain: evict, retrying while refused (429)
        async def evicted(name: str = name_of(pod)) -> bool:
            answer = await api.evict(name)
            assert answer.status in (201, 429), answer.body
            return answer.status == 201

        await wait_for(evicted, timeout=30, interval=0.2, message=f"{name_of(pod)} evicted")
    moved = await ready_pods(sandbox, "app=web", 3)
    assert drained not in {node_of(pod) for pod in moved}


async def test_a_pod_no_node_can_take_stays_pending_until_one_can(sandbox: Sandbox, nodes: list[str]) -> None:
    for name in nodes[1:]:
        await sandbox.kube.store.patch(NODES, "", name, {"spec": {"unschedulable": True}})
    await sandbox.kube.store.patch(NODES, "", nodes[0], {"spec": {"taints": [
        {"key": "dedicated", "value": "milvus", "effect": "NoSchedule"}]}})
    await sandbox.kube.store.create(PODS, {"metadata": {"name": "waiting", "namespace": NS},
                                           "spec": {"containers": [container()]}})

    async def unschedulable() -> Obj | None:
        pod = await sandbox.kube.store.get(PODS, NS, "waiting")
        conditions = (pod or {}).get("status", {}).get("conditions") or []
        return pod if [(c["type"], c["status"], c.get("reason")) for c in conditions] == [
            ("PodScheduled", "False", "Unschedulable")] else None

    pending = await wait_for(unschedulable, timeout=30, message="the pod unschedulable")
    assert pending["status"]["phase"] == "Pending" and not node_of(pending)
    await sandbox.kube.store.create(PODS, {"metadata": {"name": "tolerating", "namespace": NS}, "spec": {
        "containers": [container()],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "milvus", "effect": "NoSchedule"}]}})
    tolerating = await wait_for(lambda: _ready(sandbox, "tolerating"), timeout=30, message="the tolerating pod Ready")
    assert node_of(tolerating) == nodes[0]
    await sandbox.kube.store.patch(NODES, "", nodes[2], {"spec": {"unschedulable": None}})  # kubectl uncordon
    running = await wait_for(lambda: _ready(sandbox, "waiting"), timeout=30, message="the waiting pod Ready")
    assert node_of(running) == nodes[2]


async def _ready(sandbox: Sandbox, name: str) -> Obj | None:
    pod = await sandbox.kube.store.get(PODS, NS, name)
    ready = [c for c in (pod or {}).get("status", {}).get("conditions") or [] if c["type"] == "Ready"]
    return pod if ready and ready[0]["status"] == "True" else None
