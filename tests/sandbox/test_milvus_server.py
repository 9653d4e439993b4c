"""The simulator over the wire: real pymilvus over real gRPC, and the management routes over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar

import aiohttp
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.client.types import ResourceGroupConfig

from milvus_rg_sandbox.milvus.simulator import MilvusSimulator
from tests.support import wait_for

DEFAULT_RG = "__default_resource_group"
PENDING = "__pending_nodes"
T = TypeVar("T")


def rg_config(requests: int, limits: int, via: str | None = None) -> ResourceGroupConfig:
    transfers = [{"resource_group": via}] if via else []
    return ResourceGroupConfig(
        requests={"node_num": requests}, limits={"node_num": limits}, transfer_from=transfers, transfer_to=transfers
    )


class Client:
    """Runs the blocking pymilvus client in a thread, so the simulator's loop keeps serving."""

    def __init__(self, uri: str, **kwargs: Any) -> None:
        self.client = MilvusClient(uri=uri, **kwargs)

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(partial(getattr(self.client, method), *args, **kwargs))

    async def error(self, method: str, *args: Any, **kwargs: Any) -> MilvusException:
        with pytest.raises(MilvusException) as caught:
            await self(method, *args, **kwargs)
        return caught.value


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


async def group_sizes(client: Client, names: list[str]) -> dict[str, int]:
    return {name: len((await client("describe_resource_group", name)).nodes) for name in names}


async def wait_sizes(client: Client, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 5
    while (actual := await group_sizes(client, list(expected))) != expected:
        assert time.monotonic() < deadline, f"group sizes stayed {actual}, expected {expected}"
        await asyncio.sleep(0.02)  # poll interval, not a wait for the outcome


# ---------------------------------------------------------------- gRPC
async def test_start_is_fast_and_version_is_served(sim: MilvusSimulator, client: Client) -> None:
    assert sim.uri.startswith("http://127.0.0.1:") and sim.grpc_port != 0
    assert await client("get_server_version") == "v2.5.4"


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
    assert refused.code == 1100 and refused.message == "resource group's limits node num is not 0"
    await client("drop_resource_group", "absent")


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


@pytest.fixture
async def sim_factory() -> AsyncIterator[Callable[..., Any]]:
    started: list[MilvusSimulator] = []

    async def make(**kwargs: Any) -> MilvusSimulator:
        simulator = MilvusSimulator(grpc_port=0, management_port=0, **kwargs)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        await simulator.stop()


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
    sim.rm.add_node("qn-0", "10.0.0.0:21123")  # straight into the RM: no wake-up
    await wait_for(lambda: sim.rm.group_of(1) == DEFAULT_RG, timeout=3)


# ---------------------------------------------------------------- management HTTP
async def call(sim: MilvusSimulator, route: str, **params: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{sim.management_url}/management/querycoord/{route}", data={k: str(v) for k, v in params.items()}
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_management_node_list_suspend_resume(sim: MilvusSimulator) -> None:
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    await sim.recover_now()
    status, body = await call(sim, "node/list")
    assert status == 200
    assert body == {"status": {}, "nodeInfos": [{"ID": node, "address": "10.0.0.0:21123", "state": "Healthy"}]}
    assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
    assert sim.rm.group_of(node) is None
    assert (await call(sim, "node/list"))[1]["nodeInfos"][0]["state"] == "Suspend"
    assert await call(sim, "node/resume", node_id=node) == (200, {"msg": "OK"})
    await wait_for(lambda: sim.rm.group_of(node) == DEFAULT_RG, timeout=3)
    assert sim.write_rpcs["node/suspend"] == 1 and sim.write_rpcs["node/resume"] == 1
    status, body = await call(sim, "node/suspend")
    assert status == 400 and "node_id" in body["msg"]
    status, body = await call(sim, "node/suspend", node_id=999)
    assert status == 500 and "node not found" in body["msg"]


async def test_management_distribution_and_transfer(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(seed=1, check_interval=5.0)
    first = sim.add_node("qn-0", "10.0.0.0:21123")
    second = sim.add_node("qn-1", "10.0.0.1:21123")
    await sim.recover_now()
    sim.rm.create_collection("c1")
    sim.rm.load_collection("c1")
    status, body = await call(sim, "distribution/get", node_id=first)
    assert status == 200 and body["msg"] == "OK" and (body["channel_names"] or body["sealed_segmentIDs"])
    assert await call(sim, "transfer/segment", source_node_id=first, target_node_id=second) == (200, {"msg": "OK"})
    assert await call(sim, "transfer/channel", source_node_id=first) == (200, {"msg": "OK"})
    assert (await call(sim, "distribution/get", node_id=first))[1] == {
        "msg": "OK", "channel_names": [], "sealed_segmentIDs": []
    }
    assert (await call(sim, "distribution/check", source_node_id=first, target_node_id=second))[0] == 200
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
        assert (await call(sim, "node/list"))[0] == 404
        sim.set_management_enabled(True)
        sim.set_unavailable(True)
        assert (await call(sim, "node/list"))[0] == 503
        async with session.get(f"{sim.management_url}/healthz") as response:
            assert response.status == 503


async def test_lifecycle_calls_from_another_thread_wake_the_loop(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(check_interval=60.0)
    node = await asyncio.to_thread(sim.add_node, "qn-0", "10.0.0.0:21123")
    await wait_for(lambda: sim.rm.group_of(node) == DEFAULT_RG, timeout=3, message="assignment after wake-up")
