from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings

from milvus_rg_operator.core import scaling
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import (
    DEPLOYMENT,
    DeclaredGroup,
    DeclaredPool,
    DeclaredReplicas,
    DrainRecord,
    GroupConfig,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    PodState,
    Removal,
    WorkloadRef,
    WorkloadState,
    with_pod_hostnames,
)
from milvus_rg_operator.core.workloads import COST_EMPTY, COST_SERVING, COST_SPARE, DELETION_COST
from tests.core.strategies import DRAIN_PHASES, PENDING, STS, STS_REF, World, worlds

NOW = 1000.0


def plan(world: World, milvus_plan_empty: bool = True) -> scaling.ScalePlan:
    desired = scaling.desired_replicas(world.pool, world.groups)
    return scaling.plan_scale(world.pool, world.groups, desired, world.sts, world.pods, world.milvus,
                              world.drains, milvus_plan_empty=milvus_plan_empty, now=NOW)


def removed(world: World, result: scaling.ScalePlan) -> set[str]:
    """The pods the workload's controller removes for the plan's replicas, by Kubernetes' rule for its kind
    (a StatefulSet its ordinals from the new replicas up, a ReplicaSet its live pods beyond them by rank, with
    the costs the pods carry now)."""
    if result.replicas is None or result.replicas >= world.sts.replicas:
        return set()
    return set(scaling.victims(world.sts, world.pods, result.replicas))


def branch(world: World, result: scaling.ScalePlan) -> str:
    """Which way the planner went, for hypothesis' statistics (`pytest --hypothesis-show-statistics`)."""
    if result.replicas is not None and result.replicas < world.sts.replicas:
        return "scale-in"
    if result.replicas is not None and result.replicas > world.sts.replicas:
        return "scale-out"
    return f"held: {result.blocked_reason}" if result.blocked_reason else "steady"


def scales_in(world: World) -> scaling.ScalePlan:
    """The plan, for a property of scale-ins: other examples are discarded (their branch is recorded)."""
    result = plan(world)
    event(branch(world, result))
    for drain in result.drains:
        event(f"drain {drain.phase}")
    assume(result.replicas is not None and result.replicas < world.sts.replicas)
    return result


SCALE_IN = settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])


@SCALE_IN
@given(worlds())
def test_replicas_never_drop_past_a_pod_serving_a_group(world: World) -> None:
    result = scales_in(world)
    records = {d.pod: d for d in world.drains}
    for pod in world.pods:
        if pod.name not in removed(world, result) or pod.terminating:
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


@settings(max_examples=150, suppress_health_check=[HealthCheck.filter_too_much])
@given(worlds())
def test_no_pod_milvus_may_still_place_is_removed_while_a_group_is_short(world: World) -> None:
    """Milvus fills a group below its requests (surges included) from the pending group: a removed pod's node
    must not be one it can still pick."""
    result = scales_in(world)
    surge = scaling.surge_of(result.drains)
    requests = {resolve_group_name(g): g.requests for g in world.groups if not g.deleting}
    short = [name for name, g in world.milvus.groups.items() if name != PENDING
             and requests.get(name, g.config.requests) + surge.get(name, 0) > len(g.node_ids)
             and (not g.config.node_labels or g.node_ids)]
    event("a group is short" if short else "no group is short")
    assume(short)
    for pod in world.pods:
        if pod.name not in removed(world, result) or pod.terminating:
            continue
        node = world.milvus.node_of_pod(pod.name)
        assert node is None or world.milvus.group_of_node(node.node_id) != PENDING, (pod.name, short)


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


@settings(max_examples=100, suppress_health_check=[HealthCheck.filter_too_much])
@given(worlds())
def test_new_drains_respect_max_unavailable(world: World) -> None:
    result = plan(world)
    before = {d.pod for d in world.drains}
    new = [d for d in result.drains if d.pod not in before]
    event("new drains" if new else "no new drain")
    assume(new)
    active = [d for d in result.drains if d.phase != "Drained"]
    assert len(active) <= world.pool.max_unavailable
    assert world.milvus.management_available


