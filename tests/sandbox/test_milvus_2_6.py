"""Milvus 2.6 over the wire: streaming nodes serve the channels, their embedded query nodes are listed but never
grouped, MixCoord, the 2.6.8 resource-group label, 2.6.16 streaming-node isolation, milvus#53176, master's
"Suspend" state (docs/sandbox.md, the 2.6 column)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from milvus_rg_sandbox.milvus.simulator import ManualClock, MilvusSimulator
from milvus_rg_sandbox.options import build_parser, config_from_args
from milvus_rg_sandbox.sandbox import Sandbox, query_node_statefulset
from milvus_rg_sandbox.workloads import PODS, STATEFULSETS, pod_is_ready
from tests.support import wait_for

from .milvus_helpers import DEFAULT_RG, call, client_for, distribution, raw, rg_config, sim_factory

__all__ = ["client_for", "sim_factory"]  # fixtures imported for pytest

SimFactory = Callable[..., Any]


async def streaming_sim(sim_factory: SimFactory, version: str = "v2.6.8", **kwargs: Any) -> MilvusSimulator:
    return await sim_factory(version=version, clock=ManualClock(), seed=2, check_interval=10.0, **kwargs)


def embedded_ids(sim: MilvusSimulator) -> list[int]:
    return sorted(n for n, node in sim.rm.nodes.items() if node.embedded)


async def test_streaming_nodes_serve_the_channels_and_query_nodes_the_sealed_segments(
    sim_factory: SimFactory, client_for: Callable[[MilvusSimulator], Any]
) -> None:
    sim = await streaming_sim(sim_factory)  # one streaming node by default on 2.6
    client = await client_for(sim)
    (streaming,) = embedded_ids(sim)
    nodes = [sim.add_node(f"qn-{i}", f"10.0.0.{i}:21123") for i in range(2)]
    sim.load_collection("books", segments=4, channels=2)
    channels, segments = zip(*[await distribution(sim, n) for n in nodes], strict=True)
    assert channels == ([], []), "2.6 query nodes hold no delegator"
    assert sorted(s for held in segments for s in held) == sorted(map(str, sim.rm.collections["books"].segment_ids))
    assert await raw(sim, "distribution/get", node_id=nodes[0]) == (
        200, "text/plain", '{"channel_names":null,"sealed_segmentIDs":' + str(list(segments[0])).replace("'", '"')
        .replace(" ", "") + "}")
    assert await distribution(sim, streaming) == (sorted(sim.rm.collections["books"].channels), [])
    listed = (await call(sim, "node/list"))[1]["nodeInfos"]
    assert [(n["ID"], n["state"]) for n in listed] == [(streaming, "Normal"), *((n, "Normal") for n in nodes)]
    default = await client("describe_resource_group", DEFAULT_RG)
    assert sorted(n.node_id for n in default.nodes) == nodes and default.num_available_node == 2
    (replica,) = await client("describe_replica", "books")
    assert sorted(replica.group_nodes) == nodes
    assert {shard.shard_leader for shard in replica.shards} == {streaming}


async def test_an_embedded_query_node_refuses_resume_and_suspend_leaves_its_channels_in_place(
    sim_factory: SimFactory,
) -> None:
    """ops_services.go `ResumeNode` (2.6) refuses it (1100); `SuspendNode` -> `HandleNodeDown` finds it in no
    group and does nothing: its delegators never drain (milvus#53176)."""
    sim = await streaming_sim(sim_factory, streaming_nodes=2)
    sim.add_node("qn-0", "10.0.0.0:21123")
    sim.load_collection("books", segments=2, channels=2)
    holder = next(n for n in embedded_ids(sim) if sim.held_by(n)[0])
    held = sim.held_by(holder)
    assert await raw(sim, "node/resume", node_id=holder) == (
        500, "text/plain",
        '{"msg": "failed to resume node, embedded query node in streaming node can\'t be resumed: invalid parameter"}')
    assert await call(sim, "node/suspend", node_id=holder) == (200, {"msg": "OK"})
    await sim.advance(3600.0)
    assert sim.held_by(holder) == held and await distribution(sim, holder) == (held[0], [])
    assert sim.rm.group_of(holder) is None


async def test_a_stopping_streaming_node_hands_its_channels_to_another(sim_factory: SimFactory) -> None:
    sim = await streaming_sim(sim_factory, streaming_nodes=2, balance_delay=1.0)
    sim.add_node("qn-0", "10.0.0.0:21123")
    sim.load_collection("books", segments=2, channels=2)
    leaving, staying = sorted(embedded_ids(sim), key=lambda n: -len(sim.held_by(n)[0]))
    assert sim.held_by(leaving)[0]
    sim.stop_node(leaving)
    await sim.advance(2.0)  # one channel per balance_delay
    assert sim.node_gone(leaving)
    assert sim.held_by(staying)[0] == sorted(sim.rm.collections["books"].channels)
    assert sim.unserved_channel_seconds() == 0


async def test_mixcoord_is_the_unavailable_coordinator(sim_factory: SimFactory) -> None:
    sim = await streaming_sim(sim_factory)
    sim.set_unavailable(True)
    assert await call(sim, "node/list") == (
        500, {"msg": "failed to list query node, service not ready[mixcoord=1]: Initializing"})


async def test_transfer_segment_refuses_an_embedded_query_node_as_destination(sim_factory: SimFactory) -> None:
    sim = await streaming_sim(sim_factory)
    (streaming,) = embedded_ids(sim)
    node = sim.add_node("qn-0", "10.0.0.0:21123")
    sim.load_collection("books", segments=2, channels=1)
    assert await call(sim, "transfer/segment", source_node_id=node, target_node_id=streaming) == (500, {
        "msg": "failed to transfer segment, embedded query node in streaming node can't be the destination of "
               "transfer segment: invalid parameter"})


async def test_a_labelled_query_node_creates_its_group_recovery_may_move_it_and_the_label_blocks_the_drop(
    sim_factory: SimFactory, client_for: Callable[[MilvusSimulator], Any]
) -> None:
    sim = await streaming_sim(sim_factory)
    client = await client_for(sim)
    node = sim.add_node("qn-0", "10.0.0.0:21123", {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "static_rg"})
    assert sim.rm.group_of(node) == "static_rg"
    static = await client("describe_resource_group", "static_rg")
    assert (static.config.requests.node_num, static.config.limits.node_num) == (0, 1_000_000)
    await client("create_resource_group", "rg2", config=rg_config(1, 1))
    sim.tick()
    assert sim.rm.group_of(node) == "rg2", "AcceptNode ignores the label: the oversized group gives it up"
    await client("update_resource_groups", {"static_rg": rg_config(0, 0)})
    sim.crash_node(node)  # its session lives until the TTL
    refused = await client.error("drop_resource_group", "static_rg")
    assert (refused.code, refused.message) == (1100, "invalid parameter[expected=not empty resource group]"
                                                     f"[actual=node {node} is still in the resource group]")
    await sim.advance(30.0)
    await client("drop_resource_group", "static_rg")
    assert "static_rg" not in await client("list_resource_groups")


async def two_replicas_over_groups(sim: MilvusSimulator, client: Any) -> None:
    for index, group in enumerate(("rg1", "rg2")):
        await client("create_resource_group", group, config=rg_config(1, 1))
        sim.add_node(f"qn-{index}", f"10.0.0.{index}:21123")
    sim.tick()
    sim.load_collection("books", replica_number=2, resource_groups=["rg1", "rg2"], segments=2, channels=1)


def delegators(sim: MilvusSimulator) -> dict[str, str]:
    """resource group of each replica -> hostname of the streaming node holding its channel."""
    return {r.resource_group: sim.rm.nodes[h.node].hostname
            for r in sim.rm.replicas_of("books") for h in r.channels.values() if h.node is not None}


async def test_streaming_nodes_are_shared_across_groups_before_2_6_16_and_isolated_from_it(
    sim_factory: SimFactory, client_for: Callable[[MilvusSimulator], Any]
) -> None:
    placed = {}
    for version in ("v2.6.15", "v2.6.16"):
        sim = await streaming_sim(sim_factory, version=version, streaming_nodes=0)
        client = await client_for(sim)
        sim.add_streaming_node("sn-of-rg2", "10.0.1.1:22222", {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "rg2"})
        sim.add_streaming_node("sn-of-rg1", "10.0.1.2:22222",
                               {"MILVUS_SERVER_LABEL_STREAMINGNODE_RESOURCE_GROUP": "rg1"})  # role-specific
        await two_replicas_over_groups(sim, client)
        placed[version] = delegators(sim)
    assert placed["v2.6.15"] == {"rg1": "sn-of-rg2", "rg2": "sn-of-rg1"}, "one pool, in order"
    assert placed["v2.6.16"] == {"rg1": "sn-of-rg1", "rg2": "sn-of-rg2"}, "each replica its group's streaming node"


async def test_strict_isolation_leaves_a_replica_without_a_streaming_node_of_its_group_with_no_delegator(
    sim_factory: SimFactory, client_for: Callable[[MilvusSimulator], Any]
) -> None:
    served = {}
    for strict in (False, True):
        sim = await streaming_sim(sim_factory, version="v2.6.16", streaming_nodes=0,
                                  streaming_strict_rg_isolation=strict)
        client = await client_for(sim)
        sim.add_streaming_node("sn-of-rg1", "10.0.1.1:22222", {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "rg1"})
        sim.add_streaming_node("sn-of-rg9", "10.0.1.2:22222", {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "rg9"})
        await two_replicas_over_groups(sim, client)
        served[strict] = delegators(sim)
    assert served[False] == {"rg1": "sn-of-rg1", "rg2": "sn-of-rg9"}, "rg2 is not covered: one pool for all"
    assert served[True] == {"rg1": "sn-of-rg1"}, "strict: rg2's replica gets no streaming node"


async def test_master_lists_a_node_in_no_group_as_suspend(sim_factory: SimFactory) -> None:
    states = {}
    for version in ("v2.6.23", "v3.0.0"):
        sim = await streaming_sim(sim_factory, version=version)
        node = sim.add_node("qn-0", "10.0.0.0:21123")
        assert await call(sim, "node/suspend", node_id=node) == (200, {"msg": "OK"})
        states[version] = [n["state"] for n in (await call(sim, "node/list"))[1]["nodeInfos"]]
    assert states == {"v2.6.23": ["Normal", "Normal"], "v3.0.0": ["Suspend", "Suspend"]}, "streaming node first"


async def ready_pod(sandbox: Sandbox, name: str) -> dict[str, Any] | None:
    pod = await sandbox.kube.store.get(PODS, "default", name)
    return pod if pod is not None and pod_is_ready(pod) else None


async def test_a_streaming_node_pod_registers_through_the_wiring(sandbox_factory: Any) -> None:
    for version, registers in (("v2.6.8", True), ("v2.5.16", False)):
        sandbox: Sandbox = await sandbox_factory(milvus_version=version, streaming_nodes=0)
        manifest = query_node_statefulset("milvus-streamingnode", 1, "default",
                                          {"MILVUS_SERVER_LABEL_RESOURCE_GROUP": "rg1"})
        template = manifest["spec"]["template"]
        template["spec"]["containers"][0]["command"] = ["milvus", "run", "streamingnode"]
        for labels in (manifest["metadata"]["labels"], manifest["spec"]["selector"]["matchLabels"],
                       template["metadata"]["labels"]):
            labels["app.kubernetes.io/component"] = "streamingnode"
        await sandbox.kube.store.create(STATEFULSETS, manifest)
        pod = await wait_for(lambda sandbox=sandbox: ready_pod(sandbox, "milvus-streamingnode-0"), message="Ready")
        uid = pod["metadata"]["uid"]
        if not registers:
            assert sandbox.milvus.rm.nodes == {} and sandbox.wiring.node_id(uid) is None
            continue
        node_id = await wait_for(lambda sandbox=sandbox, uid=uid: sandbox.wiring.node_id(uid),
                                 message="streaming node registered")
        node = sandbox.milvus.rm.nodes[node_id]
        assert (node.embedded, node.hostname, node.address, node.labels) == (
            True, "milvus-streamingnode-0", f"{pod['status']['podIP']}:22222", {"RESOURCE_GROUP": "rg1"})
        assert sandbox.milvus.rm.group_of(node_id) is None and "rg1" not in sandbox.milvus.rm.groups


def test_streaming_options() -> None:
    args = build_parser().parse_args(["--milvus-version", "v2.6.16", "--streaming-nodes", "2",
                                      "--streaming-strict-rg-isolation"])
    config = config_from_args(args)
    assert (config.streaming_nodes, config.streaming_strict_rg_isolation) == (2, True)
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.streaming_nodes, defaults.streaming_strict_rg_isolation) == (None, False)
