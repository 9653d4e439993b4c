"""Pods <-> Milvus nodes through a whole sandbox, read back over real pymilvus gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymilvus import AsyncMilvusClient

from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.wiring import is_query_node
from milvus_rg_sandbox.workloads import PODS, STATEFULSETS, pod_is_ready
from tests.support import wait_for

NS = "default"
DEFAULT_RG = "__default_resource_group"
STS = "milvus-querynode"


@pytest.fixture
async def milvus(sandbox: Sandbox) -> AsyncIterator[AsyncMilvusClient]:
    client = AsyncMilvusClient(uri=sandbox.milvus.uri)
    try:
        yield client
    finally:
        await client.close()


async def default_group_nodes(client: AsyncMilvusClient) -> dict[str, tuple[int, str]]:
    """hostname -> (node id, address) of the default group's nodes."""
    info = await client.describe_resource_group(DEFAULT_RG, timeout=5)
    return {node.hostname: (node.node_id, node.address) for node in info.nodes}


async def ready_pod(sandbox: Sandbox, name: str) -> dict[str, Any] | None:
    pod = await sandbox.kube.store.get(PODS, NS, name)
    return pod if pod is not None and pod_is_ready(pod) else None


async def test_ready_pod_registers_a_node_with_its_hostname_address_and_labels(
    sandbox: Sandbox, milvus: AsyncMilvusClient
) -> None:
    await sandbox.create_query_node_statefulset(STS, replicas=1, env={"MILVUS_SERVER_LABEL_ZONE": "az1"})
    pod = await wait_for(lambda: ready_pod(sandbox, f"{STS}-0"), message="pod ready")
    nodes = await wait_for(lambda: default_group_nodes(milvus), message="node in the default group")
    node_id, address = nodes[f"{STS}-0"]
    assert address == f"{pod['status']['podIP']}:21123"
    assert sandbox.wiring.node_id(pod["metadata"]["uid"]) == node_id
    assert sandbox.milvus.rm.nodes[node_id].labels == {"ZONE": "az1"}


async def test_termination_stops_the_node_gracefully_before_the_pod_goes(
    sandbox: Sandbox, milvus: AsyncMilvusClient
) -> None:
    await sandbox.create_query_node_statefulset(STS, replicas=2)
    nodes = await wait_for(lambda: _has_hosts(milvus, 2), message="two nodes")
    leaving_id = nodes[f"{STS}-1"][0]
    await sandbox.kube.store.patch(STATEFULSETS, NS, STS, {"spec": {"replicas": 1}})
    await wait_for(lambda: _lacks_host(milvus, f"{STS}-1"), message="node left its group")
    # The kubelet purges the pod only after Milvus forgot the node (it holds no data here: at once).
    await wait_for(lambda: _pod_gone(sandbox, f"{STS}-1"), message="pod purged")
    assert sandbox.milvus.rm.node_gone(leaving_id)
    assert set(await default_group_nodes(milvus)) == {f"{STS}-0"}


async def test_pod_with_data_is_purged_only_after_its_node_drained(sandbox_factory: Any) -> None:
    sandbox: Sandbox = await sandbox_factory(balance_delay=1.0)
    client = AsyncMilvusClient(uri=sandbox.milvus.uri)
    try:
        await sandbox.create_query_node_statefulset(STS, replicas=2)
        nodes = await wait_for(lambda: _has_hosts(client, 2), message="two nodes")
        leaving_id = nodes[f"{STS}-1"][0]
        sandbox.milvus.rm.create_collection("books")  # the simulator keeps no schema: create it in-process
        await client.load_collection("books", replica_number=1, timeout=5)
        await wait_for(lambda: _holds_data(sandbox, leaving_id), message="data on the leaving node")
        await sandbox.kube.store.patch(STATEFULSETS, NS, STS, {"spec": {"replicas": 1}})
        await wait_for(lambda: _lacks_host(client, f"{STS}-1"), message="node left its group")
        draining = await sandbox.kube.store.get(PODS, NS, f"{STS}-1")
        assert draining is not None and draining["metadata"]["deletionTimestamp"], "pod waits for the drain"
        assert not sandbox.milvus.rm.node_gone(leaving_id)
        await wait_for(lambda: _pod_gone(sandbox, f"{STS}-1"), timeout=5, message="pod purged")
        assert sandbox.milvus.rm.node_gone(leaving_id)
        assert sandbox.milvus.unserved_segment_seconds() == 0, "a graceful stop hands the data over first"
    finally:
        await client.close()


