"""Query nodes in each shape users run them (milvus_rg_sandbox.shapes, `Sandbox.create_query_nodes`,
`--workload`): their pods register in Milvus. Deployments need a Deployment controller: the real backend's
(the embedded one comes with the workloads branch), so only the StatefulSet shape runs on both."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_sandbox.milvus.resource_manager import NodeState
from milvus_rg_sandbox.milvus_operator import DEPLOYMENTS
from milvus_rg_sandbox.pytest_plugin import SandboxFactory, require_real_kubernetes
from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.shapes import SHAPES, Shape, helm_fullname, helm_query_node_deployment, per_group_deployments
from milvus_rg_sandbox.workloads import PODS, pod_is_ready
from tests.support import wait_for

# The pods of each shape, by label: the StatefulSet's, the chart's, milvus-operator's Deployments'.
POD_SELECTORS = {"statefulset": "app.kubernetes.io/instance=milvus-querynode",
                 "deployment": "app.kubernetes.io/instance=my-release,component=querynode",
                 "milvus-operator": "app.kubernetes.io/instance=my-release,"
                                    "app.kubernetes.io/managed-by=milvus-operator",
                 "per-group": "app.kubernetes.io/instance=my-release,component=querynode"}
CASES = [("embedded", "statefulset"), *(("real", shape) for shape in SHAPES)]


def registered(sandbox: Sandbox) -> dict[str, str | None]:
    """hostname -> resource group of the query nodes that run (not those embedded in streaming nodes)."""
    rm = sandbox.milvus.rm
    return {node.hostname: rm.group_of(node_id) for node_id, node in rm.nodes.items()
            if node.state is NodeState.HEALTHY and not node.embedded}


async def ready_pods(sandbox: Sandbox, selector: str) -> dict[str, dict[str, Any]]:
    pods = await sandbox.kube.store.list(PODS, "default", label_selector=selector)
    return {p["metadata"]["name"]: p for p in pods if pod_is_ready(p) and not p["metadata"].get("deletionTimestamp")}


@pytest.mark.parametrize(("kube_backend", "shape"), CASES, indirect=["kube_backend"])
async def test_each_shapes_pods_register_in_milvus(sandbox_factory: SandboxFactory, shape: Shape) -> None:
    sandbox = await sandbox_factory(milvus_version="v2.6.8")  # 2.6.8: MILVUS_SERVER_LABEL_RESOURCE_GROUP is read
    if shape == "milvus-operator":
        await sandbox.start_milvus_operator(sync_interval=0.2, min_ready_seconds=0)
    created = await sandbox.create_query_nodes(shape, replicas=2)
    expected = 4 if shape == "per-group" else 2

    async def all_registered() -> bool:
        pods = await ready_pods(sandbox, POD_SELECTORS[shape])
        return len(pods) == expected and set(registered(sandbox)) == set(pods)

    await wait_for(all_registered, timeout=60, message=f"{expected} ready pods of {shape}, each a query node")
    if shape == "per-group":
        # Each group's pods carry MILVUS_SERVER_LABEL_RESOURCE_GROUP=<group>: Milvus 2.6.8 pins them there.
        pods = await ready_pods(sandbox, POD_SELECTORS[shape])
        placed = {name: pods[name]["metadata"]["labels"]["milvus.io/resource-group"] for name in pods}
        assert registered(sandbox) == placed and sorted(placed.values()) == ["rg1", "rg1", "rg2", "rg2"]
        assert [obj["metadata"]["name"] for obj in created] == ["my-release-milvus-querynode-rg1",
                                                                "my-release-milvus-querynode-rg2"]


def test_the_charts_deployment_is_the_charts() -> None:
    deployment = helm_query_node_deployment("my-release", 3)
    assert deployment["metadata"]["name"] == "my-release-milvus-querynode"
    assert deployment["metadata"]["labels"] == {
        "helm.sh/chart": "milvus-5.0.19", "app.kubernetes.io/name": "milvus",
        "app.kubernetes.io/instance": "my-release", "app.kubernetes.io/version": "2.6.15",
        "app.kubernetes.io/managed-by": "Helm", "component": "querynode"}
    selector = {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "my-release",
                "component": "querynode"}
    assert deployment["spec"]["selector"]["matchLabels"] == selector
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector
    pod = deployment["spec"]["template"]["spec"]
    assert "terminationGracePeriodSeconds" not in pod
    (container,) = pod["containers"]
    assert container["args"] == ["milvus", "run", "querynode"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("querynode", 21123), ("metrics", 9091)]
    assert deployment["spec"]["replicas"] == 3
    assert "replicas" not in helm_query_node_deployment("my-release", -1)["spec"]  # queryNode.replicas -1: an HPA's


def test_the_charts_fullname_drops_a_repeated_chart_name() -> None:
    assert helm_fullname("my-release") == "my-release-milvus"
    assert helm_fullname("milvus") == "milvus" and helm_fullname("my-milvus") == "my-milvus"


def test_the_per_group_shape_is_replica_resource_groups() -> None:
    rg1, rg2 = per_group_deployments("my-release", ("rg1", "rg2"), 2)
    assert [rg1["metadata"]["name"], rg2["metadata"]["name"]] == ["my-release-milvus-querynode-rg1",
                                                                  "my-release-milvus-querynode-rg2"]
    for deployment, group in ((rg1, "rg1"), (rg2, "rg2")):
        assert deployment["spec"]["replicas"] == 2
        for labels in (deployment["metadata"]["labels"], deployment["spec"]["selector"]["matchLabels"],
                       deployment["spec"]["template"]["metadata"]["labels"]):
            assert labels["milvus.io/resource-group"] == group
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["env"][0] == {"name": "MILVUS_SERVER_LABEL_RESOURCE_GROUP", "value": group}


@pytest.mark.parametrize("kube_backend", ["real"], indirect=True)
async def test_the_charts_pods_get_kubernetes_default_grace_period(sandbox: Sandbox) -> None:
    (deployment,) = await sandbox.create_query_nodes("deployment", replicas=1)
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30  # the API's default
    assert deployment["metadata"]["name"] == "my-release-milvus-querynode"
    assert await sandbox.kube.store.get(DEPLOYMENTS, "default", "my-release-milvus-querynode") is not None


async def test_the_sandbox_command_creates_the_chosen_workload(tmp_path: Path) -> None:
    require_real_kubernetes()  # the per-group Deployments need a Deployment controller: the real control plane's
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "milvus_rg_sandbox", "--kubernetes", "real", "--kube-port", "0", "--milvus-port", "0",
        "--management-port", "0", "--workdir", str(tmp_path), "--query-nodes", "1", "--workload", "per-group",
        "--resource-groups", "tenant-a,tenant-b",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("export KUBECONFIG="):
            async with asyncio.timeout(60):
                line = await process.stdout.readline()
            assert line, f"the sandbox exited early: {lines}"
            lines.append(line.decode().strip())
        assert [line for line in lines if line.startswith("deployment: ")] == [
            "deployment: default/my-release-milvus-querynode-tenant-a (1 query nodes)",
            "deployment: default/my-release-milvus-querynode-tenant-b (1 query nodes)"]
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
