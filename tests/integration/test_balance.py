"""Balance you can see and balance you can start: after a scale-out the new nodes of a replica hold nothing
until Milvus moves data onto them; the group says so (Balanced, status.members, status.balance, the metrics),
a pool with `scaleOutWaitsForData` is not Ready until they serve, and an annotation starts a balance that moves
sealed segments with LoadBalance. Every segment stays served by its replica throughout."""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from milvus_rg_operator.api.models import ANNOTATION_BALANCE
from milvus_rg_operator.metrics import OperatorMetrics
from tests.integration.harness import OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.integration.invariants import InvariantChecker
from tests.support import wait_for

PENDING = "__pending_nodes"
SEGMENTS = 8
WAITING_POOL = pool_manifest(balance={"scaleOutWaitsForData": True, "idleNodeSeconds": 0})


async def loaded_group(harness: OperatorHarness) -> None:
    """rg1 with one node holding books (one replica, 8 segments, 1 channel)."""
    await harness.apply(WAITING_POOL, group_manifest("rg1", 1))
    await harness.wait_converged({"rg1": 1, PENDING: 0}, replicas=1)
    harness.sandbox.milvus.load_collection("books", replica_number=1, resource_groups=["rg1"],
                                           segments=SEGMENTS, channels=1)


async def group_status(harness: OperatorHarness) -> dict[str, Any]:
    return dict(((await harness.get(RESOURCE_GROUP_PLURAL, "rg1")) or {}).get("status") or {})


async def members_hold(harness: OperatorHarness, count: int) -> list[dict[str, Any]] | None:
    """status.members once it lists `count` nodes and each one holds a segment."""
    members = (await group_status(harness)).get("members") or []
    return members if len(members) == count and all(m.get("segments") for m in members) else None


async def test_a_requested_balance_moves_data_onto_new_nodes(sandbox_factory: Any) -> None:
    metrics = OperatorMetrics()
    async with operator_on_sandbox(sandbox_factory, metrics=metrics, no_auto_balance=True) as harness:
        await loaded_group(harness)
        async with InvariantChecker(harness.sandbox, groups=("rg1",)) as checker:
            await harness.apply(group_manifest("rg1", 3))

            async def idle_and_waiting() -> bool:
                balanced = await harness.condition(RESOURCE_GROUP_PLURAL, "rg1", "Balanced")
                waiting = await harness.condition(POOL_PLURAL, "milvus", "Progressing")
                return bool(balanced and balanced["status"] == "False" and balanced["reason"] == "IdleNodes"
                            and waiting and waiting["reason"] == "WaitingForData")

            await wait_for(idle_and_waiting, timeout=30, message="rg1 Balanced=False (IdleNodes), pool WaitingForData")
            status = await group_status(harness)
            assert status["balance"] == {"idleNodes": 2, "memorySpreadPercent": 100}
            assert sorted(m["segments"] for m in status["members"]) == [0, 0, SEGMENTS]
            ready = await harness.condition(POOL_PLURAL, "milvus", "Ready")
            assert ready is not None and ready["status"] == "False"

            await harness.patch(RESOURCE_GROUP_PLURAL, "rg1", {"metadata": {"annotations": {ANNOTATION_BALANCE: "t1"}}})
            await harness.wait_converged({"rg1": 3, PENDING: 0}, replicas=3)
        checker.assert_ok()
        members = (await group_status(harness))["members"]
        assert sorted(m["segments"] for m in members) == [2, 3, 3], members
        request = (await group_status(harness))["balanceRequest"]
        assert request["token"] == "t1" and request["phase"] == "Succeeded" and request["moves"] >= 5, request
        balanced = await harness.condition(RESOURCE_GROUP_PLURAL, "rg1", "Balanced")
        assert balanced is not None and balanced["status"] == "True", balanced
        assert harness.sandbox.milvus.write_rpcs["LoadBalance"] == request["moves"]
        assert {e.reason for e in await harness.events() if e.involved_object.name == "rg1"} >= {
            "BalanceStarted", "BalanceSucceeded"}
        # The same token again asks for nothing: it was answered.
        writes = harness.milvus_writes()
        await harness.resync_passes(2)
        assert harness.milvus_writes() == writes
        pods = {m["pod"] for m in members}
        assert sum(metrics.registry.get_sample_value("milvusrg_node_segments", {
            "pool": "default/milvus", "group": "rg1", "pod": pod}) or 0 for pod in pods) == SEGMENTS


async def test_milvus_balances_new_nodes_by_itself(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await loaded_group(harness)
        async with InvariantChecker(harness.sandbox, groups=("rg1",)) as checker:
            await harness.apply(group_manifest("rg1", 3))
            await wait_for(lambda: members_hold(harness, 3), timeout=30, message="every node holds data")
            await harness.wait_converged({"rg1": 3, PENDING: 0}, replicas=3)
        checker.assert_ok()
        assert harness.sandbox.milvus.write_rpcs["LoadBalance"] == 0, "Milvus's own balance checker moved the data"
