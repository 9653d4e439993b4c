from __future__ import annotations

from hypothesis import given, settings

from milvus_rg_operator.core import scaling
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    DrainRecord,
    GroupConfig,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    PodState,
    StatefulSetState,
)
from tests.core.strategies import PENDING, STS, World, worlds

NOW = 1000.0


def plan(world: World, milvus_plan_empty: bool = True) -> scaling.ScalePlan:
    desired = scaling.desired_replicas(world.pool, world.groups)
    return scaling.plan_scale(world.pool, world.groups, desired, world.sts, world.pods, world.milvus,
                              world.drains, milvus_plan_empty=milvus_plan_empty, now=NOW)


@settings(max_examples=400)
@given(worlds())
def test_replicas_never_drop_past_a_pod_serving_a_group(world: World) -> None:
    result = plan(world)
    if result.replicas is None or result.replicas >= world.sts.replicas:
        return
    records = {d.pod: d for d in world.drains}
    for pod in world.pods:
        if pod.ordinal < result.replicas or pod.terminating:
            continue
        node = world.milvus.node_of_pod(pod.name)
        if node is None:
            continue
        group = world.milvus.group_of_node(node.node_id)
        record = records.get(pod.name)
        timed_out = record is not None and NOW - record.started_at > world.pool.drain_timeout_seconds
        forced = timed_out and world.pool.force_after_timeout
        assert group in (None, PENDING) or forced, f"{pod.name} serves {group} but is removed"
        assert group == PENDING or node.holds_data is False or forced


@settings(max_examples=300)
@given(worlds())
def test_replicas_stay_within_bounds_and_move_towards_desired(world: World) -> None:
    desired = scaling.desired_replicas(world.pool, world.groups)
    assert desired >= world.pool.min_nodes
    if world.pool.max_nodes is not None:
        assert desired <= world.pool.max_nodes
    result = plan(world)
    if result.replicas is not None:
        low, high = sorted((desired, world.sts.replicas))
        assert low <= result.replicas <= high


@settings(max_examples=300)
@given(worlds())
def test_new_drains_respect_max_unavailable(world: World) -> None:
    result = plan(world)
    before = {d.pod for d in world.drains}
    new = [d for d in result.drains if d.pod not in before]
    active = [d for d in result.drains if d.phase != "Drained"]
    if new:
        assert len(active) <= world.pool.max_unavailable
        assert world.milvus.management_available


@settings(max_examples=300)
@given(worlds())
def test_no_node_stays_out_of_its_group_without_a_record(world: World) -> None:
    result = plan(world)
    if not world.milvus.management_available:
        return
    recorded = {d.pod for d in result.drains}
    in_group = {n for g in world.milvus.groups.values() for n in g.node_ids}
    for pod in world.pods:
        node = world.milvus.node_of_pod(pod.name)
        removed = result.replicas is not None and pod.ordinal >= result.replicas
        if node is None or node.node_id in in_group or pod.terminating or not pod.ready or removed:
            continue
        if pod.name not in recorded:
            assert node.node_id in result.resume


@settings(max_examples=200)
@given(worlds())
def test_nothing_happens_while_configs_are_pending_except_scale_out(world: World) -> None:
    result = plan(world, milvus_plan_empty=False)
    assert not result.suspend
    assert result.replicas is None or result.replicas > world.sts.replicas


# --- the docs' practice, step by step --------------------------------------------------------------

POOL = DeclaredPool("pool", PENDING, 0, 0, None, STS)


def group(name: str, requests: int) -> DeclaredGroup:
    return DeclaredGroup(name, "pool", None, requests, None, None, None)


def pods(count: int) -> list[PodState]:
    return [PodState(f"{STS}-{o}", o, ready=True, terminating=False) for o in range(count)]


def state(placement: dict[str, list[int]], data: bool = False, management: bool = True,
          loaded: dict[str, dict[str, int]] | None = None) -> MilvusState:
    nodes = {o: MilvusNode(o, f"{STS}-{o}", "", "Healthy", int(data), 0) for ids in placement.values() for o in ids}
    return MilvusState({name: MilvusGroup(name, GroupConfig(0, 0), tuple(ids), (loaded or {}).get(name, {}))
                        for name, ids in placement.items()}, nodes, management)


