"""The simulator over the wire: real pymilvus over real gRPC, and the management routes over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import grpc
import pytest
from pymilvus import MilvusException
from pymilvus.client.types import ResourceGroupConfig

from milvus_rg_sandbox.milvus.resource_manager import RGConfig
from milvus_rg_sandbox.milvus.simulator import MilvusSimulator
from milvus_rg_sandbox.pytest_plugin import FAST_TIMINGS
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig
from tests.support import wait_for

from .milvus_helpers import (
    DEFAULT_RG,
    PENDING,
    Client,
    call,
    client_for,
    clocked,
    group_sizes,
    raw,
    rg_config,
    sim_factory,
    wait_sizes,
)

__all__ = ["client_for", "clocked", "sim_factory"]  # fixtures imported for pytest


@pytest.fixture
async def sim() -> AsyncIterator[MilvusSimulator]:
    simulator = MilvusSimulator(grpc_port=0, management_port=0, seed=7, check_interval=0.05)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: MilvusSimulator) -> AsyncIterator[Client]:
    made = await asyncio.to_thread(Client, sim.uri)
    yield made
    await asyncio.to_thread(made.client.close)


# ---------------------------------------------------------------- gRPC
async def test_start_is_fast_and_version_is_served(sim: MilvusSimulator, client: Client) -> None:
    assert sim.uri.startswith("http://127.0.0.1:") and sim.grpc_port != 0
    assert await client("get_server_version") == "v2.5.16"


async def test_docs_scaling_scenario(sim: MilvusSimulator, client: Client) -> None:
    nodes = [sim.add_node("qn-0", "10.0.0.0:21123")]

    async def scale_to(count: int, remove: int | None = None) -> None:
        while len(nodes) < count:
            nodes.append(sim.add_node(f"qn-{len(nodes)}", f"10.0.0.{len(nodes)}:21123"))
        if remove is not None:
            sim.stop_node(remove)
            nodes.remove(remove)

    await client("create_resource_group", PENDING, config=rg_config(0, 10000))
    await client("update_resource_groups", {DEFAULT_RG: rg_config(1, 1, PENDING)})
    for name in ("rg1", "rg2"):
        await client("create_resource_group", name, config=rg_config(0, 0, PENDING))
    await client("update_resource_groups", {"rg1": rg_config(3, 3, PENDING), "rg2": rg_config(1, 1, PENDING)})
    await scale_to(5)
    await wait_sizes(client, {"rg1": 3, "rg2": 1, DEFAULT_RG: 1, PENDING: 0})

    await client("update_resource_groups", {"rg1": rg_config(2, 2, PENDING)})
    await wait_sizes(client, {"rg1": 2, "rg2": 1, DEFAULT_RG: 1, PENDING: 1})
    (spare,) = (await client("describe_resource_group", PENDING)).nodes
    await scale_to(4, remove=spare.node_id)
    await wait_sizes(client, {"rg1": 2, "rg2": 1, DEFAULT_RG: 1, PENDING: 0})
    assert sim.node_gone(spare.node_id)


async def test_describe_reports_config_nodes_and_capacity(sim: MilvusSimulator, client: Client) -> None:
    node = sim.add_node("qn-a", "10.1.1.1:21123")
    await client(
        "create_resource_group",
        "rg1",
        config=ResourceGroupConfig(
            requests={"node_num": 1}, limits={"node_num": 2},
            node_filter={"node_labels": [{"key": "ZONE", "value": "a"}]},
        ),
    )
    info = await client("describe_resource_group", DEFAULT_RG)
    assert info.capacity == 1_000_000
    await wait_for(lambda: sim.rm.group_of(node) == DEFAULT_RG, timeout=5)
    info = await client("describe_resource_group", DEFAULT_RG)
    assert [(n.node_id, n.hostname, n.address) for n in info.nodes] == [(node, "qn-a", "10.1.1.1:21123")]
    rg1 = await client("describe_resource_group", "rg1")
    assert (rg1.capacity, rg1.config.requests.node_num, rg1.config.limits.node_num) == (1, 1, 2)
    assert [(kv.key, kv.value) for kv in rg1.config.node_filter.node_labels] == [("ZONE", "a")]
    assert sorted(await client("list_resource_groups")) == sorted([DEFAULT_RG, "rg1"])


async def test_errors_surface_as_milvus_exceptions_with_merr_codes(client: Client) -> None:
    await client("create_resource_group", "rg1", config=rg_config(1, 1))
    await client("create_resource_group", "rg1", config=rg_config(1, 1))
    assert (await client.error("create_resource_group", "rg1", config=rg_config(2, 2))).code == 301
    bad = await client.error("update_resource_groups", {"rg1": rg_config(2, 1)})
    assert bad.code == 303 and "limits node num should not less than requests node num" in bad.message
    assert (await client.error("update_resource_groups", {"ghost": rg_config(1, 1)})).code == 300
    assert (await client.error("create_resource_group", "bad-name")).code == 1100
    refused = await client.error("drop_resource_group", "rg1")
    assert refused.code == 1100 and refused.message == (
        "resource group's limits node num is not 0: invalid parameter[expected=not empty resource group][actual=rg1]"
    )
    await client("drop_resource_group", "absent")
    await client("drop_resource_group", "bad-name")  # no name check: absent, so dropped
    assert (await client.error("update_resource_groups", {"bad-name": rg_config(1, 1)})).code == 300


async def test_missing_fields_are_cleared_by_update(client: Client) -> None:
    await client("create_resource_group", PENDING, config=rg_config(0, 10))
    await client("create_resource_group", "rg1", config=rg_config(0, 0, PENDING))
    await client("update_resource_groups", {"rg1": ResourceGroupConfig(requests={"node_num": 0},
                                                                      limits={"node_num": 0})})
    config = (await client("describe_resource_group", "rg1")).config
    assert list(config.transfer_from) == [] and list(config.transfer_to) == []


async def test_load_replicas_transfer_and_drop_refusal(sim: MilvusSimulator, client: Client) -> None:
    for index in range(3):
        sim.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    await wait_sizes(client, {DEFAULT_RG: 3})
    await client("create_collection", "c1", dimension=4)  # quick setup loads into the default RG
    await client("release_collection", "c1")
    await client("update_resource_groups", {DEFAULT_RG: rg_config(0, 0)})
    await client("create_resource_group", "rg1", config=rg_config(2, 2))
    await client("create_resource_group", "rg2", config=rg_config(1, 1))
    await wait_sizes(client, {"rg1": 2, "rg2": 1})
    error = await client.error("load_collection", "c1", replica_number=3, resource_groups=["rg1", "rg2"])
    assert error.code == 1100 and "0, 1 or same as replica number" in error.message
    assert (await client.error("load_collection", "c1", replica_number=3, resource_groups=["rg1"])).code == 304
    await client("load_collection", "c1", replica_number=2, resource_groups=["rg1"])
    replicas = await client("describe_replica", "c1")
    assert sorted(len(r.group_nodes) for r in replicas) == [1, 1]
    assert {r.resource_group for r in replicas} == {"rg1"}
    assert (await client("describe_resource_group", "rg1")).num_loaded_replica == {"c1": 2}
    await client("transfer_replica", "rg1", "rg2", "c1", 1)
    replicas = await client("describe_replica", "c1")
    assert sorted(r.resource_group for r in replicas) == ["rg1", "rg2"]
    await client("update_resource_groups", {"rg2": rg_config(0, 0)})
    refused = await client.error("drop_resource_group", "rg2")
    assert refused.message == "some replicas still loaded in resource group[rg2], release it first"
    await client("release_collection", "c1")
    await client("drop_resource_group", "rg2")
    assert sim.write_rpcs["LoadCollection"] == 4 and sim.write_rpcs["TransferReplica"] == 1


async def test_transfer_node_is_rewritten_into_requests_and_limits(sim: MilvusSimulator, client: Client) -> None:
    sim.add_node("qn-0", "10.0.0.0:21123")
    await client("create_resource_group", "rg1")
    await asyncio.to_thread(client.client._get_connection().transfer_node, DEFAULT_RG, "rg1", 1)
    await wait_sizes(client, {"rg1": 1, DEFAULT_RG: 0})
    assert (await client("describe_resource_group", "rg1")).config.requests.node_num == 1
    assert sim.write_rpcs["TransferNode"] == 1


async def test_unavailable_flag_makes_calls_fail(sim: MilvusSimulator, client: Client) -> None:
    sim.set_unavailable(True)
    with pytest.raises(MilvusException):
        await client("list_resource_groups", timeout=0.5)
    sim.set_unavailable(False)
    assert await client("list_resource_groups") == [DEFAULT_RG]


async def test_token_auth(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(token="root:Milvus")
    good = await asyncio.to_thread(Client, sim.uri, token="root:Milvus")
    assert await good("list_resource_groups") == [DEFAULT_RG]
    for bad_token in ("root:wrong", ""):
        # pymilvus turns the UNAUTHENTICATED reply on connect into code 2 "Fail connecting to server"
        with pytest.raises(MilvusException) as caught:
            await asyncio.to_thread(Client, sim.uri, token=bad_token)
        assert caught.value.code == 2 and "illegal connection params" in caught.value.message


async def test_crash_is_seen_after_session_ttl(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(session_ttl=0.3, check_interval=5.0)
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    await sim.recover_now()
    sim.crash_node(node)
    await sim.recover_now()
    assert sim.rm.group_of(node) == DEFAULT_RG
    await wait_for(lambda: sim.node_gone(node), timeout=3, message="session expiry")


async def test_interval_loop_runs_recovery_without_notification(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(check_interval=0.05)
    sim.add_node("qn-0", "10.0.0.0:21123")
    with sim.controls.lock:  # a config change that notifies nobody: only the periodic tick can act on it
        sim.rm.create_resource_group("rg1", RGConfig(1, 1))
        sim.rm.rg_changed = False
    await wait_for(lambda: sim.rm.group_of(1) == "rg1", timeout=3, message="the periodic tick")


# ---------------------------------------------------------------- management HTTP
async def test_management_node_list_shape_and_states(sim: MilvusSimulator) -> None:
    assert await call(sim, "node/list") == (200, {})  # omitempty: no nodes, no key
    first = sim.add_node("qn-0", "10.0.0.0:21123")
    second = sim.add_node("qn-1", "10.0.0.1:21123")
    sim.rm.create_collection("c1")
    sim.load_collection("c1")  # data keeps a stopping node around
    sim.stop_node(second)
    status, content_type, text = await raw(sim, "node/list")
    assert (status, content_type) == (200, "text/plain")
    assert json.loads(text) == {"nodeInfos": [
        {"ID": first, "address": "10.0.0.0:21123", "state": "Normal"},
        {"ID": second, "address": "10.0.0.1:21123", "state": "Stopping"},
    ]}


async def test_management_suspend_and_resume(sim: MilvusSimulator) -> None:
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    assert sim.rm.group_of(node) is None
    assert (await call(sim, "node/list"))[1]["nodeInfos"][0]["state"] == "Normal"  # 2.5 never says Suspend
    assert await call(sim, "node/resume", node_id=node) == (200, {"msg": "OK"})
    assert sim.rm.group_of(node) == DEFAULT_RG  # HandleNodeUp: at once
    assert sim.write_rpcs["node/suspend"] == 1 and sim.write_rpcs["node/resume"] == 1


async def test_management_errors_as_the_go_handlers_write_them(sim: MilvusSimulator) -> None:
    # the reason goes into the format string unescaped: with quotes in it the body is not JSON
    assert await raw(sim, "node/suspend") == (
        400, "text/plain", '{"msg": "failed to suspend node, strconv.ParseInt: parsing "": invalid syntax"}')
    assert await raw(sim, "node/resume", node_id="x") == (
        400, "text/plain", '{"msg": "failed to resume node, strconv.ParseInt: parsing "x": invalid syntax"}')
    assert await raw(sim, "transfer/segment", source_node_id="x") == (  # a quote missing in management.go
        400, "text/plain", '{"msg": failed to transfer segment", strconv.ParseInt: parsing "x": invalid syntax"}')
    assert await raw(sim, "node/list") == (200, "text/plain", "{}")  # encoding/json: compact
    assert await call(sim, "node/suspend", node_id=999) == (
        500, {"msg": "failed to suspend node, failed to suspend query node: node not found[node=999]"})
    assert await call(sim, "node/resume", node_id=999) == (
        500, {"msg": "failed to resume node, failed to resume query node: node not found[node=999]"})
    assert await call(sim, "distribution/get", node_id=999) == (500, {
        "msg": "failed to get query node distribution, failed to get query node distribution: "
               "node not found[node=999]"})


async def test_suspend_of_crashed_or_stopping_node_answers_200(sim: MilvusSimulator) -> None:
    crashed = sim.add_node("qn-0", "10.0.0.0:21123")
    stopping = sim.add_node("qn-1", "10.0.0.1:21123")
    sim.add_node("qn-2", "10.0.0.2:21123")
    sim.load_collection("c1", segments=6)
    await wait_for(lambda: all(sim.rm.distribution(n)[1] for n in (crashed, stopping)), message="data on both")
    sim.crash_node(crashed)
    sim.stop_node(stopping)
    assert await call(sim, "node/suspend", node_id=crashed) == (200, {"msg": "OK"})
    assert await call(sim, "node/suspend", node_id=stopping) == (200, {"msg": "OK"})
    assert sim.rm.group_of(crashed) is None  # HandleNodeDown


async def test_management_distribution_shapes_by_version(sim_factory: Callable[..., Any]) -> None:
    for version, strings in (("v2.5.16", True), ("v2.4.23", True), ("v2.4.22", False), ("v2.5.4", False)):
        sim = await sim_factory(version=version, check_interval=5.0)
        busy = sim.add_node("qn-0", "10.0.0.0:21123")
        idle = sim.add_node("qn-1", "10.0.0.1:21123")
        sim.load_collection("c1", segments=2, channels=1)
        sim.rm.move_data(sim.rm.replicas_of("c1")[0], idle, busy)
        channels, segments = sim.rm.distribution(busy)
        body = (await call(sim, "distribution/get", node_id=busy))[1]
        empty = (await call(sim, "distribution/get", node_id=idle))[1]
        if strings:
            assert body == {"channel_names": channels, "sealed_segmentIDs": [str(s) for s in segments]}, version
            assert empty == {"channel_names": None, "sealed_segmentIDs": []}, version
        else:
            assert body == {"channel_names": channels, "sealed_segmentIDs": segments}, version
            assert empty == {}, version


async def test_management_transfer_and_check(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(seed=1, check_interval=5.0)
    first = sim.add_node("qn-0", "10.0.0.0:21123")
    second = sim.add_node("qn-1", "10.0.0.1:21123")
    sim.load_collection("c1")
    status, body = await call(sim, "distribution/get", node_id=first)
    assert status == 200 and (body["channel_names"] or body["sealed_segmentIDs"])
    assert await call(sim, "transfer/segment", source_node_id=first, target_node_id=second) == (200, {"msg": "OK"})
    assert await call(sim, "transfer/channel", source_node_id=first) == (200, {"msg": "OK"})

    async def first_emptied() -> bool:  # the moves run in the background, one balance_delay each
        body = (await call(sim, "distribution/get", node_id=first))[1]
        return body == {"channel_names": None, "sealed_segmentIDs": []}

    await wait_for(first_emptied, timeout=10, message="the source emptied")
    assert (await call(sim, "distribution/check", source_node_id=first, target_node_id=second))[0] == 200
    status, body = await call(sim, "distribution/check", source_node_id=second, target_node_id=first)
    assert status == 500 and "lacks" in body["msg"]
    assert sim.write_rpcs["transfer/segment"] == 1 and sim.write_rpcs["transfer/channel"] == 1


async def test_management_balance_switch(sim: MilvusSimulator) -> None:
    assert await call(sim, "balance/status") == (200, {"msg": "OK", "status": "active"})
    await call(sim, "balance/suspend")
    assert await call(sim, "balance/status") == (200, {"msg": "OK", "status": "suspended"})
    await call(sim, "balance/resume")
    assert (await call(sim, "balance/status"))[1]["status"] == "active"


async def test_management_fault_injection_and_healthz(sim: MilvusSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.management_url}/healthz") as response:
            assert response.status == 200
        sim.set_management_enabled(False)
        assert await raw(sim, "node/list") == (404, "text/plain", "404 page not found\n")
        sim.set_management_enabled(True)
        sim.set_unavailable(True)
        # management.go: a failed coordinator call is HTTP 500 with its merr reason (CheckHealthy)
        assert await raw(sim, "node/list") == (
            500, "text/plain",
            '{"msg": "failed to list query node, service not ready[querycoord=1]: Initializing"}')
        assert await call(sim, "node/suspend", node_id=1) == (
            500, {"msg": "failed to suspend node, service not ready[querycoord=1]: Initializing"})
        assert sim.write_rpcs["node/suspend"] == 0
        async with session.get(f"{sim.management_url}/healthz") as response:
            assert response.status == 200, "the proxy's healthz does not cover the coordinator"


async def test_lifecycle_calls_from_another_thread_wake_the_loop(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(check_interval=60.0)
    node = await asyncio.to_thread(sim.add_node, "qn-0", "10.0.0.0:21123")
    await wait_for(lambda: sim.rm.group_of(node) == DEFAULT_RG, timeout=3, message="assignment after wake-up")


# ---------------------------------------------------------------- timing over the wire (manual clock)
async def test_departed_node_is_replaced_only_at_the_next_tick(clocked: Any) -> None:
    sim, _, client = clocked
    for index in range(3):
        sim.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    await client("update_resource_groups", {DEFAULT_RG: rg_config(0, 0)})
    await client("create_resource_group", "rg1", config=rg_config(1, 1))
    await client("create_resource_group", "spare", config=rg_config(0, 5))
    # the config change wakes the observer: it runs soon, without any time passing
    await wait_sizes(client, {"rg1": 1, "spare": 2, DEFAULT_RG: 0})
    (member,) = (await client("describe_resource_group", "rg1")).nodes
    sim.stop_node(member.node_id)
    assert await group_sizes(client, ["rg1"]) == {"rg1": 0}
    await sim.advance(9.9)
    assert await group_sizes(client, ["rg1"]) == {"rg1": 0}, "no refill before the tick"
    await sim.advance(0.1)
    assert await group_sizes(client, ["rg1", "spare"]) == {"rg1": 1, "spare": 1}
    sim.stop_node((await client("describe_resource_group", "rg1")).nodes[0].node_id)
    sim.tick()  # an observer pass on demand
    assert await group_sizes(client, ["rg1", "spare"]) == {"rg1": 1, "spare": 0}


async def test_crash_gap_is_visible_in_loaded_segments_after_the_session_expires(clocked: Any) -> None:
    sim, _, client = clocked
    for index in range(4):
        sim.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    sim.rm.create_collection("books", segments=4, channels=2)  # sealed segments of equal size: none moves to balance
    await client("update_resource_groups", {DEFAULT_RG: rg_config(0, 0)})
    await client("create_resource_group", "rg1", config=rg_config(2, 2))
    await client("create_resource_group", "rg2", config=rg_config(2, 2))
    await wait_sizes(client, {"rg1": 2, "rg2": 2})
    await client("load_collection", "books", replica_number=2, resource_groups=["rg1", "rg2"])
    replicas = await client("describe_replica", "books")
    assert sorted(r.resource_group for r in replicas) == ["rg1", "rg2"]
    assert all(len(r.shards) == 2 for r in replicas)
    segments = await client("list_loaded_segments", "books")
    assert len(segments) == 4 and all(len(s.node_ids) == 2 for s in segments)  # one node per replica
    victim = segments[0].node_ids[0]
    lost = {s.segment_id for s in segments if victim in s.node_ids}
    sim.crash_node(victim)
    assert len(sim.unserved_segments()) == len(lost)
    # querycoord still lists the dead node's segments until its session expires
    assert all(len(s.node_ids) == 2 for s in await client("list_loaded_segments", "books"))
    await sim.advance(60)
    after_expiry = {s.segment_id: s.node_ids for s in await client("list_loaded_segments", "books")}
    assert all(len(after_expiry[s]) == 1 for s in lost) and all(victim not in nodes for nodes in after_expiry.values())
    await sim.advance(5)  # load_time: another node of the replica has loaded them
    assert all(len(s.node_ids) == 2 for s in await client("list_loaded_segments", "books"))
    assert sim.unserved_segment_seconds() == pytest.approx(len(lost) * 65)
    assert sim.unserved_segments() == []


async def test_suspended_node_is_drained_one_item_per_balance_delay(clocked: Any) -> None:
    sim, _, _ = clocked
    for index in range(2):
        sim.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    sim.load_collection("books", segments=4, channels=2)
    node = max(sim.rm.nodes, key=lambda n: len(sim.rm.distribution(n)[0]) + len(sim.rm.distribution(n)[1]))
    held = len(sim.rm.distribution(node)[0]) + len(sim.rm.distribution(node)[1])
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    for remaining in range(held - 1, -1, -1):
        await sim.advance(1.0)
        body = (await call(sim, "distribution/get", node_id=node))[1]
        assert len(body["channel_names"] or []) + len(body["sealed_segmentIDs"]) == remaining
    assert sim.unserved_segment_seconds() == 0
    assert {n["ID"] for n in (await call(sim, "node/list"))[1]["nodeInfos"]} == set(sim.rm.nodes)


async def test_restart_querycoord_puts_a_suspended_node_back_into_a_group(clocked: Any) -> None:
    sim, _, client = clocked
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    assert await group_sizes(client, [DEFAULT_RG]) == {DEFAULT_RG: 0}
    sim.restart_querycoord()
    assert await group_sizes(client, [DEFAULT_RG]) == {DEFAULT_RG: 1}


async def test_up_to_2_4_9_a_suspended_node_stays_in_its_group_as_suspend(
    sim_factory: Callable[..., Any], client_for: Callable[[MilvusSimulator], Any]
) -> None:
    sim = await sim_factory(version="v2.4.9")
    client = await client_for(sim)
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    assert (await call(sim, "node/list"))[1]["nodeInfos"][0]["state"] == "Suspend"
    assert [n.node_id for n in (await client("describe_resource_group", DEFAULT_RG)).nodes] == [node]
    sim.restart_querycoord()
    assert (await call(sim, "node/list"))[1]["nodeInfos"][0]["state"] == "Normal"


async def test_describe_over_the_wire_hides_nodes_the_filter_rejects(sim: MilvusSimulator, client: Client) -> None:
    east = sim.add_node("east", "10.0.0.1:21123", {"MILVUS_SERVER_LABEL_ZONE": "east"})
    sim.add_node("west", "10.0.0.2:21123", {"MILVUS_SERVER_LABEL_ZONE": "west"})
    await client("update_resource_groups", {DEFAULT_RG: rg_config(0, 0)})
    await client("create_resource_group", "rg1", config=rg_config(0, 2))
    await wait_sizes(client, {"rg1": 2})
    sim.set_unavailable(False)
    with sim.controls.lock:  # one atomic change, before any observer pass moves the west node out
        sim.rm.update_resource_groups({"rg1": RGConfig(0, 2, node_labels=(("ZONE", "east"),))})
        sim.rm.rg_changed = False
    info = await client("describe_resource_group", "rg1")
    assert [n.node_id for n in info.nodes] == [east] and info.num_available_node == 1


# ---------------------------------------------------------------- Milvus 2.3 (measured on a real 2.3.5)
async def test_milvus_2_3_has_no_declarative_groups_and_no_management_routes(
    sim_factory: Callable[..., Any], client_for: Callable[[MilvusSimulator], Any]
) -> None:
    sim = await sim_factory(version="v2.3.5-lite")
    client = await client_for(sim)
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    assert await client("get_server_version") == "v2.3.5-lite"
    await client("create_resource_group", "rg1", config=rg_config(1, 1))  # accepted, config dropped
    with pytest.raises(grpc.RpcError) as caught:
        await client("update_resource_groups", {"rg1": rg_config(1, 1)})
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    default = await client("describe_resource_group", DEFAULT_RG)
    assert default.nodes == [] and not default.config.HasField("limits") and default.num_available_node == 1
    assert (await client.error("create_resource_group", "rg1")).code == 65535
    assert await raw(sim, "node/list") == (404, "text/plain", "404 page not found\n")
    assert await raw(sim, "node/suspend", node_id=node) == (404, "text/plain", "404 page not found\n")


def test_sandbox_config_passes_milvus_timings_and_defaults_follow_milvus() -> None:
    defaults = SandboxConfig()
    assert (defaults.check_interval, defaults.session_ttl, defaults.dist_pull_interval, defaults.replica_check_interval,
            defaults.graceful_stop_timeout) == (10.0, 30.0, 0.5, 60.0, 1800.0)
    assert defaults.balance_delay > 0 and defaults.load_time > 0
    help_texts = {spec.name: spec.metadata.get("help") for spec in dataclasses.fields(SandboxConfig)}
    timings = ("check_interval", "session_ttl", "balance_delay", "load_time", "dist_pull_interval",
               "replica_check_interval", "graceful_stop_timeout")
    assert all(help_texts[name] for name in timings)
    rm = Sandbox(SandboxConfig(session_ttl=7.0, balance_delay=0.5, load_time=3.0, milvus_version="v2.4.9",
                               dist_pull_interval=0.25, replica_check_interval=6.0,
                               graceful_stop_timeout=9.0)).milvus.rm
    assert (rm.session_ttl, rm.balance_delay, rm.load_time, rm.version, rm.dist_pull_interval,
            rm.check_node_in_replica_interval, rm.graceful_stop_timeout) == (7.0, 0.5, 3.0, "v2.4.9", 0.25, 6.0, 9.0)
    assert {name: FAST_TIMINGS[name] * 50 for name in timings} == {name: getattr(defaults, name) for name in timings}