async def test_lost_pod_leaves_its_segments_unserved_until_reloaded(sandbox: Sandbox) -> None:
    await sandbox.create_query_node_statefulset(STS, replicas=2)
    await wait_for(lambda: len(sandbox.milvus.rm.nodes) == 2, message="two nodes")
    sandbox.milvus.load_collection("books", replica_number=1, segments=4)
    pod = await sandbox.kube.store.get(PODS, NS, f"{STS}-0")
    assert pod is not None
    lost_id = sandbox.wiring.node_id(pod["metadata"]["uid"])
    assert lost_id is not None and _holds_data(sandbox, lost_id)
    sandbox.workloads.delete_pod_now(NS, f"{STS}-0")
    await wait_for(lambda: sandbox.milvus.unserved_segments(), message="segments of the lost node unserved")
    await wait_for(lambda: sandbox.milvus.rm.node_gone(lost_id), timeout=5, message="session expired")
    await wait_for(lambda: not sandbox.milvus.unserved_segments(), timeout=5, message="segments reloaded")
    assert sandbox.milvus.unserved_segment_seconds() > 0


async def test_crash_keeps_the_old_node_until_its_ttl_and_registers_a_new_one(
    sandbox: Sandbox, milvus: AsyncMilvusClient
) -> None:
    await sandbox.create_query_node_statefulset(STS, replicas=1)
    nodes = await wait_for(lambda: _has_hosts(milvus, 1), message="node up")
    old_id = nodes[f"{STS}-0"][0]
    sandbox.workloads.crash_pod(NS, f"{STS}-0")

    async def new_process_registered() -> bool:
        pod = await ready_pod(sandbox, f"{STS}-0")
        new_id = sandbox.wiring.node_id(pod["metadata"]["uid"]) if pod else None
        return new_id is not None and new_id != old_id

    await wait_for(new_process_registered, message="restarted process registered")
    assert not sandbox.milvus.rm.node_gone(old_id), "the crashed session lives until its TTL"
    await wait_for(lambda: sandbox.milvus.rm.node_gone(old_id), timeout=5, message="session expired")


async def test_delete_pod_now_leaves_the_node_until_its_ttl(sandbox: Sandbox, milvus: AsyncMilvusClient) -> None:
    await sandbox.create_query_node_statefulset(STS, replicas=1)
    nodes = await wait_for(lambda: _has_hosts(milvus, 1), message="node up")
    lost_id = nodes[f"{STS}-0"][0]
    lost_pod = await sandbox.kube.store.get(PODS, NS, f"{STS}-0")
    assert lost_pod is not None
    sandbox.workloads.delete_pod_now(NS, f"{STS}-0")
    await wait_for(lambda: _pod_replaced(sandbox, lost_pod), message="pod vanished and recreated")
    assert not sandbox.milvus.rm.node_gone(lost_id)
    await wait_for(lambda: sandbox.milvus.rm.node_gone(lost_id), timeout=5, message="session expired")


async def test_pods_that_are_not_query_nodes_never_register(sandbox: Sandbox) -> None:
    await sandbox.kube.store.create(PODS, {
        "metadata": {"name": "proxy", "namespace": NS, "labels": {"component": "proxy"}},
        "spec": {"containers": [{"name": "proxy", "image": "milvusdb/milvus:v2.5.4",
                                 "command": ["milvus", "run", "proxy"]}]},
    })
    pod = await wait_for(lambda: ready_pod(sandbox, "proxy"), message="proxy pod ready")
    assert sandbox.wiring.node_id(pod["metadata"]["uid"]) is None
    assert sandbox.milvus.rm.nodes == {}


def test_query_node_rule() -> None:
    def pod(labels: dict[str, str] | None = None, **container: Any) -> dict[str, Any]:
        return {"metadata": {"labels": labels or {}}, "spec": {"containers": [{"name": "c", **container}]}}

    assert is_query_node(pod(command=["milvus", "run", "querynode"]))
    assert is_query_node(pod(command=["/bin/sh", "-c"], args=["exec milvus run querynode"]))
    assert is_query_node(pod({"app.kubernetes.io/component": "querynode"}))
    assert is_query_node(pod({"component": "querynode"}))
    assert not is_query_node(pod(command=["milvus", "run", "querynodes"]))
    assert not is_query_node(pod({"component": "proxy"}, command=["milvus", "run", "proxy"]))


async def _has_hosts(client: AsyncMilvusClient, count: int) -> dict[str, tuple[int, str]] | None:
    nodes = await default_group_nodes(client)
    return nodes if len(nodes) == count else None


async def _lacks_host(client: AsyncMilvusClient, hostname: str) -> bool:
    return hostname not in await default_group_nodes(client)


def _holds_data(sandbox: Sandbox, node_id: int) -> bool:
    replicas = sandbox.milvus.rm.replicas.values()
    return any(holding.node == node_id for r in replicas for holding in r.holdings())


async def _pod_gone(sandbox: Sandbox, name: str) -> bool:
    return await sandbox.kube.store.get(PODS, NS, name) is None


async def _pod_replaced(sandbox: Sandbox, old: dict[str, Any]) -> bool:
    pod = await sandbox.kube.store.get(PODS, NS, old["metadata"]["name"])
    return pod is not None and pod["metadata"]["uid"] != old["metadata"]["uid"]
