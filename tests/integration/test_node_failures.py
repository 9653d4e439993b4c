"""Query nodes that crash or vanish: Milvus refills the group from the pending group's spares, the
pool shows it, and the operator restores the spare count."""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.adapters.kube import POOL_PLURAL
from tests.integration.harness import NAMESPACE, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

PENDING = "__pending_nodes"


async def _serving_pod(harness: Any, group: str) -> str:
    return str((await harness.placement())[group][0])


async def _member_states(harness: Any) -> set[str]:
    pool = await harness.get(POOL_PLURAL, "milvus")
    return {c["state"] for c in ((pool or {}).get("status") or {}).get("memberCounts", []) if c["count"]}


async def test_crashed_node_is_replaced_from_spares_and_the_spare_comes_back(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(spareNodes=1), group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, PENDING: 1}, replicas=3)
        victim = await _serving_pod(harness, "rg1")
        harness.sandbox.workloads.crash_pod(NAMESPACE, victim)
        # The restarted process is a new node; once the old session expires Milvus refills rg1.
        await harness.wait_converged({"rg1": 2, PENDING: 1}, replicas=3, timeout=30)
        assert await _member_states(harness) <= {"Serving", "Pending"}


async def test_vanished_pod_is_recreated_and_the_pool_converges_again(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(spareNodes=1), group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, PENDING: 1}, replicas=3)
        victim = await _serving_pod(harness, "rg1")
        rm = harness.sandbox.milvus.rm
        lost = next(node_id for node_id, node in rm.nodes.items() if node.hostname == victim)
        harness.sandbox.workloads.delete_pod_now(NAMESPACE, victim)
        # The node stays until its session expires; then Milvus refills rg1 and the recreated pod
        # registers as a new node.
        await wait_for(lambda: rm.node_gone(lost), timeout=30, message="the lost node's session expired")
        await harness.wait_converged({"rg1": 2, PENDING: 1}, replicas=3, timeout=30)


async def test_a_pod_that_never_becomes_ready_is_reported_and_not_counted(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        harness.sandbox.workloads.never_ready(NAMESPACE, "milvus-querynode-2")
        await harness.apply(pool_manifest(podReadyTimeoutSeconds=1), group_manifest("rg1", 3))
        degraded = await wait_for(lambda: harness.true_condition("Degraded", ("PodsNotReady",)), timeout=20,
                                  message="Degraded: PodsNotReady")
        assert "milvus-querynode-2" in degraded["message"]
        assert "milvus-querynode-2" not in (await harness.placement()).get("rg1", [])
        ready = await harness.condition(POOL_PLURAL, "milvus", "Ready")
        assert ready is not None and ready["status"] == "False"
