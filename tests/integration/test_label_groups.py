"""Milvus 2.6.8+: a query node started with MILVUS_SERVER_LABEL_RESOURCE_GROUP joins that group, creating it. The
operator observes such a group (reported, never written), adopts it as it is when a ResourceGroup declares it,
scales the pool's labelled pods like any other, and never asks Milvus to drop a group its pods are labelled with."""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from milvus_rg_operator.core import actions as core_actions
from tests.integration.harness import OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

PENDING = "__pending_nodes"
LABELLED = {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "static_rg"}


def milvus_actions(harness: OperatorHarness) -> list[core_actions.Action]:
    return [a for _, report in harness.reports for a in report.actions if isinstance(a, core_actions.MILVUS_ACTIONS)]


def writes_to(harness: OperatorHarness, group: str) -> list[str]:
    """The operator's Milvus writes that name `group`."""
    return [a.summary for a in milvus_actions(harness) if group in a.summary.split()
            or (isinstance(a, core_actions.UpdateGroups) and group in a.configs)]


async def observed_groups(harness: OperatorHarness) -> list[dict[str, Any]]:
    pool = await harness.get(POOL_PLURAL, "milvus") or {}
    return list((pool.get("status") or {}).get("observedGroups") or [])


async def test_a_group_made_by_node_labels_is_observed_then_adopted_and_its_drop_waits_for_the_label(
        sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=2, env=LABELLED, milvus_version="v2.6.20") as harness:
        assert set(await harness.placement()) >= {"static_rg"}  # Milvus made it for the labelled nodes
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        # The pool sizes for rg1 only: Milvus moves a node of static_rg (requests 0) into rg1, the other pod goes.
        await harness.wait_converged({"rg1": 1, "static_rg": 0, PENDING: 0}, replicas=1)
        rows = await wait_for(lambda: observed_groups(harness), timeout=10, message="static_rg observed")
        assert [row["name"] for row in rows] == ["static_rg"]
        (warning,) = await wait_for(lambda: harness.events("UndeclaredGroup"), timeout=10, message="one Warning")
        assert warning.type == "Warning" and "static_rg" in warning.message
        assert "MILVUS_SERVER_LABEL_RESOURCE_GROUP label of milvus-querynode-" in warning.message
        assert writes_to(harness, "static_rg") == []

        # Declared exactly as Milvus has it: adopted, not one Milvus write.
        writes_before = harness.milvus_writes()
        await harness.apply(group_manifest("static", 0, groupName="static_rg", limits={"nodeNum": 1_000_000},
                                           transferFrom=[], transferTo=[]))
        adopted = await wait_for(lambda: harness.events("GroupAdopted"), timeout=10, message="static_rg adopted")
        assert "ResourceGroup static declares Milvus group static_rg" in adopted[0].message
        await wait_for(lambda: harness.true_condition("Ready", kind_plural=RESOURCE_GROUP_PLURAL, name="static"),
                       timeout=10, message="static Ready")
        await harness.resync_passes(2)
        assert harness.milvus_writes() == writes_before and await observed_groups(harness) == []
        assert len(await harness.events("UndeclaredGroup")) == 1  # once per transition

        # Its spec changes: one update; the new pod carries the label and joins static_rg itself.
        await harness.apply(group_manifest("static", 1, groupName="static_rg"))
        await harness.wait_converged({"rg1": 1, "static_rg": 1, PENDING: 0}, replicas=2)
        assert len(writes_to(harness, "static_rg")) == 1

        # Deleting it: emptied, but Milvus (2.6.8+) keeps a group a live node is labelled with: no drop is tried.
        await harness.delete(RESOURCE_GROUP_PLURAL, "static")
        blocked = await wait_for(lambda: harness.true_condition("Degraded", ("GroupDeletionBlocked",),
                                                                RESOURCE_GROUP_PLURAL, "static"),
                                 timeout=20, message="deletion blocked by the label")
        assert "MILVUS_SERVER_LABEL_RESOURCE_GROUP" in blocked["message"] and "milvus-querynode-0" in blocked["message"]

        async def scaled_in() -> bool:
            return await harness.replicas() == 1

        await wait_for(scaled_in, timeout=20, message="scaled in to rg1's node")
        await harness.resync_passes(2)
        assert harness.sandbox.milvus.write_rpcs.get("DropResourceGroup", 0) == 0
        assert all(report.result != "failed" for _, report in harness.reports)
