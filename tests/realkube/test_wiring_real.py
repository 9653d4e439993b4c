"""Query nodes on the real API server: the sandbox's pod-to-Milvus wiring driven by a watch."""

from __future__ import annotations

import pytest

from milvus_rg_sandbox.milvus.resource_manager import NodeState
from milvus_rg_sandbox.pytest_plugin import SandboxFactory
from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import STATEFULSETS
from tests.support import wait_for

from .conftest import wait_ready_pods

pytestmark = pytest.mark.parametrize("kube_backend", ["real"], indirect=True)
SELECTOR = "app.kubernetes.io/component=querynode"


def live_nodes(sandbox: Sandbox) -> dict[str, str]:
    """hostname -> address of the query nodes that run and are not stopping."""
    return {node.hostname: node.address for node in sandbox.milvus.rm.nodes.values()
            if node.state is NodeState.HEALTHY}


async def test_ready_pods_register_with_pod_name_and_ip(sandbox: Sandbox) -> None:
    await sandbox.create_query_node_statefulset(replicas=2)
    pods = await wait_ready_pods(sandbox.kube.store, "default", SELECTOR, 2)
    expected = {p["metadata"]["name"]: f"{p['status']['podIP']}:21123" for p in pods}
    await wait_for(lambda: live_nodes(sandbox) == expected, timeout=10, message=f"nodes {expected}")


async def test_scale_down_stops_the_node_when_the_pod_starts_terminating(sandbox: Sandbox) -> None:
    await sandbox.create_query_node_statefulset(replicas=2)
    await wait_for(lambda: len(live_nodes(sandbox)) == 2, timeout=30, message="2 nodes")
    await sandbox.kube.store.patch(STATEFULSETS, "default", "milvus-querynode", {"spec": {"replicas": 1}})
    await wait_for(lambda: set(live_nodes(sandbox)) == {"milvus-querynode-0"}, timeout=30,
                   message="milvus-querynode-1 stopped")


async def test_a_crash_is_a_new_session_after_restart(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(session_ttl=120)  # the crashed session outlives the test
    await sandbox.create_query_node_statefulset(replicas=1)
    await wait_for(lambda: len(live_nodes(sandbox)) == 1, timeout=30, message="1 node")
    (before,) = sandbox.milvus.rm.nodes
    sandbox.workloads.crash_pod("default", "milvus-querynode-0")
    await wait_for(lambda: sandbox.milvus.rm.nodes[before].state is NodeState.OFFLINE, timeout=30,
                   message="the old session crashed")
    await wait_for(lambda: [n for n, node in sandbox.milvus.rm.nodes.items() if node.state is NodeState.HEALTHY
                            and node.hostname == "milvus-querynode-0" and n != before], timeout=30,
                   message="a new session for the restarted container")


async def test_a_force_deleted_pod_is_a_crash(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(session_ttl=120)
    await sandbox.create_query_node_statefulset(replicas=1)
    await wait_for(lambda: len(live_nodes(sandbox)) == 1, timeout=30, message="1 node")
    (before,) = sandbox.milvus.rm.nodes
    sandbox.workloads.delete_pod_now("default", "milvus-querynode-0")
    await wait_for(lambda: sandbox.milvus.rm.nodes[before].state is NodeState.OFFLINE, timeout=30,
                   message="the old session crashed, not stopped")
