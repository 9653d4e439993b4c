"""Replica placement (core.replicas) and data balance (core.balance, core.serving) on plain data."""

from __future__ import annotations

from dataclasses import replace

from milvus_rg_operator.core import balance, replicas
from milvus_rg_operator.core.actions import LoadBalance, LoadCollection, TransferReplica
from milvus_rg_operator.core.scaling import ScalePlan
from milvus_rg_operator.core.serving import leaving_nodes
from milvus_rg_operator.core.types import (
    BalancePolicy,
    CollectionInfo,
    DeclaredGroup,
    DeclaredReplicas,
    DrainRecord,
    GroupConfig,
    LoadedSegment,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    PodState,
    ReplicaInfo,
)

MB = 1 << 20
NOW = 10_000.0


def group(name: str, requests: int, *entries: tuple[str, int], load: bool = False, created: float = 0.0,
          token: str | None = None) -> DeclaredGroup:
    return DeclaredGroup(name, "milvus", None, requests, None, None, None, created_at=created, balance_token=token,
                         collections=tuple(DeclaredReplicas(c, n, load) for c, n in entries))


def milvus(groups: dict[str, tuple[int, ...]], loaded: dict[str, dict[str, int]],
           collections: dict[str, CollectionInfo], states: dict[int, str] | None = None) -> MilvusState:
    nodes = {n: MilvusNode(n, f"qn-{n}", f"10.0.0.{n}:21123", (states or {}).get(n, "Normal"))
             for members in groups.values() for n in members}
    return MilvusState({g: MilvusGroup(g, GroupConfig(len(m), len(m)), m, loaded_replicas=loaded.get(g, {}))
                        for g, m in groups.items()}, nodes, True, collections=collections)


def books(*replica_groups: tuple[str, tuple[int, ...]], segments: tuple[LoadedSegment, ...] = ()) -> CollectionInfo:
    return CollectionInfo("books", tuple(ReplicaInfo(100 + i, g, nodes) for i, (g, nodes) in enumerate(replica_groups)),
                          segments)


THREE_LOADED = milvus({"rg_a": (1, 2), "rg_b": (3,), "__default_resource_group": (4, 5, 6)},
                      {"__default_resource_group": {"books": 3}},
                      {"books": books(*[("__default_resource_group", (n,)) for n in (4, 5, 6)]),
                       "films": CollectionInfo("films")})


# ---------------------------------------------------------------- validation


def test_bad_declarations_are_refused_naming_the_field() -> None:
    found = replicas.problems([group("rg-a", 1, ("nope", 1)), group("rg-b", 1, ("books", 2)),
                               group("rg-c", 5, ("books", 4))], THREE_LOADED)
    by_group = {(p.name, p.field): p.message for p in found}
    assert "does not exist in Milvus" in by_group[("rg-a", "spec.collections[0].name")]
    assert "need 2 nodes (one each), and spec.requests.nodeNum is 1" in by_group[
        ("rg-b", "spec.collections[0].replicas")]
    assert "it has 3 loaded" in by_group[("rg-c", "spec.collections[0].replicas")]


def test_claims_beyond_the_loaded_replicas_refuse_the_newer_groups() -> None:
    found = replicas.problems([group("rg-b", 2, ("books", 2), created=2.0),
                               group("rg-a", 2, ("books", 2), created=1.0),
                               group("rg-c", 1, ("books", 1), created=3.0)], THREE_LOADED)
    assert [(p.name, p.field) for p in found] == [("rg-b", "spec.collections[0].replicas")]
    assert "rg-a (2): at most 1 left for this group, 2 declared" in found[0].message


def test_a_released_collection_is_not_counted_against_claims() -> None:
    assert replicas.problems([group("rg-a", 2, ("films", 2)), group("rg-b", 2, ("films", 2))], THREE_LOADED) == []


# ---------------------------------------------------------------- placement


def test_replicas_move_into_groups_with_a_node_each_from_groups_that_declare_none() -> None:
    plan = replicas.plan([group("rg-a", 2, ("books", 2)), group("rg-b", 1, ("books", 1))], THREE_LOADED)
    assert [(a.source_group, a.target_group, a.collection, a.replicas) for a in plan.actions
            if isinstance(a, TransferReplica)] == [("__default_resource_group", "rg_a", "books", 2),
                                                   ("__default_resource_group", "rg_b", "books", 1)]
    assert len(plan.actions) == 2
    assert not plan.settled and plan.verdicts["rg_a"][1] == "MovingReplicas"


