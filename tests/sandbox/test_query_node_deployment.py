"""The sandbox's Helm-shaped query-node Deployment on both Kubernetes backends: its pods register in Milvus as query
nodes under their hostname (the pod name: Deployment pods have no spec.hostname) and leave it when scaled away."""

from __future__ import annotations

import pytest

from milvus_rg_sandbox.milvus.resource_manager import NodeState
from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.wiring import is_query_node, pod_hostname
from milvus_rg_sandbox.workloads import DEPLOYMENTS
from tests.support import wait_for

from .workload_helpers import NS, name_of, ready_pods

pytestmark = pytest.mark.kube_backends
SELECTOR = "app.kubernetes.io/instance=my-release,component=querynode"


def live_nodes(sandbox: Sandbox) -> dict[str, str]:
    """hostname -> address of the query nodes that run and are not stopping."""
    return {node.hostname: node.address for node in sandbox.milvus.rm.nodes.values()
            if node.state is NodeState.HEALTHY}


async def test_helm_shaped_deployment_pods_register_as_query_nodes(sandbox: Sandbox) -> None:
    deployment = await sandbox.create_query_node_deployment(replicas=2, env={"MILVUS_SERVER_LABEL_ZONE": "az1"})
    assert name_of(deployment) == "my-release-milvus-querynode"
    assert deployment["spec"]["selector"] == {"matchLabels": {
        "app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "my-release", "component": "querynode"}}
    # None in the manifest: Kubernetes' default (a real API server writes it into the template).
    assert deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) == 30
    pods = await ready_pods(sandbox, SELECTOR, 2)
    for pod in pods:
        assert is_query_node(pod) and "hostname" not in pod["spec"] and pod_hostname(pod) == name_of(pod)
    expected = {name_of(p): f"{p['status']['podIP']}:21123" for p in pods}
    await wait_for(lambda: live_nodes(sandbox) == expected, timeout=30, message=f"nodes {expected}")
    assert {node.hostname: node.labels for node in sandbox.milvus.rm.nodes.values()} == {
        name: {"ZONE": "az1"} for name in expected}

    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "my-release-milvus-querynode", {"spec": {"replicas": 1}})
    (kept,) = await ready_pods(sandbox, SELECTOR, 1)
    await wait_for(lambda: set(live_nodes(sandbox)) == {name_of(kept)}, timeout=30, message="one node left")


async def test_each_per_group_deployment_of_a_release_selects_its_own_pods(sandbox: Sandbox) -> None:
    await sandbox.create_query_node_deployment(replicas=1, resource_group="rg1")
    await sandbox.create_query_node_deployment(replicas=2, resource_group="rg2")
    assert len(await ready_pods(sandbox, f"{SELECTOR},milvus.io/resource-group=rg1", 1)) == 1
    assert len(await ready_pods(sandbox, f"{SELECTOR},milvus.io/resource-group=rg2", 2)) == 2
    await wait_for(lambda: len(live_nodes(sandbox)) == 3, timeout=30, message="3 query nodes")


def test_the_hostname_is_the_kubelets() -> None:
    """`GeneratePodHostNameAndDomain`: hostnameOverride, else spec.hostname, else the name; at most 63 characters
    without a trailing dash or dot."""
    long_name = "a" * 62 + "-b"
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {}}) == "web-1"
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {"hostname": "db-0"}}) == "db-0"
    assert pod_hostname({"metadata": {"name": "x"}, "spec": {"hostname": "h", "hostnameOverride": "o.example"}}) \
        == "o.example"
    assert pod_hostname({"metadata": {"name": long_name}, "spec": {}}) == "a" * 62
