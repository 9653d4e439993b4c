"""The real StatefulSet controller's scale-down (Parallel and OrderedReady) under the operator's drain
protocol, with the invariant checker (fed by the real API's watch on this backend): no pod whose node serves
a group gets a deletionTimestamp, no watched group stays below its requests longer than Milvus's recovery time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from milvus_rg_operator.api.crds import render_crds
from milvus_rg_operator.manifests import apply_manifests
from milvus_rg_sandbox.sandbox import query_node_statefulset
from milvus_rg_sandbox.workloads import STATEFULSETS
from tests.integration.harness import NAMESPACE, STATEFULSET, OperatorHarness, group_manifest
from tests.integration.invariants import InvariantChecker
from tests.integration.test_scale_in_safety import PENDING, assert_no_node_left_out, declared_requests, scale_out
from tests.support import wait_for

pytestmark = pytest.mark.parametrize("kube_backend", ["real"], indirect=True)
SCALED_IN = {"__default_resource_group": 1, "rg1": 1, "rg2": 1, PENDING: 0}


async def operator_with_statefulset(sandbox: Any, policy: str) -> OperatorHarness:
    harness = OperatorHarness(sandbox)
    await apply_manifests(harness.api, render_crds())
    manifest = query_node_statefulset(STATEFULSET, 1, NAMESPACE)
    manifest["spec"]["podManagementPolicy"] = policy
    await sandbox.kube.store.create(STATEFULSETS, manifest)
    await wait_for(lambda: harness.milvus_node_count() == 1, timeout=30, message="1 query node")
    await harness.start_operator()
    return harness


@pytest.mark.parametrize("policy", ["Parallel", "OrderedReady"])
async def test_scale_down_by_the_real_statefulset_controller_keeps_capacity(sandbox_factory: Any,
                                                                            policy: str) -> None:
    sandbox = await sandbox_factory(seed=5)
    harness = await operator_with_statefulset(sandbox, policy)
    try:
        await scale_out(harness)
        started = time.monotonic()
        async with InvariantChecker(sandbox, groups=declared_requests(SCALED_IN), pending=PENDING) as checker:
            await harness.apply(group_manifest("rg1", 1))
            await harness.wait_converged(SCALED_IN, replicas=3, timeout=90)
        checker.assert_ok()
        removed = sorted(pod for pod, _ in checker.removed)
        assert removed == [f"{STATEFULSET}-3", f"{STATEFULSET}-4"], checker.removed
        assert all(group is None for _, group in checker.removed), f"removed while serving: {checker.removed}"
        assert_no_node_left_out(harness)
        print(f"{policy}: scaled in 5 -> 3 in {time.monotonic() - started:.1f} s, {checker.samples} samples")
    finally:
        await harness.close()
