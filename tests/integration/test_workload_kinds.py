"""The operator where users run their query nodes: a StatefulSet, the Milvus Helm chart's Deployment and
milvus-operator's `Milvus` (two blue/green Deployments), on both Kubernetes backends.

For each: adoption restarts no pod and changes no pod template; a scale-out and a scale-in with collections
loaded remove no pod while its node serves or holds data (the invariant checker); a ReplicaSet removes the pods
the operator chose through pod-deletion-cost (no UnexpectedRemoval)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from milvus_rg_operator.adapters.kube import POOL_PLURAL
from milvus_rg_operator.core.workloads import DELETION_COST
from tests.integration.harness import NAMESPACE, SHAPES, OperatorHarness, group_manifest, operator_on_sandbox
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
