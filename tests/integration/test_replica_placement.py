"""Declared replica placement: a tenant's collection replicas placed in its groups from git, through scaling
and a move between groups, with every segment served by some replica throughout (the invariant checker's data
check: `segments_served_nowhere`)."""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.adapters.kube import RESOURCE_GROUP_PLURAL
from tests.integration.harness import OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.integration.invariants import InvariantChecker
from tests.support import wait_for

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"
# Slower moves than the fast default (each segment or channel takes 0.1 s): a transfer or a drain that did not
# wait for the data would leave a segment served by no replica for a moment, and the checker would see it.
SLOW_DATA = {"balance_delay": 0.1, "load_time": 0.1}


def tenant(rg_a: int, rg_b: int, books_a: int | None, books_b: int | None) -> tuple[dict[str, Any], ...]:
    """The tenant's manifests: rg-a and rg-b with their requests and their replicas of books (None: none)."""
    def group(name: str, requests: int, books: int | None) -> dict[str, Any]:
        declared = [] if books is None else [{"name": "books", "replicas": books, "loadIfReleased": True}]
        return group_manifest(name, requests, collections=declared)

    return pool_manifest(), group("rg-a", rg_a, books_a), group("rg-b", rg_b, books_b)


def replicas_in(harness: OperatorHarness) -> dict[str, int]:
    """Milvus group -> replicas of books it holds (describe_resource_group's num_loaded_replica)."""
    rm = harness.sandbox.milvus.rm
    with harness.sandbox.milvus.controls.lock:
        return {name: rm.describe_resource_group(name).num_loaded_replica.get("books", 0)
                for name in rm.groups if rm.describe_resource_group(name).num_loaded_replica.get("books")}


def record_transfers(harness: OperatorHarness) -> list[tuple[str, int]]:
    """(target group, its nodes) at each transfer_replica Milvus receives."""
    rm = harness.sandbox.milvus.rm
    seen: list[tuple[str, int]] = []
    transfer = rm.transfer_replica

    def recording(source: str, target: str, collection: str, replicas: int) -> None:
        seen.append((target, rm.node_num(rm.groups[target]) if target in rm.groups else 0))
        transfer(source, target, collection, replicas)

    rm.transfer_replica = recording
    return seen


async def placed(harness: OperatorHarness, expected: dict[str, int]) -> bool:
    """Milvus holds the replicas as `expected`, their data has moved (no node in or out), and every group reports
    Ready."""
    if replicas_in(harness) != expected:
        return False
    for name in ("rg-a", "rg-b"):
        group = await harness.get(RESOURCE_GROUP_PLURAL, name) or {}
        rows = {r["collection"]: r for r in (group.get("status") or {}).get("collections") or []}
        row = rows.get("books", {})
        if row.get("incomingNodes") or row.get("outgoingNodes"):
            return False
        if not await harness.true_condition("Ready", kind_plural=RESOURCE_GROUP_PLURAL, name=name):
            return False
    return True


async def test_a_tenants_replicas_follow_git_through_scaling_and_a_move(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, **SLOW_DATA) as harness:
        milvus = harness.sandbox.milvus
        milvus.create_collection("books", segments=8, channels=2)  # released: the spec loads it
        transfers_seen = record_transfers(harness)
        async with InvariantChecker(harness.sandbox, groups=("rg_a", "rg_b")) as checker:
            # 1. From git: books 2 replicas in rg-a, 1 in rg-b (loaded, as both groups say loadIfReleased).
            await harness.apply(*tenant(2, 1, 2, 1))
            await harness.wait_converged({"rg_a": 2, "rg_b": 1, DEFAULT: 0, PENDING: 0}, replicas=3, timeout=60)
            await wait_for(lambda: placed(harness, {"rg_a": 2, "rg_b": 1}), timeout=30,
                           message="books 2 in rg_a, 1 in rg_b")
            status = (await harness.get(RESOURCE_GROUP_PLURAL, "rg-a") or {})["status"]
            assert status["collections"][0] | {"collection": "books"} == {
                "collection": "books", "declaredReplicas": 2, "loadedReplicas": 2, "outgoingNodes": 0,
                "incomingNodes": 0}
            assert all(m["segments"] > 0 for m in status["members"]), status["members"]

            # 2. rg-a scales out (2 -> 4) and back in (4 -> 2), books staying where it is.
            await harness.apply(*tenant(4, 1, 2, 1))
            await harness.wait_converged({"rg_a": 4, "rg_b": 1, PENDING: 0}, replicas=5, timeout=60)
            await harness.apply(*tenant(2, 1, 2, 1))
            await harness.wait_converged({"rg_a": 2, "rg_b": 1, PENDING: 0}, replicas=3, timeout=90)
            await wait_for(lambda: placed(harness, {"rg_a": 2, "rg_b": 1}), timeout=30, message="still placed")

            # 3. The replica in rg-b moves to rg-a by editing the spec: rg-a gets its third node first.
            await harness.apply(*tenant(3, 1, 3, None))
            await harness.wait_converged({"rg_a": 3, "rg_b": 1, PENDING: 0}, replicas=4, timeout=60)
            await wait_for(lambda: placed(harness, {"rg_a": 3}), timeout=60, message="books 3 in rg_a")
        checker.assert_ok()
        assert milvus.segments_served_nowhere() == []
        transfers = [a for _, report in harness.reports for a in report.actions
                     if type(a).__name__ == "TransferReplica"]
        assert [(a.source_group, a.target_group, a.replicas) for a in transfers] == [("rg_b", "rg_a", 1)]
        assert transfers_seen == [("rg_a", 3)], "rg_a had a node for each of its 3 replicas before the move"
        loads = [a for _, report in harness.reports for a in report.actions if type(a).__name__ == "LoadCollection"]
        assert [(a.replicas, a.groups) for a in loads] == [(3, ("rg_a", "rg_a", "rg_b"))]
