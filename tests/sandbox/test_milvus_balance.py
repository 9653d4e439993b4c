"""The simulator's data balance between a replica's nodes: the automatic balance checker (score-based), LoadBalance,
transfer/segment and transfer/channel, transfer_replica's rules, loads into repeated groups, Insert and Flush."""

from __future__ import annotations

from typing import Any

import pytest

from milvus_rg_sandbox.milvus.balancer import Move
from milvus_rg_sandbox.milvus.resource_manager import (
    BALANCE_CHECK_INTERVAL,
    DEFAULT_RG,
    Code,
    MilvusError,
    ResourceManager,
    RGConfig,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def one_group(nodes: int, clock: Clock, **kwargs: Any) -> ResourceManager:
    """`nodes` query nodes, all in rg1 (requests = limits = nodes)."""
    rm = ResourceManager(seed=1, clock=clock, **kwargs)
    rm.update_resource_groups({DEFAULT_RG: RGConfig(0, 0)})
    rm.create_resource_group("rg1", RGConfig(nodes, nodes))
    for index in range(nodes):
        rm.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    rm.recover_until_stable()
    return rm


def segments_per_node(rm: ResourceManager, collection: str = "c1") -> dict[int, int]:
    counts = {n: 0 for n in rm.groups["rg1"].nodes}
    for replica in rm.replicas_of(collection):
        for holding in replica.segments.values():
            if holding.node is not None:
                counts[holding.node] = counts.get(holding.node, 0) + 1
    return counts


def scale_out_with_data(clock: Clock, **kwargs: Any) -> tuple[ResourceManager, int]:
    """rg1 with one node holding 8 segments, then a second node joins rg1; returns the new node."""
    rm = one_group(1, clock, **kwargs)
    rm.create_collection("c1", segments=8, channels=1)
    rm.load_collection("c1", 1, ["rg1"])
    rm.update_resource_groups({"rg1": RGConfig(2, 2)})
    new = rm.add_node("qn-new", "10.0.0.9:21123")
    rm.recover_until_stable()
    assert segments_per_node(rm)[new] == 0
    return rm, new


def test_the_balance_checker_moves_segments_onto_a_new_node_of_the_replica() -> None:
    clock = Clock()
    rm, new = scale_out_with_data(clock)
    clock.now += BALANCE_CHECK_INTERVAL - 0.01
    rm.advance()
    assert segments_per_node(rm)[new] == 0, "nothing before the checker's tick"
    for _ in range(20):
        clock.now += BALANCE_CHECK_INTERVAL
        rm.advance()
    assert sorted(segments_per_node(rm).values()) == [4, 4]
    assert rm.unserved_segment_seconds() == 0, "each segment served by its source until the target loaded it"


def test_no_normal_balance_when_auto_balance_is_off_or_suspended() -> None:
    for kwargs, suspend in (({"auto_balance": False}, False), ({}, True)):
        clock = Clock()
        rm, new = scale_out_with_data(clock, **kwargs)
        rm.set_balance_suspended(suspend)
        clock.now += 20 * BALANCE_CHECK_INTERVAL
        rm.advance()
        assert segments_per_node(rm)[new] == 0, kwargs


def test_a_balanced_replica_stays_put() -> None:
    clock = Clock()
    rm, _ = scale_out_with_data(clock)
    clock.now += 20 * BALANCE_CHECK_INTERVAL
    rm.advance()
    placement = {s: h.node for s, h in rm.replicas_of("c1")[0].segments.items()}
    clock.now += 20 * BALANCE_CHECK_INTERVAL
    rm.advance()
    assert {s: h.node for s, h in rm.replicas_of("c1")[0].segments.items()} == placement


def test_load_balance_moves_the_named_segments_and_checks_like_services_go() -> None:
    clock = Clock()
    rm, new = scale_out_with_data(clock, auto_balance=False)
    (replica,) = rm.replicas_of("c1")
    (old,) = set(rm.groups["rg1"].nodes) - {new}
    chosen = sorted(replica.segments)[:3]
    moves = rm.load_balance("c1", old, [new], chosen)
    assert [m.item for m in moves] == chosen and all(rm.move_state(m) is None for m in moves)
    clock.now += rm.balance_delay
    rm.advance()
    assert all(rm.move_state(m) for m in moves)
    assert {s for s, h in replica.segments.items() if h.node == new} == set(chosen)
    rm.create_collection("c2", segments=1)
    rm.create_resource_group("rg2", RGConfig(0, 0))
    for args, code, message in [
        (("ghost", old, [new], []), Code.COLLECTION_NOT_FOUND, "collection not found"),
        (("c2", old, [new], []), Code.COLLECTION_NOT_FULLY_LOADED, "collection not fully loaded"),
        (("c1", 999, [new], []), Code.NODE_NOT_FOUND, "source node not found in any replica"),
        (("c1", old, [999], []), Code.NODE_NOT_FOUND, "destination node not found in the same replica"),
        (("c1", old, [new], [chosen[0]]), Code.SEGMENT_NOT_FOUND, "segment not found in source node"),
    ]:
        with pytest.raises(MilvusError) as error:
            rm.load_balance(*args)
        assert error.value.code == code and message in error.value.message, args
    rm.stop_node(old)
    with pytest.raises(MilvusError) as error:
        rm.load_balance("c1", old, [new], [])
    assert error.value.code == Code.UNEXPECTED and "is stopping" in error.value.message


def test_load_balance_without_targets_spreads_by_score() -> None:
    clock = Clock()
    rm = one_group(3, clock, auto_balance=False)
    rm.create_collection("c1", segments=6, channels=1)
    rm.load_collection("c1", 1, ["rg1"])
    (replica,) = rm.replicas_of("c1")
    busiest = max(replica.rw_nodes, key=lambda n: segments_per_node(rm)[n])
    moves = rm.load_balance("c1", busiest, [], [])
    assert len({m.target for m in moves}) == 2, "each move counts in the scores of the next"


def test_a_cancelled_move_moves_nothing() -> None:
    clock = Clock()
    rm, new = scale_out_with_data(clock, auto_balance=False)
    (old,) = set(rm.groups["rg1"].nodes) - {new}
    moves = rm.load_balance("c1", old, [new], [])
    rm.cancel_moves(moves)
    clock.now += 10
    rm.advance()
    assert segments_per_node(rm)[new] == 0 and not any(rm.move_state(m) for m in moves)


def test_transfer_data_moves_in_the_background_and_copies_in_copy_mode() -> None:
    clock = Clock()
    rm, new = scale_out_with_data(clock, auto_balance=False)
    (old,) = set(rm.groups["rg1"].nodes) - {new}
    (replica,) = rm.replicas_of("c1")
    segment = sorted(replica.segments)[0]
    rm.transfer_data(old, new, segment, channels=False, copy_mode=True)
    assert replica.segments[segment].node == old
    clock.now += rm.balance_delay
    rm.advance()
    assert replica.segments[segment].node == new
    assert segment not in rm.held_by(old)[1], "the copy left on the source is released as a repeated copy"
    with pytest.raises(MilvusError) as error:
        rm.transfer_data(old, new, segment, channels=False, copy_mode=False)
    assert error.value.code == Code.SEGMENT_NOT_FOUND
    rm.transfer_data(old, None, None, channels=True, copy_mode=False)  # every channel, to the replica's RW nodes
    clock.now += rm.balance_delay
    rm.advance()
    assert rm.distribution(old)[0] == [] and rm.distribution(new)[0] != []


def test_transfer_data_to_a_node_outside_the_replica_moves_nothing() -> None:
    clock = Clock()
    rm, new = scale_out_with_data(clock, auto_balance=False)
    outsider = rm.add_node("qn-out", "10.0.0.8:21123")  # lands in the default group
    (old,) = set(rm.groups["rg1"].nodes) - {new}
    rm.transfer_data(old, outsider, None, channels=False, copy_mode=False)
    clock.now += 5
    rm.advance()
    assert rm.held_by(outsider) == ([], []), "the task is stale: its target is not in the replica"


def test_transfer_replica_to_a_group_without_nodes_is_accepted() -> None:
    """2.4+ checks no node count (2.3 did): the replica gets no node and its old ones keep serving it."""
    clock = Clock()
    rm = one_group(2, clock)
    rm.create_collection("c1", segments=4)
    rm.load_collection("c1", 1, ["rg1"])
    rm.create_resource_group("empty", RGConfig(0, 0))
    rm.transfer_replica("rg1", "empty", "c1", 1)
    clock.now += rm.check_node_in_replica_interval
    rm.advance()
    (replica,) = rm.replicas_of("c1")
    assert replica.resource_group == "empty" and not replica.rw_nodes and replica.ro_nodes
    assert rm.unserved_segments() == []
    with pytest.raises(MilvusError) as error:
        rm.transfer_replica("rg1", "empty", "c1", 1)
    assert error.value.code == Code.PARAMETER_INVALID
    assert "only found [0] replicas of collection" in error.value.message
    with pytest.raises(MilvusError) as error:
        rm.transfer_replica("ghost", "empty", "c1", 1)
    assert error.value.code == Code.RG_NOT_FOUND and "the source resource group[ghost] doesn't exist" in str(
        error.value.message)


def test_load_into_a_group_named_twice_puts_two_replicas_there() -> None:
    clock = Clock()
    rm = one_group(3, clock)
    rm.create_resource_group("rg2", RGConfig(1, 1))
    rm.add_node("qn-3", "10.0.0.3:21123")
    rm.recover_until_stable()
    rm.create_collection("c1")
    rm.load_collection("c1", 3, ["rg1", "rg1", "rg2"])
    assert rm.describe_resource_group("rg1").num_loaded_replica == {"c1": 2}
    assert rm.describe_resource_group("rg2").num_loaded_replica == {"c1": 1}
    rm.load_collection("c1", 3, ["rg1", "rg2", "rg1"])  # the same placement: nothing to do


def test_insert_and_flush_seal_one_segment_per_channel_into_the_replicas() -> None:
    clock = Clock()
    rm = one_group(2, clock)
    rm.create_collection("c1", segments=0, channels=2, row_bytes=16)
    rm.load_collection("c1", 1, ["rg1"])
    channels = rm.collections["c1"].channels
    rm.insert("c1", {channels[0]: 600, channels[1]: 400})
    assert rm.collections["c1"].sealed_rows == 0 and rm.query_segment_info("c1") == []
    sealed = rm.flush("c1")
    infos = {info.segment_id: info for info in rm.query_segment_info("c1")}
    assert sorted(infos) == sealed and sorted(i.rows for i in infos.values()) == [400, 600]
    assert all(i.mem_size == i.rows * 16 for i in infos.values())
    assert rm.flush("c1") == [], "nothing left to seal"


def test_move_state_of_an_unknown_item_is_a_failure() -> None:
    rm = one_group(1, Clock())
    assert rm.move_state(Move(12345, 1, 1, 2)) is False