@settings(max_examples=300)
@given(worlds())
def test_no_node_stays_out_of_its_group_without_a_record(world: World) -> None:
    assume(world.milvus.management_available)
    result = plan(world)
    recorded = {d.pod for d in result.drains}
    in_group = {n for g in world.milvus.groups.values() for n in g.node_ids}
    for pod in world.pods:
        node = world.milvus.node_of_pod(pod.name)
        if (node is None or node.node_id in in_group or pod.terminating or not pod.ready
                or pod.name in removed(world, result)):
            continue
        if pod.name not in recorded:
            assert node.node_id in result.resume


@settings(max_examples=300)
@given(worlds())
def test_only_a_node_in_a_serving_group_is_suspended_and_only_one_of_a_pod_resumed(world: World) -> None:
    """Suspending a node in no group does nothing (milvus#53176), so no drain may rely on it; and a node with no
    pod of the pool (2.6: the query node embedded in a streaming node, listed in no group) is never resumed."""
    result = plan(world)
    event("suspends" if result.suspend else "no suspend")
    for node_id in result.suspend:
        assert world.milvus.group_of_node(node_id) not in (None, PENDING), node_id
    pods = {p.name for p in world.pods}
    for node_id in result.resume:
        assert world.milvus.nodes[node_id].hostname in pods, node_id
        assert node_id < 900, "an embedded query node is resumed"


@settings(max_examples=200)
@given(worlds())
def test_nothing_happens_while_configs_are_pending_except_scale_out(world: World) -> None:
    result = plan(world, milvus_plan_empty=False)
    assert not result.suspend
    assert result.replicas is None or result.replicas > world.sts.replicas


# --- the docs' practice, step by step --------------------------------------------------------------

POOL = DeclaredPool("pool", PENDING, 0, 0, None, STS_REF)


def group(name: str, requests: int) -> DeclaredGroup:
    return DeclaredGroup(name, "pool", None, requests, None, None, None)


def pods(count: int) -> list[PodState]:
    return [PodState(f"{STS}-{o}", o, ready=True, terminating=False, ip=f"10.0.0.{o}") for o in range(count)]


def suspended(node_id: int, segments: int, channels: int) -> MilvusNode:
    """A node in no group, as the management API's node list shows it: no hostname (Milvus >= 2.4.10)."""
    return MilvusNode(node_id, "", f"10.0.0.{node_id}:21123", "Normal", segments, channels)


def plan_scale(pool: DeclaredPool, groups: list[DeclaredGroup], desired: int, sts: WorkloadState,
               pod_states: list[PodState], milvus: MilvusState, drains: tuple[DrainRecord, ...] | list[DrainRecord],
               **kwargs: Any) -> scaling.ScalePlan:
    """As the reconcile pass plans: hostnames of listed nodes resolved from the pods' IPs first."""
    return scaling.plan_scale(pool, groups, desired, sts, pod_states, with_pod_hostnames(milvus, pod_states),
                              drains, **kwargs)


def state(placement: dict[str, list[int]], data: bool = False, management: bool = True,
          loaded: dict[str, dict[str, int]] | None = None) -> MilvusState:
    nodes = {o: MilvusNode(o, f"{STS}-{o}", f"10.0.0.{o}:21123", "Normal", int(data), 0)
             for ids in placement.values() for o in ids}
    return MilvusState({name: MilvusGroup(name, GroupConfig(0, 0), tuple(ids), (loaded or {}).get(name, {}))
                        for name, ids in placement.items()}, nodes, management)


GROUPS_AFTER_SCALE_IN = [group("__default_resource_group", 1), group("rg1", 2), group("rg2", 1)]


def test_scale_out_sets_replicas_at_once() -> None:
    groups = [group("__default_resource_group", 1), group("rg1", 3), group("rg2", 1)]
    result = plan_scale(POOL, groups, 5, WorkloadState(STS_REF, 1, 1), pods(1),
                                state({"__default_resource_group": [0]}), (), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 5
    assert result.events[0][1] == "ScaledOut"


def test_scale_in_removes_the_highest_pod_once_it_is_pending() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3], PENDING: [4]})
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4
    assert not result.suspend


