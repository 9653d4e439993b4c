"""Relocation: a node of a group's own workload that Milvus placed in another group (a group without node labels
accepts any node) is drained out of it, replacement first, and resumed for Milvus to place it anew."""

from __future__ import annotations

from dataclasses import replace

from milvus_rg_operator.core import scaling
from milvus_rg_operator.core.types import DrainRecord, PodState, WorkloadState
from tests.core.strategies import PENDING, STS, STS_REF
from tests.core.test_scaling import NOW, POOL, group, plan_scale, pods, state, suspended

GROUPS = [group("__default_resource_group", 1), group("rg1", 1), group("gpu", 2)]
GPU = WorkloadState(STS_REF, 2, 2)  # the gpu group's own workload: pods 0 and 1
POOL_POD = PodState(f"{STS}-5", 5, ready=True, terminating=False, ip="10.0.0.5")  # of the pool's workload


def relocation(placement: dict[str, list[int]], drains: tuple[DrainRecord, ...] = (), *, own_group: str | None = "gpu",
               desired: int = 2, milvus_plan_empty: bool = True, suspended_node: int | None = None
               ) -> scaling.ScalePlan:
    milvus = state(placement)
    if suspended_node is not None:
        milvus = replace(milvus, nodes={**milvus.nodes, suspended_node: suspended(suspended_node, 0, 0)})
    return plan_scale(POOL, GROUPS, desired, GPU, pods(2), milvus, drains, milvus_plan_empty=milvus_plan_empty,
                      now=NOW, own_group=own_group, others=[POOL_POD])


MISPLACED = {"__default_resource_group": [4], "rg1": [0], "gpu": [1], PENDING: [5]}


def test_a_node_of_a_groups_workload_serving_another_group_is_drained_out_replacement_first() -> None:
    result = relocation(MISPLACED)
    assert [(d.pod, d.group, d.phase, d.relocate) for d in result.drains] == [(f"{STS}-0", "rg1", "Surging", True)]
    assert scaling.surge_of(result.drains) == {"rg1": 1}
    assert result.replicas is None and result.suspend == () and not result.victims
    assert [reason for _, reason, _ in result.events] == ["Relocating"]

    surged = relocation({"__default_resource_group": [4], "rg1": [0, 5], "gpu": [1]}, result.drains)
    assert surged.suspend == (0,) and [d.phase for d in surged.drains] == ["Suspending"]


def test_a_relocated_node_is_resumed_once_drained_and_its_record_dropped() -> None:
    record = DrainRecord(f"{STS}-0", 0, "rg1", NOW - 5, "Suspending", relocate=True)
    moving = relocation({"__default_resource_group": [4], "rg1": [], "gpu": [1], PENDING: [5]}, (record,),
                        suspended_node=0)
    assert [d.phase for d in moving.drains] == ["WaitingForReplacement"] and moving.resume == ()

    done = relocation({"__default_resource_group": [4], "rg1": [5], "gpu": [1]}, (record,), suspended_node=0)
    assert done.resume == (0,) and done.drains == () and done.replicas is None
    assert "Relocated" in [reason for _, reason, _ in done.events]


def test_the_pools_own_workload_is_never_relocated() -> None:
    assert relocation(MISPLACED, own_group=None).drains == ()


def test_relocation_waits_for_new_configs_and_for_a_replacement() -> None:
    assert relocation(MISPLACED, milvus_plan_empty=False).drains == ()
    alone = relocation({"__default_resource_group": [4], "rg1": [0], "gpu": [1]})
    assert alone.drains == () and alone.suspend == ()


def test_a_relocating_pod_that_is_to_leave_is_drained_to_be_removed() -> None:
    record = DrainRecord(f"{STS}-1", 1, "rg1", NOW - 5, "Suspending", relocate=True)
    result = relocation({"__default_resource_group": [4], "rg1": [5], "gpu": [0]}, (record,), desired=1,
                        suspended_node=1)
    assert result.resume == ()
    assert result.replicas == 1  # drained: it goes, as a victim, not resumed
