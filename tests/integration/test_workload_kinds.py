"""The operator where users run their query nodes: a StatefulSet, the Milvus Helm chart's Deployment and
milvus-operator's `Milvus` (two blue/green Deployments), on both Kubernetes backends.

For each: adoption restarts no pod and changes no pod template; a scale-out and a scale-in with collections
loaded remove no pod while its node serves or holds data (the invariant checker); a ReplicaSet removes the pods
the operator chose through pod-deletion-cost (no UnexpectedRemoval)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from milvus_rg_operator.core.workloads import DELETION_COST
from tests.integration.harness import (
    NAMESPACE,
    SHAPES,
    OperatorHarness,
    group_manifest,
    operator_on_sandbox,
    pool_manifest,
)
from tests.integration.invariants import InvariantChecker
from tests.support import wait_for

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"
KINDS = list(SHAPES)


async def pod_identities(harness: OperatorHarness) -> dict[str, str]:
    return {pod.metadata.name: pod.metadata.uid for pod in await harness.pods() if not pod.metadata.deletion_timestamp}


async def workload_template(harness: OperatorHarness) -> Any:
    shape = harness.shape
    if shape.kind == "Milvus":
        milvus = await asyncio.to_thread(harness.custom.get_namespaced_custom_object, "milvus.io", "v1beta1",
                                         NAMESPACE, "milvuses", shape.workload)
        return {k: v for k, v in milvus["spec"]["components"].items() if k != "queryNode"}
    read = (harness.apps.read_namespaced_stateful_set if shape.kind == "StatefulSet"
            else harness.apps.read_namespaced_deployment)
    return harness.api.sanitize_for_serialization((await asyncio.to_thread(read, shape.workload, NAMESPACE))
                                                  .spec.template)


def load_collections(harness: OperatorHarness) -> None:
    milvus = harness.sandbox.milvus
    milvus.load_collection("books", replica_number=2, resource_groups=["rg1"], segments=6, channels=2)
    milvus.load_collection("films", replica_number=1, resource_groups=["rg2"], segments=4, channels=1)


@pytest.mark.parametrize("shape", KINDS)
async def test_adopting_a_workload_restarts_no_pod_and_changes_no_template(sandbox_factory: Any, shape: str) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=3, shape=shape) as harness:
        await wait_for(lambda: harness.milvus_node_count() == 3, timeout=30, message="3 query nodes")
        before, template = await pod_identities(harness), await workload_template(harness)
        await harness.apply(harness.pool(), group_manifest("default", 1, groupName=DEFAULT), group_manifest("rg1", 2))
        await harness.wait_converged({DEFAULT: 1, "rg1": 2, PENDING: 0}, replicas=3)
        await harness.resync_passes(2)
        assert await pod_identities(harness) == before
        assert await workload_template(harness) == template
        assert await harness.mislabelled() == {}


@pytest.mark.parametrize("shape", KINDS)
async def test_scale_out_and_in_with_data_loaded_removes_no_pod_that_serves(sandbox_factory: Any,
                                                                            shape: str) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=3, shape=shape, seed=3, balance_delay=0.2) as harness:
        await harness.apply(harness.pool(), group_manifest("default", 1, groupName=DEFAULT),
                            group_manifest("rg1", 2), group_manifest("rg2", 1))
        await harness.wait_converged({DEFAULT: 1, "rg1": 2, "rg2": 1}, replicas=4, timeout=60)
        load_collections(harness)
        await wait_for(lambda: not harness.sandbox.milvus.unserved_segments(), timeout=30, message="data loaded")
        # Held to the requests before the scale-out and after the scale-in: never below, at any moment.
        async with InvariantChecker(harness.sandbox, groups={DEFAULT: 1, "rg1": 2, "rg2": 1},
                                    pending=PENDING) as checker:
            await harness.apply(group_manifest("rg1", 4))
            await harness.wait_converged({DEFAULT: 1, "rg1": 4, "rg2": 1}, replicas=6, timeout=60)
            await harness.apply(group_manifest("rg1", 2))
            await harness.wait_converged({DEFAULT: 1, "rg1": 2, "rg2": 1}, replicas=4, timeout=90)
        checker.assert_ok()
        assert len(checker.removed) == 2, checker.removed
        assert all(group is None for _, group in checker.removed), checker.removed
        assert not await harness.events("UnexpectedRemoval")
        if SHAPES[shape].kind != "StatefulSet":  # the pods of a ReplicaSet carry the cost the operator set
            assert all(DELETION_COST in (pod.metadata.annotations or {}) for pod in await harness.pods())
        pool = await harness.get(POOL_PLURAL, "milvus") or {}
        assert not ((pool.get("status") or {}).get("scaleDown") or {}).get("removing"), pool.get("status")


@pytest.mark.parametrize("milvus_version", ["v2.5.16", "v2.6.8"])
async def test_a_group_with_its_own_deployment_beside_groups_of_the_pool(sandbox_factory: Any,
                                                                         milvus_version: str) -> None:
    """One workload per group (the Helm chart's replicaResourceGroups): `gpu` is served by its own Deployment,
    whose pods carry MILVUS_SERVER_LABEL_RESOURCE_GROUP=gpu (2.5: a node filter keeps them there; 2.6.8: Milvus
    places them by it), beside rg1 served from the pool's StatefulSet. Each workload is scaled to its groups'
    requests; a scale-in of gpu drains and removes only gpu's pods, none while it serves."""
    async with operator_on_sandbox(sandbox_factory, replicas=1, milvus_version=milvus_version,
                                   seed=3) as harness:
        gpu = (await harness.sandbox.create_query_node_deployment(replicas=1, resource_group="gpu"))["metadata"]["name"]
        await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                            group_manifest("rg1", 1),
                            group_manifest("gpu", 2, scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment",
                                                                     "name": gpu}))
        await harness.wait_converged({DEFAULT: 1, "rg1": 1, "gpu": 2}, replicas=2, timeout=60)

        async def gpu_pods() -> list[str]:
            pods = await asyncio.to_thread(harness.core.list_namespaced_pod, NAMESPACE,
                                           label_selector="milvus.io/resource-group=gpu")
            return sorted(p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp)

        placement = await harness.placement()
        assert placement["gpu"] == await gpu_pods() and len(placement["gpu"]) == 2
        assert not set(placement["rg1"]) & set(placement["gpu"])
        config = await harness.group_config("gpu")
        assert [(kv.key, kv.value) for kv in config.node_filter.node_labels] == [("RESOURCE_GROUP", "gpu")]

        harness.sandbox.milvus.load_collection("books", replica_number=1, resource_groups=["gpu"], segments=4,
                                               channels=1)
        await wait_for(lambda: not harness.sandbox.milvus.unserved_segments(), timeout=30, message="data loaded")
        async with InvariantChecker(harness.sandbox, groups={DEFAULT: 1, "rg1": 1, "gpu": 1},
                                    pending=PENDING) as checker:
            await harness.apply(group_manifest("gpu", 3, scaleTargetRef={"apiVersion": "apps/v1",
                                                                         "kind": "Deployment", "name": gpu}))
            await wait_for(lambda: harness.placement_of("gpu", 3), timeout=60, message="gpu at 3 nodes")
            await harness.apply(group_manifest("gpu", 1, scaleTargetRef={"apiVersion": "apps/v1",
                                                                         "kind": "Deployment", "name": gpu}))
            await wait_for(lambda: harness.placement_of("gpu", 1), timeout=60, message="gpu at 1 node")
            await wait_for(lambda: gpu_pods_count(harness, gpu, 1), timeout=60, message="gpu's Deployment at 1")
        checker.assert_ok()
        assert {group for _, group in checker.removed} <= {None}, checker.removed
        assert await harness.replicas() == 2  # the pool's StatefulSet is untouched

        async def gpu_status() -> Any:
            group = await harness.get(RESOURCE_GROUP_PLURAL, "gpu") or {}
            return (group.get("status") or {}).get("workload") == {"kind": "Deployment", "name": gpu, "replicas": 1,
                                                                   "readyReplicas": 1}

        await wait_for(gpu_status, timeout=20, message="gpu's status showing its Deployment at 1")


async def gpu_pods_count(harness: OperatorHarness, deployment: str, replicas: int) -> bool:
    found = await asyncio.to_thread(harness.apps.read_namespaced_deployment, deployment, NAMESPACE)
    pods = await asyncio.to_thread(harness.core.list_namespaced_pod, NAMESPACE,
                                   label_selector="milvus.io/resource-group=gpu")
    live = [p for p in pods.items if not p.metadata.deletion_timestamp]
    return bool(found.spec.replicas == replicas and len(live) == replicas)