def test_scale_in_drains_a_serving_victim_when_a_replacement_is_pending() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 4], "rg2": [3], PENDING: [2]})
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    # rg1 is at its requests: replacement first (config raised by one), no suspend yet.
    assert result.replicas is None and result.suspend == ()
    assert [(d.pod, d.group, d.phase) for d in result.drains] == [(f"{STS}-4", "rg1", "Surging")]
    assert scaling.surge_of(result.drains) == {"rg1": 1}
    # Milvus added the pending node to rg1: now the victim is suspended.
    surged = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]})
    after = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), surged,
                               result.drains, milvus_plan_empty=True, now=NOW)
    assert after.suspend == (4,)
    assert [d.phase for d in after.drains] == ["Suspending"]
    assert scaling.surge_of(after.drains) == {}


def test_a_pending_victim_stays_while_a_surge_may_take_it() -> None:
    """5 -> 3: pod-4 clean in the pending group, pod-3 serving the default group. The drain of pod-3 raises the
    default group by one, and Milvus fills it from the pending group, where pod-4's node may be the one it
    picks (seen on the real StatefulSet controller): pod-4 is not removed in that pass."""
    groups = [group("__default_resource_group", 1), group("rg1", 1), group("rg2", 1)]
    milvus = state({"__default_resource_group": [3], "rg1": [0], "rg2": [1], PENDING: [2, 4]})
    result = plan_scale(POOL, groups, 3, WorkloadState(STS_REF, 5, 5), pods(5), milvus, (),
                        milvus_plan_empty=True, now=NOW)
    assert [(d.pod, d.phase) for d in result.drains] == [(f"{STS}-3", "Surging")]
    assert result.replicas is None
    assert result.blocked_reason == "WaitingForMilvus" or result.blocked is not None
    # Milvus took node 2 (not pod-4's): the group is back at its surged requests, pod-4 may go.
    refilled = state({"__default_resource_group": [2, 3], "rg1": [0], "rg2": [1], PENDING: [4]})
    after = plan_scale(POOL, groups, 3, WorkloadState(STS_REF, 5, 5), pods(5), refilled, result.drains,
                       milvus_plan_empty=True, now=NOW)
    assert after.replicas == 4 and after.suspend == (3,)


def test_a_pending_victim_stays_while_a_group_is_short_of_nodes() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1], "rg2": [3], PENDING: [2, 4]})
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                        (), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None and result.blocked_reason == "WaitingForMilvus", result
    assert "rg1" in (result.blocked or "")


def test_a_group_above_its_requests_is_drained_without_surge() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]})
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert result.suspend == (4,)
    assert [d.phase for d in result.drains] == ["Suspending"]


def test_scale_in_waits_without_a_replacement() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [4], PENDING: [3]})
    # pending holds pod 3 which stays: rg2 can get it. Make pending empty instead:
    milvus = state({"__default_resource_group": [0, 3], "rg1": [1, 2], "rg2": [4]})
    groups = [group("__default_resource_group", 2), group("rg1", 2), group("rg2", 1)]
    result = plan_scale(POOL, groups, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus, (),
                                milvus_plan_empty=True, now=NOW)
    assert result.replicas is None and not result.suspend
    assert result.blocked_reason == "WaitingForReplacement"


def test_drain_completes_when_the_group_is_refilled_and_data_moved() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "Suspending")
    refilled = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    refilled = MilvusState(refilled.groups, {**refilled.nodes, 4: suspended(4, 0, 0)},
                           True)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), refilled,
                                (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4
    assert ("Normal", "Drained") in {(e[0], e[1]) for e in result.events}
    assert result.drains == ()


def test_drain_waits_for_data_then_stalls_after_timeout() -> None:
    moving = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    moving = MilvusState(moving.groups, {**moving.nodes, 4: suspended(4, 3, 1)}, True)
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "Suspending")
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), moving,
                                (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    assert result.drains[0].phase == "MovingData"
    late = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), moving,
                              (record,), milvus_plan_empty=True, now=NOW + 601)
    assert late.replicas is None and late.stalled == (f"{STS}-4",)
    assert late.blocked_reason == "DrainStalled"