def test_a_group_gets_its_nodes_before_replicas_move_in() -> None:
    short = replace(THREE_LOADED, groups={**THREE_LOADED.groups,
                                          "rg_a": MilvusGroup("rg_a", GroupConfig(3, 3), (1, 2))})
    plan = replicas.plan([group("rg-a", 3, ("books", 3))], short)
    assert plan.actions == () and plan.verdicts["rg_a"][:2] == (False, "WaitingForNodes")


def test_a_released_collection_loads_only_when_every_declaring_group_says_so() -> None:
    declared = [group("rg-a", 2, ("films", 2), load=True), group("rg-b", 1, ("films", 1))]
    held = replicas.plan(declared, THREE_LOADED)
    assert held.actions == () and held.settled
    assert "films is released and stays so: rg_b does not set loadIfReleased" in held.verdicts["rg_a"][2]
    both = replicas.plan([declared[0], group("rg-b", 1, ("films", 1), load=True)], THREE_LOADED)
    assert [(a.collection, a.replicas, a.groups) for a in both.actions if isinstance(a, LoadCollection)] == [
        ("films", 3, ("rg_a", "rg_a", "rg_b"))]


def test_surplus_nobody_declares_stalls_instead_of_waiting() -> None:
    state = milvus({"rg_a": (1, 2)}, {"rg_a": {"books": 2}}, {"books": books(("rg_a", (1,)), ("rg_a", (2,)))})
    plan = replicas.plan([group("rg-a", 2, ("books", 1))], state)
    assert plan.actions == () and plan.verdicts["rg_a"][:2] == (False, "ReplicasUndeclared")
    assert plan.settled, "only a spec change can fix it: nothing to wait for"


def test_a_transferred_replica_is_placed_only_once_it_is_on_its_groups_nodes() -> None:
    moving = milvus({"rg_a": (1,), "rg_b": (2,)}, {"rg_a": {"books": 1}}, {"books": books(("rg_a", (2,)))})
    assert replicas.plan([group("rg-a", 1, ("books", 1))], moving).verdicts["rg_a"][:2] == (False, "MovingReplicas")
    done = milvus({"rg_a": (1,), "rg_b": (2,)}, {"rg_a": {"books": 1}}, {"books": books(("rg_a", (1,)))})
    assert replicas.plan([group("rg-a", 1, ("books", 1))], done).verdicts["rg_a"][0]


# ---------------------------------------------------------------- balance seen


def segment(segment_id: int, mb: int, *nodes: int) -> LoadedSegment:
    return LoadedSegment(segment_id, mb * 1000, mb * MB, nodes)


def one_replica(*segments: LoadedSegment, nodes: tuple[int, ...] = (1, 2, 3),
                states: dict[int, str] | None = None) -> MilvusState:
    return milvus({"rg_a": nodes}, {"rg_a": {"books": 1}}, {"books": books(("rg_a", nodes), segments=segments)},
                  states)


def pods(created: float) -> dict[str, PodState]:
    return {f"qn-{n}": PodState(f"qn-{n}", n, True, False, created_at=created) for n in (1, 2, 3)}


def test_an_idle_node_unbalances_its_group_once_its_pod_is_old_enough() -> None:
    state = one_replica(segment(10, 4, 1), segment(11, 4, 1), segment(12, 4, 2))
    policy = BalancePolicy(idle_node_seconds=60)
    young = balance.judge("rg_a", state, pods(NOW - 30), policy, NOW)
    assert young.verdict[0] is False and young.verdict[1] == "MemorySpread", "node 3 too young to count as idle"
    old = balance.judge("rg_a", state, pods(NOW - 90), policy, NOW)
    assert old.verdict[:2] == (False, "IdleNodes") and old.idle_nodes == 1 and old.spread_percent == 100


def test_one_segment_per_node_is_as_balanced_as_it_gets() -> None:
    state = one_replica(segment(10, 4, 1), segment(11, 1, 2))  # node 3 empty, but no node holds two segments
    judged = balance.judge("rg_a", state, pods(0.0), BalancePolicy(), NOW)
    assert judged.verdict[:2] == (True, "Balanced") and judged.spread_percent == 100


def test_a_spread_no_move_can_narrow_is_balanced() -> None:
    state = one_replica(segment(10, 4, 1), segment(11, 4, 1), segment(12, 4, 2), nodes=(1, 2))
    judged = balance.judge("rg_a", state, pods(0.0), BalancePolicy(), NOW)
    assert judged.spread_percent == 50 and judged.verdict[:2] == (True, "Balanced")


