"""Query-coordinator behaviours over the wire, on a manual clock: the distribution querycoord pulls from the
nodes (and what it does while a pull fails), the replica observer, stopping balance, graceful stop, sessions,
version gates and the coordinator's error answers (docs/sandbox.md, "The Milvus simulator")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from milvus_rg_sandbox.milvus.simulator import ManualClock, MilvusSimulator

from .milvus_helpers import (
    DEFAULT_RG,
    Client,
    call,
    client_for,
    clocked,
    distribution,
    group_sizes,
    raw,
    rg_config,
    sim_factory,
)

__all__ = ["client_for", "clocked", "sim_factory"]  # fixtures imported for pytest

Clocked = tuple[MilvusSimulator, ManualClock, Client]


async def loaded(client: Client, sim: MilvusSimulator, groups: dict[str, int], nodes: int) -> None:
    """`nodes` query nodes, the default group emptied, `groups` {name: requests = limits} filled."""
    for index in range(nodes):
        sim.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    await client("update_resource_groups", {DEFAULT_RG: rg_config(0, nodes)})
    for name, size in groups.items():
        await client("create_resource_group", name, config=rg_config(size, size))
    sim.tick()


def holder(sim: MilvusSimulator, group: str) -> int:
    """The node of `group` holding the most data."""
    return max(sim.rm.groups[group].nodes, key=lambda n: sum(map(len, sim.held_by(n))))


# ---------------------------------------------------------------- distribution pulls after a restart
async def test_an_unpulled_node_shows_an_empty_distribution_while_it_still_serves_its_data(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2}, nodes=2)
    sim.load_collection("books", resource_groups=["rg1"], segments=4, channels=2)
    node = holder(sim, "rg1")
    held = sim.held_by(node)
    assert held[1] and await distribution(sim, node) == (held[0], [str(s) for s in held[1]])
    sim.restart_querycoord(failed_pulls={node: 1.2})
    assert await distribution(sim, node) == ([], []), "SyncAll's pull failed: querycoord has nothing on it"
    assert sim.held_by(node) == held, "the process still holds its data"
    assert sim.unserved_segments() == [], "and serves it"
    loaded_segments = await client("list_loaded_segments", "books")
    assert all(node not in s.node_ids for s in loaded_segments)
    await sim.advance(1.0)  # pulls every 0.5 s: those at 0.5 and 1.0 still fail
    assert await distribution(sim, node) == ([], [])
    await sim.advance(0.5)  # the pull at 1.5 s succeeds
    assert await distribution(sim, node) == (held[0], [str(s) for s in held[1]])
    assert sim.unserved_segment_seconds() == 0


async def test_the_replica_observer_drops_an_unpulled_read_only_node_and_its_copies_are_lost_track_of(
    clocked: Clocked,
) -> None:
    """replica_observer.go removes a read-only node whose distribution is empty; the segment checker loads its
    data elsewhere; the copies the node still holds belong to no replica: nothing moves or releases them, so a
    stopping node keeps them until queryNode.gracefulStopTimeout."""
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2}, nodes=3)
    sim.load_collection("books", resource_groups=["rg1"], segments=4, channels=2)
    node = holder(sim, "rg1")
    held = sim.held_by(node)
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    sim.tick()  # the resource observer refills rg1 from the default group
    (replica,) = sim.rm.replicas_of("books")
    assert node in replica.ro_nodes
    sim.restart_querycoord(failed_pulls={node: 10.0})
    assert sim.rm.group_of(node) == DEFAULT_RG, "suspension forgotten: back into a group"
    assert node not in replica.ro_nodes and node not in replica.rw_nodes, "dropped: its distribution is empty"
    assert (await client("describe_resource_group", "rg1")).num_outgoing_node == {}
    await sim.advance(5.0)  # load_time: the segment checker has loaded the replica's lost items elsewhere
    assert sim.unserved_segments() == [] and sim.unserved_segment_seconds() == 0
    await sim.advance(5.0)  # the node's pulls succeed again
    assert await distribution(sim, node) == (held[0], [str(s) for s in held[1]]), "its copies are still there"
    segments = {s.segment_id: s.node_ids for s in await client("list_loaded_segments", "books")}
    assert all(node in segments[s] and len(segments[s]) == 2 for s in held[1])
    await sim.advance(600.0)
    assert sim.held_by(node) == held, "nothing releases them"
    sim.stop_node(node)
    await sim.advance(1799.0)
    assert not sim.node_gone(node), "a stopping node waits for its data to go"
    await sim.advance(1.0)
    assert sim.node_gone(node), "until queryNode.gracefulStopTimeout"


async def test_a_restart_forgets_the_tasks_in_flight(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2}, nodes=2)
    sim.load_collection("books", resource_groups=["rg1"], segments=1, channels=1)
    node = holder(sim, "rg1")
    sim.stop_node(node)  # stays stopping through the restart (a suspended node would go back into rg1)
    await sim.advance(0.5)  # half of a balance step
    sim.restart_querycoord()
    await sim.advance(0.6)  # the old task would have finished at 1.0
    assert sum(map(len, sim.held_by(node))) == 1
    await sim.advance(0.4)  # the new coordinator's task, started at its restart, finishes at 1.5
    assert sum(map(len, sim.held_by(node))) == 0


# ---------------------------------------------------------------- stopping balance, replica observer
async def test_balance_suspend_does_not_pause_moving_data_off_a_suspended_node(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2}, nodes=2)
    sim.load_collection("books", resource_groups=["rg1"], segments=4, channels=2)
    node = holder(sim, "rg1")
    held = sum(map(len, sim.held_by(node)))
    assert await call(sim, "balance/suspend") == (200, {"msg": "OK"})
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    await sim.advance(held * 1.0)  # one item per balance_delay
    assert await distribution(sim, node) == ([], [])
    assert await call(sim, "balance/status") == (200, {"msg": "OK", "status": "suspended"})


async def test_an_emptied_read_only_node_leaves_its_replica_at_the_replica_tick(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2}, nodes=2)
    sim.load_collection("books", resource_groups=["rg1"], segments=2, channels=1)
    node = holder(sim, "rg1")
    started = sim.clock()
    sim.suspend_node(node)  # the last node change
    await sim.advance(3.0)  # drained
    assert await distribution(sim, node) == ([], [])
    assert (await client("describe_resource_group", "rg1")).num_outgoing_node == {"books": 1}
    await sim.advance(started + 60.0 - sim.clock() - 0.1)
    assert (await client("describe_resource_group", "rg1")).num_outgoing_node == {"books": 1}
    await sim.advance(0.1)  # queryCoord.checkNodeInReplicaInterval after the last node change
    assert (await client("describe_resource_group", "rg1")).num_outgoing_node == {}


async def test_an_emptied_read_only_node_leaves_its_replica_at_the_next_node_change(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2}, nodes=3)  # one spare in the default group
    sim.load_collection("books", resource_groups=["rg1"], segments=2, channels=1)
    node = holder(sim, "rg1")
    sim.suspend_node(node)
    await sim.advance(9.9)  # drained after 3 s; the resource observer's tick comes at 10 s
    assert (await client("describe_resource_group", "rg1")).num_outgoing_node == {"books": 1}
    await sim.advance(0.1)  # it moves the spare into rg1: a node change wakes the replica observer
    assert (await client("describe_resource_group", "rg1")).num_outgoing_node == {}


async def test_a_read_only_node_joins_no_other_replica_of_its_collection_until_released(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 2, "rg2": 1}, nodes=3)
    sim.load_collection("books", replica_number=2, resource_groups=["rg1", "rg2"], segments=4, channels=2)
    in_rg1 = set(sim.rm.groups["rg1"].nodes)
    await client("update_resource_groups", {"rg1": rg_config(1, 1), "rg2": rg_config(2, 2)})
    sim.tick()
    (moving,) = in_rg1 & sim.rm.groups["rg2"].nodes

    async def rg2_replica_nodes() -> list[int]:
        replicas = await client("describe_replica", "books")
        return next(sorted(r.group_nodes) for r in replicas if r.resource_group == "rg2")

    assert moving not in await rg2_replica_nodes(), "still read-only in the rg1 replica"
    assert (await client("describe_resource_group", "rg2")).num_incoming_node == {"books": 1}
    await sim.advance(60.0)  # drained by balance, released by the replica observer's tick...
    assert (await client("describe_resource_group", "rg2")).num_incoming_node == {}
    assert moving not in await rg2_replica_nodes(), "...after that pass had assigned the replicas' nodes"
    await sim.advance(60.0)  # the next pass
    assert moving in await rg2_replica_nodes()
    assert sim.unserved_segment_seconds() == 0


# ---------------------------------------------------------------- graceful stop and sessions
async def test_a_stopping_node_exits_with_its_data_when_the_graceful_stop_timeout_is_up(clocked: Clocked) -> None:
    sim, _, client = clocked
    await loaded(client, sim, {"rg1": 1}, nodes=1)
    sim.load_collection("books", resource_groups=["rg1"], segments=2, channels=1)
    (node,) = sim.rm.groups["rg1"].nodes
    sim.stop_node(node)  # no other node: stopping balance has nowhere to move the data
    await sim.advance(1799.0)
    assert [n["state"] for n in (await call(sim, "node/list"))[1]["nodeInfos"]] == ["Stopping"]
    assert sim.unserved_segments() == []
    await sim.advance(1.0)
    assert await call(sim, "node/list") == (200, {}), "its session goes with the process"
    assert len(sim.unserved_segments()) == 2


async def test_a_crashed_node_leaves_its_group_after_the_shipped_30_s_session_ttl(
    sim_factory: Callable[..., Any], client_for: Callable[[MilvusSimulator], Any]
) -> None:
    sim = await sim_factory(clock=ManualClock(), seed=1)
    client = await client_for(sim)
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    sim.crash_node(node)
    await sim.advance(29.9)
    assert await group_sizes(client, [DEFAULT_RG]) == {DEFAULT_RG: 1}
    await sim.advance(0.1)
    assert await group_sizes(client, [DEFAULT_RG]) == {DEFAULT_RG: 0}


# ---------------------------------------------------------------- versions and errors
@pytest.mark.parametrize(("version", "declarative"), [("v2.4.0", False), ("v2.4.1", True)])
async def test_the_declarative_api_starts_with_2_4_1(
    sim_factory: Callable[..., Any], client_for: Callable[[MilvusSimulator], Any], version: str, declarative: bool
) -> None:
    sim = await sim_factory(version=version)
    client = await client_for(sim)
    sim.add_node("qn-0", "10.0.0.0:21123")
    await client("create_resource_group", "rg1", config=rg_config(1, 1))
    if declarative:
        await client("update_resource_groups", {"rg1": rg_config(0, 0)})
    else:
        with pytest.raises(grpc.RpcError) as caught:
            await client("update_resource_groups", {"rg1": rg_config(0, 0)})
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    rg1 = await client("describe_resource_group", "rg1")
    assert rg1.config.HasField("limits") is declarative, "a 2.4.0 drops the config given to create"
    default = await client("describe_resource_group", DEFAULT_RG)
    assert (len(default.nodes) == 1) is declarative and default.num_available_node == 1
    assert (await call(sim, "node/list"))[0] == 200, "the management routes are there in 2.4.0"


@pytest.mark.parametrize(("version", "served"), [
    ("v2.4.22", False), ("v2.4.23", True), ("v2.5.4", False), ("v2.5.5", True), ("v2.6.0", True)])
async def test_balance_status_route_by_version(
    sim_factory: Callable[..., Any], version: str, served: bool
) -> None:
    sim = await sim_factory(version=version)
    if served:
        assert await call(sim, "balance/status") == (200, {"msg": "OK", "status": "active"})
    else:
        assert await raw(sim, "balance/status") == (404, "text/plain", "404 page not found\n")
    assert (await call(sim, "balance/suspend"))[0] == 200


@pytest.mark.parametrize(("version", "served"), [("v2.3.5", False), ("v2.3.14", True), ("v2.4.0", True)])
async def test_management_routes_by_version(sim_factory: Callable[..., Any], version: str, served: bool) -> None:
    sim = await sim_factory(version=version)
    expected = (200, "text/plain", "{}") if served else (404, "text/plain", "404 page not found\n")
    assert await raw(sim, "node/list") == expected