def test_without_management_api_a_serving_victim_is_never_removed() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 4], "rg2": [3], PENDING: [2]}, management=False)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None and not result.suspend
    assert result.blocked_reason == "ManagementAPIUnavailable"


def test_a_group_is_never_drained_below_its_loaded_replicas() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]},
                   loaded={"rg1": {"books": 3}})
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                                (), milvus_plan_empty=True, now=NOW)
    assert not result.suspend
    assert result.blocked_reason == "ReplicasNeedNodes"
    assert result.blocked is not None and "books" in result.blocked


def test_a_group_is_never_drained_below_the_replicas_its_spec_declares() -> None:
    """Declared replicas need nodes too, before Milvus has moved them in (core.replicas)."""
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]})
    rg1 = replace(group("rg1", 2), collections=(DeclaredReplicas("books", 3),))
    result = plan_scale(POOL, [group("__default_resource_group", 1), rg1, group("rg2", 1)], 4,
                        WorkloadState(STS_REF, 5, 5), pods(5), milvus, (), milvus_plan_empty=True, now=NOW)
    assert not result.suspend and result.blocked_reason == "ReplicasNeedNodes"
    assert result.blocked is not None and "rg1 needs 3 nodes for the replicas of books" in result.blocked


def test_drain_cancelled_when_the_pod_stays_resumes_its_node() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    milvus = MilvusState(milvus.groups, {**milvus.nodes, 4: suspended(4, 1, 0)}, True)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 5, WorkloadState(STS_REF, 5, 5), pods(5), milvus,
                                (record,), milvus_plan_empty=True, now=NOW)
    assert result.resume == (4,)
    assert result.drains == ()


# --- drains follow the recorded node id (issue: a suspended node has no hostname on the wire) ---------


def refilled_with(node: MilvusNode, *, management: bool = True) -> MilvusState:
    """rg1 back at its requests (nodes 1, 2), the victim's node 4 out of every group."""
    base = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]}, management=management)
    return MilvusState(base.groups, {**base.nodes, node.node_id: node}, management)


def test_a_suspended_node_that_still_holds_data_keeps_its_pod() -> None:
    """The reported bug: node 4 suspended, 3 segments and 1 channel, node/list without a hostname."""
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "Suspending")
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5),
                        refilled_with(suspended(4, 3, 1)), (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    assert [(d.node_id, d.phase) for d in result.drains] == [(4, "MovingData")]


def test_a_suspended_node_whose_data_moved_lets_its_pod_go() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5),
                        refilled_with(suspended(4, 0, 0)), (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4
    drained = [e for e in result.events if e[1] == "Drained"]
    assert drained and "0 segments, 0 channels" in drained[0][2]


def test_data_not_yet_measured_is_not_taken_for_no_data() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    unmeasured = MilvusNode(4, "", "10.0.0.4:21123", "Normal")  # distribution/get not fetched
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5),
                        refilled_with(unmeasured), (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None


def test_a_drain_waits_for_the_group_to_be_back_at_its_requests() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "Suspending")
    short = state({"__default_resource_group": [0], "rg1": [1], "rg2": [3], PENDING: [2]})
    short = MilvusState(short.groups, {**short.nodes, 4: suspended(4, 0, 0)}, True)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), short, (record,),
                        milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    assert [d.phase for d in result.drains] == ["WaitingForReplacement"]


def test_a_drained_node_gone_from_milvus_lets_its_pod_go() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    gone = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), gone, (record,),
                        milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4


def test_without_management_api_a_recorded_drain_holds() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    blind = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]}, management=False)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), blind, (record,),
                        milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    assert [d.phase for d in result.drains] == ["MovingData"]