def test_a_group_without_replicas_has_nothing_to_balance() -> None:
    judged = balance.judge("rg_b", THREE_LOADED, {}, BalancePolicy(), NOW)
    assert judged.verdict[:2] == (True, "NoReplicas") and judged.spread_percent is None


def test_node_loads_count_every_collection_and_channel_leaders() -> None:
    state = one_replica(segment(10, 4, 1), segment(11, 2, 1, 2))
    leaders = CollectionInfo("books", (ReplicaInfo(100, "rg_a", (1, 2, 3), channel_leaders=(2, 2)),),
                             (segment(10, 4, 1), segment(11, 2, 1, 2)))
    state = replace(state, collections={"books": leaders})
    loads = balance.node_loads(state)
    assert loads[1] == balance.NodeLoad(2, 6000, 6 * MB, 0)
    assert loads[2] == balance.NodeLoad(1, 2000, 2 * MB, 2)


# ---------------------------------------------------------------- balance started


def test_a_requested_balance_moves_from_fullest_to_emptiest_within_its_budget() -> None:
    state = one_replica(*(segment(10 + i, 1, 1) for i in range(6)))
    first = balance.plan_requested("rg-a", "rg_a", "t1", None, state, set(), BalancePolicy(max_moves_per_pass=3), "T0")
    assert [(m.source_node, m.target_node) for m in first.actions if isinstance(m, LoadBalance)] == [
        (1, 2), (1, 3), (1, 2)]
    assert first.status == {"token": "t1", "phase": "Running", "moves": 3, "startedAt": "T0",
                            "message": "moving 3 segment(s) this pass, 3 so far"}
    assert [e.event_reason for e in first.events] == ["BalanceStarted"]


def test_a_requested_balance_never_moves_onto_a_leaving_node() -> None:
    state = one_replica(*(segment(10 + i, 1, 1) for i in range(6)))
    plan = balance.plan_requested("rg-a", "rg_a", "t1", None, state, {3}, BalancePolicy(), "T0")
    assert {m.target_node for m in plan.actions if isinstance(m, LoadBalance)} == {2}
    drained = ScalePlan(drains=(DrainRecord("qn-2", 2, "rg_a", 0.0, "MovingData"),), victims=("qn-3",))
    assert leaving_nodes(one_replica(nodes=(1, 2, 3, 4), states={4: "Stopping"}), drained) == {2, 3, 4}


def test_a_requested_balance_ends_when_no_move_narrows_and_answers_its_token_once() -> None:
    state = one_replica(segment(10, 1, 1), segment(11, 1, 2), segment(12, 1, 3))
    running = {"token": "t1", "phase": "Running", "moves": 4, "startedAt": "T0"}
    done = balance.plan_requested("rg-a", "rg_a", "t1", running, state, set(), BalancePolicy(), "T1")
    assert done.actions == () and done.status is not None
    assert done.status["phase"] == "Succeeded" and done.status["moves"] == 4 and done.status["finishedAt"] == "T1"
    assert [e.event_reason for e in done.events] == ["BalanceSucceeded"]
    again = balance.plan_requested("rg-a", "rg_a", "t1", done.status, state, set(), BalancePolicy(), "T2")
    assert again.actions == () and again.events == () and again.status == done.status
    fresh = balance.plan_requested("rg-a", "rg_a", "t2", done.status, state, set(), BalancePolicy(), "T3")
    assert fresh.status is not None and fresh.status["token"] == "t2" and fresh.status["startedAt"] == "T3"


def test_a_deleting_groups_declarations_free_its_replicas_for_the_groups_that_declare_them() -> None:
    """A group being deleted claims nothing: the replicas it holds go to a live group that declares them, and
    then Milvus lets it be dropped (configs.drop_blockers waits for that)."""
    state = milvus({"rg_a": (1, 2), "rg_b": (3,)}, {"rg_a": {"books": 1}, "rg_b": {"books": 1}},
                   {"books": books(("rg_a", (1,)), ("rg_b", (3,)))})
    leaving = replace(group("rg-b", 1, ("books", 1)), deleting=True)
    assert replicas.problems([group("rg-a", 2, ("books", 2)), leaving], state) == []
    plan = replicas.plan([group("rg-a", 2, ("books", 2)), leaving], state)
    assert [(a.source_group, a.target_group, a.replicas) for a in plan.actions if isinstance(a, TransferReplica)] == [
        ("rg_b", "rg_a", 1)]