GROUPS_AFTER_SCALE_IN = [group("__default_resource_group", 1), group("rg1", 2), group("rg2", 1)]


def test_scale_out_sets_replicas_at_once() -> None:
    groups = [group("__default_resource_group", 1), group("rg1", 3), group("rg2", 1)]
    result = scaling.plan_scale(POOL, groups, 5, StatefulSetState(STS, 1, 1, 1), pods(1),
                                state({"__default_resource_group": [0]}), (), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 5
    assert result.events[0][1] == "ScaledOut"


def test_scale_in_removes_the_highest_pod_once_it_is_pending() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3], PENDING: [4]})
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4
    assert not result.suspend


def test_scale_in_drains_a_serving_victim_when_a_replacement_is_pending() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 4], "rg2": [3], PENDING: [2]})
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    # rg1 is at its requests: replacement first (config raised by one), no suspend yet.
    assert result.replicas is None and result.suspend == ()
    assert [(d.pod, d.group, d.phase) for d in result.drains] == [(f"{STS}-4", "rg1", "Surging")]
    assert scaling.surge_of(result.drains) == {"rg1": 1}
    # Milvus added the pending node to rg1: now the victim is suspended.
    surged = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]})
    after = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), surged,
                               result.drains, milvus_plan_empty=True, now=NOW)
    assert after.suspend == (4,)
    assert [d.phase for d in after.drains] == ["Suspending"]
    assert scaling.surge_of(after.drains) == {}


def test_a_group_above_its_requests_is_drained_without_surge() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]})
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert result.suspend == (4,)
    assert [d.phase for d in result.drains] == ["Suspending"]


def test_scale_in_waits_without_a_replacement() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [4], PENDING: [3]})
    # pending holds pod 3 which stays: rg2 can get it. Make pending empty instead:
    milvus = state({"__default_resource_group": [0, 3], "rg1": [1, 2], "rg2": [4]})
    groups = [group("__default_resource_group", 2), group("rg1", 2), group("rg2", 1)]
    result = scaling.plan_scale(POOL, groups, 4, StatefulSetState(STS, 5, 5, 5), pods(5), milvus, (),
                                milvus_plan_empty=True, now=NOW)
    assert result.replicas is None and not result.suspend
    assert result.blocked_reason == "WaitingForReplacement"


def test_drain_completes_when_the_group_is_refilled_and_data_moved() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "Suspending")
    refilled = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    refilled = MilvusState(refilled.groups, {**refilled.nodes, 4: MilvusNode(4, f"{STS}-4", "", "Healthy", 0, 0)},
                           True)
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), refilled,
                                (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4
    assert ("Normal", "Drained") in {(e[0], e[1]) for e in result.events}
    assert result.drains == ()


def test_drain_waits_for_data_then_stalls_after_timeout() -> None:
    moving = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    moving = MilvusState(moving.groups, {**moving.nodes, 4: MilvusNode(4, f"{STS}-4", "", "Healthy", 3, 1)}, True)
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "Suspending")
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), moving,
                                (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    assert result.drains[0].phase == "MovingData"
    late = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), moving,
                              (record,), milvus_plan_empty=True, now=NOW + 601)
    assert late.replicas is None and late.stalled == (f"{STS}-4",)
    assert late.blocked_reason == "DrainStalled"


def test_without_management_api_a_serving_victim_is_never_removed() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 4], "rg2": [3], PENDING: [2]}, management=False)
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None and not result.suspend
    assert result.blocked_reason == "ManagementAPIUnavailable"


def test_a_group_is_never_drained_below_its_loaded_replicas() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]},
                   loaded={"rg1": {"books": 3}})
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, StatefulSetState(STS, 5, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert not result.suspend
    assert result.blocked_reason == "ReplicasNeedNodes"
    assert result.blocked is not None and "books" in result.blocked


def test_drain_cancelled_when_the_pod_stays_resumes_its_node() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    milvus = MilvusState(milvus.groups, {**milvus.nodes, 4: MilvusNode(4, f"{STS}-4", "", "Healthy", 1, 0)}, True)
    result = scaling.plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 5, StatefulSetState(STS, 5, 5, 5), pods(5), milvus,
                                (record,), milvus_plan_empty=True, now=NOW)
    assert result.resume == (4,)
    assert result.drains == ()