def test_a_restarted_victim_is_drained_anew() -> None:
    """The pod's process restarted: node 4 is gone, node 14 (same pod) serves rg1."""
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    restarted = state({"__default_resource_group": [0], "rg1": [1, 2, 14], "rg2": [3]})
    restarted = MilvusState(restarted.groups, {
        **{k: v for k, v in restarted.nodes.items() if k != 14},
        14: MilvusNode(14, f"{STS}-4", "10.0.0.4:21123", "Normal", 2, 1)}, True)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), restarted,
                        (record,), milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    assert "DrainRestarted" in {e[1] for e in result.events}
    assert [(d.node_id, d.phase) for d in result.drains] == [(14, "Suspending")]
    assert result.suspend == (14,)


def test_a_node_suspended_without_a_record_is_resumed_by_its_address() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3]})
    milvus = MilvusState(milvus.groups, {**milvus.nodes, 4: suspended(4, 0, 0)}, True)
    result = plan_scale(POOL, [*GROUPS_AFTER_SCALE_IN[:1], group("rg1", 3), group("rg2", 1)], 5,
                        WorkloadState(STS_REF, 5, 5), pods(5), milvus, (), milvus_plan_empty=True, now=NOW)
    assert result.resume == (4,)


def embedded(node_id: int, channels: int, state_: str = "Normal") -> MilvusNode:
    """Milvus 2.6: the query node embedded in a streaming node, as node/list shows it (in no group, no pod)."""
    return MilvusNode(node_id, "", f"10.0.1.{node_id}:22222", state_, 0, channels)


def test_embedded_query_nodes_are_neither_resumed_nor_counted() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3], PENDING: [4]})
    milvus = MilvusState(milvus.groups, {**milvus.nodes, 90: embedded(90, 2), 91: embedded(91, 0, "Suspend")}, True,
                         "v2.6.8")
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus, (),
                        milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4 and not result.resume and not result.suspend and not result.blocked


def test_a_drain_on_milvus_2_6_waits_for_the_sealed_segments_only() -> None:
    """2.6: a query node's distribution shows no channel (they are on streaming nodes): its sealed segments are
    what the drain waits for, and the Drained event says so."""
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    for segments, phase in ((2, "MovingData"), (0, "Drained")):
        refilled = refilled_with(suspended(4, segments, 0))
        on_2_6 = MilvusState(refilled.groups, {**refilled.nodes, 90: embedded(90, 3)}, True, "v2.6.8")
        result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), on_2_6,
                            (record,), milvus_plan_empty=True, now=NOW)
        assert [d.phase for d in result.drains] == ([phase] if phase == "MovingData" else [])
    assert ("Normal", "Drained", f"{STS}-4 (node 4) left rg1 and holds no data (0 sealed segments; its channels are "
            "on streaming nodes)") in result.events


def test_a_cancelled_drain_resumes_the_recorded_node_id() -> None:
    record = DrainRecord(f"{STS}-4", 4, "rg1", NOW - 5, "MovingData")
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 5, WorkloadState(STS_REF, 5, 5), pods(5),
                        refilled_with(suspended(4, 1, 0)), (record,), milvus_plan_empty=True, now=NOW)
    assert result.resume == (4,)
    assert result.drains == ()


def test_a_pending_victim_still_holding_data_waits() -> None:
    """Milvus moved the node to the pending group; its segments leave at the balancer's pace."""
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2], "rg2": [3], PENDING: [4]})
    holding = MilvusState(milvus.groups, {**milvus.nodes, 4: MilvusNode(4, f"{STS}-4", "10.0.0.4:21123", "Normal",
                                                                          2, 0)}, True)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), holding, (),
                        milvus_plan_empty=True, now=NOW)
    assert result.replicas is None
    empty = MilvusState(milvus.groups, {**milvus.nodes, 4: MilvusNode(4, f"{STS}-4", "10.0.0.4:21123", "Normal",
                                                                        0, 0)}, True)
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), empty, (),
                        milvus_plan_empty=True, now=NOW)
    assert result.replicas == 4


