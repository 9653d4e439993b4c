"""The Milvus docs' "good practice to manage cluster scaling", done by the operator on the sandbox."""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.api.models import LABEL_RESOURCE_GROUP, LABEL_STATE
from tests.integration.harness import group_manifest, operator_on_sandbox, pool_manifest

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"


async def test_docs_practice_end_to_end(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        # init_cluster(1): one query node in the default group, rg1 and rg2 empty.
        await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                            group_manifest("rg1", 0), group_manifest("rg2", 0))
        await harness.wait_converged({DEFAULT: 1, "rg1": 0, "rg2": 0, PENDING: 0}, replicas=1)

        # rg1 -> 3, rg2 -> 1: configs first, then the StatefulSet grows to 5.
        await harness.apply(group_manifest("rg1", 3), group_manifest("rg2", 1))
        await harness.wait_converged({DEFAULT: 1, "rg1": 3, "rg2": 1, PENDING: 0}, replicas=5)

        # rg1 -> 2: Milvus moves a node to pending; only a pod that serves no group is removed.
        await harness.apply(group_manifest("rg1", 2))
        await harness.wait_converged({DEFAULT: 1, "rg1": 2, "rg2": 1, PENDING: 0}, replicas=4)
        config = await harness.group_config("rg1")
        assert [t.resource_group for t in config.transfer_from] == [PENDING]
        assert config.requests.node_num == config.limits.node_num == 2


async def test_steady_state_writes_nothing_and_lists_nothing(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, PENDING: 0}, replicas=2)
        await harness.resync_passes(2)  # let a pass that was already under way finish
        kube_before, milvus_before = harness.kube_writes(), harness.milvus_writes()
        lists_before = len(harness.operator_lists())
        await harness.resync_passes(3)
        assert harness.kube_writes() == kube_before, harness.sandbox.kube.mutations[kube_before:]
        assert harness.milvus_writes() == milvus_before
        # Pods and groups come from the watch-fed caches: a pass at rest LISTs neither.
        assert harness.operator_lists()[lists_before:] == []


async def test_labels_are_checked_by_value_and_a_wrong_one_is_repaired(sandbox_factory: Any) -> None:
    """`converged` compares each pod's group, node-id and state labels with Milvus's placement: one pod
    mislabelled on purpose makes it false, and the operator's next pass puts the truth back."""
    async with operator_on_sandbox(sandbox_factory, replicas=1) as harness:
        await harness.apply(pool_manifest(spareNodes=1), group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, PENDING: 1}, replicas=3)
        placement = await harness.node_placement()
        victim = next(pod for pod, (group, _) in sorted(placement.items()) if group == "rg1")
        await harness.label_pod(victim, {LABEL_RESOURCE_GROUP: "pending_nodes", LABEL_STATE: "pending"})
        wrong = await harness.mislabelled()
        assert list(wrong) == [victim], wrong
        assert not await harness.converged({"rg1": 2, PENDING: 1}, replicas=3)

        await harness.resync_passes(1)
        await harness.wait_converged({"rg1": 2, PENDING: 1}, replicas=3)
        assert await harness.mislabelled() == {}
