"""Milvus versions the operator cannot (fully) work with: refused before any write, or no drain started.

The simulator answers as those versions do (see docs/sandbox.md): < 2.4.1 has no UpdateResourceGroups
(gRPC UNIMPLEMENTED) and drops configs on create; 2.4.1-2.4.9 keep a suspended node in its group.
"""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from tests.integration.harness import STATEFULSET, OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"


async def test_milvus_older_than_2_4_1_is_refused_before_any_write(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=1, milvus_version="v2.3.5") as harness:
        placement_before = await harness.placement()
        await harness.apply(pool_manifest(), group_manifest("rg1", 2))
        degraded = await wait_for(lambda: harness.true_condition("Degraded", ("UnsupportedMilvusVersion",)),
                                  timeout=15, message="pool refuses Milvus 2.3.5")
        assert "2.3.5" in degraded["message"] and "2.4.1" in degraded["message"]
        await harness.resync_passes(3)
        assert harness.milvus_writes() == 0
        assert await harness.placement() == placement_before  # no __pending_nodes, no rg1
        assert await harness.replicas() == 1
        events = await harness.events("UnsupportedMilvusVersion")  # once per object, not once per pass
        assert sorted((e.involved_object.kind, e.involved_object.name) for e in events) == [
            ("QueryNodePool", "milvus"), ("ResourceGroup", "rg1")]
        assert all(e.type == "Warning" and "2.3.5" in e.message for e in events)
        group = await harness.condition(RESOURCE_GROUP_PLURAL, "rg1", "Degraded")
        assert group is not None and group["status"] == "True" and "2.3.5" in group["message"]


def group_of_pod(harness: OperatorHarness, placement: dict[str, list[str]], pod: str) -> str:
    return next(group for group, pods in placement.items() if pod in pods)


async def test_milvus_2_4_5_scales_out_but_starts_no_drain(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=1, milvus_version="v2.4.5") as harness:
        await harness.apply(pool_manifest(), group_manifest("default", 0, groupName=DEFAULT),
                            group_manifest("rg1", 1), group_manifest("rg2", 1))
        await harness.wait_converged({"rg1": 1, "rg2": 1, PENDING: 0}, replicas=2)
        placement = await harness.placement()
        victim = f"{STATEFULSET}-1"
        # Empty the group the victim does NOT serve: the victim keeps serving and would need a drain.
        other = "rg1" if group_of_pod(harness, placement, victim) == "rg2" else "rg2"
        await harness.apply(group_manifest(other, 0))
        blocked = await wait_for(lambda: harness.true_condition("Degraded", ("DrainUnsupported",)), timeout=20,
                                 message="scale-in blocked: no drain on 2.4.5")
        assert "2.4.5" in blocked["message"] and victim in blocked["message"]
        await harness.resync_passes(3)
        assert harness.sandbox.milvus.write_rpcs.get("suspend", 0) == 0
        assert await harness.replicas() == 2
        pool = await harness.get(POOL_PLURAL, "milvus") or {}
        assert not pool["status"]["scaleDown"]["draining"]