def test_no_drain_starts_where_milvus_cannot_drain() -> None:
    milvus = state({"__default_resource_group": [0], "rg1": [1, 2, 4], "rg2": [3]})
    why = "Milvus v2.4.5 keeps a suspended node in its group (before 2.4.10)"
    result = plan_scale(POOL, GROUPS_AFTER_SCALE_IN, 4, WorkloadState(STS_REF, 5, 5), pods(5), milvus, (),
                        milvus_plan_empty=True, now=NOW, drain_unsupported=why)
    assert result.replicas is None and not result.suspend and not result.drains
    assert result.blocked_reason == "DrainUnsupported"
    assert result.blocked is not None and "v2.4.5" in result.blocked


@SCALE_IN
@given(worlds())
def test_a_pod_whose_node_holds_data_is_never_removed(world: World) -> None:
    """Judged from the raw wire data (node found by the pod's IP), not from the planner's own lookups."""
    result = scales_in(world)
    stalled_forced = world.pool.force_after_timeout
    for pod in world.pods:
        if pod.name not in removed(world, result) or pod.terminating:
            continue
        for node in world.milvus.nodes.values():
            if node.address.split(":")[0] != pod.ip:
                continue
            group = world.milvus.group_of_node(node.node_id)
            in_serving_group = group not in (None, PENDING)
            if world.milvus.management_available:
                assert (not in_serving_group and node.holds_data is False) or stalled_forced, (pod.name, node)
            else:
                assert not in_serving_group or stalled_forced, (pod.name, node)


def test_the_generator_reaches_every_branch() -> None:
    """The properties above are only as good as the worlds they see. On a fixed sample of worlds (derandomized:
    the same every run), every way the planner can go occurs: scale-out, scale-in past a drain in each phase,
    each phase kept after planning, and each reason to hold a scale-in."""
    seen: set[str] = set()

    @settings(max_examples=2000, database=None, derandomize=True)
    @given(worlds())
    def sample(world: World) -> None:
        result = plan(world)
        seen.add(branch(world, result))
        if result.replicas is not None and result.replicas < world.sts.replicas:
            seen.update(f"scale-in past {d.phase}" for d in world.drains)
        seen.update(f"keeps {d.phase}" for d in result.drains)

    sample()
    reasons = ("WaitingForMilvus", "WaitingForReplacement", "Draining", "DrainStalled", "ManagementAPIUnavailable",
               "ReplicasNeedNodes", "WaitingForDeletionCosts", "OutrankedByUnreadyPod")
    wanted = {"scale-in", "scale-out", "steady", *(f"held: {r}" for r in reasons),
              *(f"scale-in past {p}" for p in DRAIN_PHASES), *(f"keeps {p}" for p in DRAIN_PHASES)}
    assert wanted - seen == set()


# --- a Deployment: the operator steers its ReplicaSet with pod-deletion-cost ---------------------------

DEPLOYMENT_REF = WorkloadRef(DEPLOYMENT, STS)
DEPLOYMENT_POOL = DeclaredPool("pool", PENDING, 0, 0, None, DEPLOYMENT_REF)


def rs_pods(*names: str, costs: dict[str, int] | None = None, unready: tuple[str, ...] = ()) -> list[PodState]:
    """Pods of a ReplicaSet, oldest first (the newest would go first on a tie), with deletion costs."""
    return [PodState(name, None, ready=name not in unready, terminating=False, ip=f"10.0.1.{i}", created_at=i,
                     annotations={DELETION_COST: str(c)} if (c := (costs or {}).get(name)) is not None else {})
            for i, name in enumerate(names)]


def rs_state(placement: dict[str, list[str]], data: tuple[str, ...] = ()) -> MilvusState:
    nodes = {i: MilvusNode(i, pod, f"10.0.1.{int(pod[1:])}:21123", "Normal", int(pod in data), 0)
             for i, pod in enumerate(p for pods in placement.values() for p in pods)}
    by_pod = {node.hostname: i for i, node in nodes.items()}
    return MilvusState({name: MilvusGroup(name, GroupConfig(0, 0), tuple(by_pod[p] for p in pods))
                        for name, pods in placement.items()}, nodes, True)


def test_a_shrinking_deployment_gets_deletion_costs_first_then_loses_the_pod_they_rank_first() -> None:
    milvus = rs_state({"rg1": ["p0", "p2"], PENDING: ["p1"]})
    groups = [group("rg1", 2)]
    first = scaling.plan_scale(DEPLOYMENT_POOL, groups, 2, WorkloadState(DEPLOYMENT_REF, 3, 3),
                               rs_pods("p0", "p1", "p2"), milvus, (), milvus_plan_empty=True, now=NOW)
    assert first.replicas is None and first.blocked_reason == "WaitingForDeletionCosts"
    assert first.costs == {"p0": COST_SERVING, "p1": COST_EMPTY, "p2": COST_SERVING}  # p1: pending, no data
    assert first.victims == ("p1",)  # the pending node, once the serving ones cost more
    costed = rs_pods("p0", "p1", "p2", costs=first.costs)
    second = scaling.plan_scale(DEPLOYMENT_POOL, groups, 2, WorkloadState(DEPLOYMENT_REF, 3, 3), costed, milvus, (),
                                milvus_plan_empty=True, now=NOW)
    assert second.replicas == 2 and second.removing == ("p1",) and not second.costs
    assert second.removals == (Removal(2, ("p1",), f"Deployment {STS}"),)


def test_without_costs_a_replicaset_would_remove_a_serving_pod_so_nothing_is_lowered() -> None:
    """The newest pod (p2, serving) ranks first while no pod carries a cost: the plan waits for the costs."""
    milvus = rs_state({"rg1": ["p0", "p2"], PENDING: ["p1"]})
    plan = scaling.plan_scale(DEPLOYMENT_POOL, [group("rg1", 2)], 2, WorkloadState(DEPLOYMENT_REF, 3, 3),
                              rs_pods("p0", "p1", "p2"), milvus, (), milvus_plan_empty=True, now=NOW)
    assert plan.replicas is None
    assert scaling.victims(WorkloadState(DEPLOYMENT_REF, 3, 3), rs_pods("p0", "p1", "p2"), 2) == ["p2"]


def test_a_not_ready_pod_holding_data_outranks_the_chosen_one_and_scale_in_waits() -> None:
    milvus = rs_state({"rg1": ["p0"], PENDING: ["p1", "p2"]}, data=("p2",))
    costs = {"p0": COST_SERVING, "p1": COST_SPARE, "p2": COST_SPARE}
    pods = rs_pods("p0", "p1", "p2", costs=costs, unready=("p2",))
    plan = scaling.plan_scale(DEPLOYMENT_POOL, [group("rg1", 1)], 2, WorkloadState(DEPLOYMENT_REF, 3, 2), pods,
                              milvus, (), milvus_plan_empty=True, now=NOW)
    assert plan.replicas is None and plan.blocked_reason == "OutrankedByUnreadyPod"


def test_a_pod_that_was_to_go_and_still_runs_is_reported_once() -> None:
    milvus = rs_state({"rg1": ["p0", "p2"]})
    costs = {"p0": COST_SERVING, "p2": COST_SERVING}
    pods = rs_pods("p0", "p2", costs=costs)  # scaled 3 -> 2 for p2 to go: p1 went instead
    plan = scaling.plan_scale(DEPLOYMENT_POOL, [group("rg1", 2)], 2, WorkloadState(DEPLOYMENT_REF, 2, 2), pods,
                              milvus, (), milvus_plan_empty=True, now=NOW, removal=Removal(2, ("p2",)))
    assert plan.unexpected == ("p2",) and plan.removals == ()
    assert [e[1] for e in plan.events] == ["UnexpectedRemoval"]
    waiting = scaling.plan_scale(DEPLOYMENT_POOL, [group("rg1", 2)], 2, WorkloadState(DEPLOYMENT_REF, 2, 2),
                                 [*pods, *rs_pods("p3")], milvus, (), milvus_plan_empty=True, now=NOW,
                                 removal=Removal(2, ("p2",)))
    assert waiting.unexpected == () and waiting.removals == (Removal(2, ("p2",)),)  # 3 pods run: not done yet
