"""The adapter reads the shapes Milvus really sends: describe_resource_group without a config (2.3),
node/list without hostnames, distribution/get with string or integer ids, management errors."""

from __future__ import annotations

import json

import pytest
from pymilvus.grpc_gen import milvus_pb2, rg_pb2

from milvus_rg_operator.adapters.milvus import ManagementUnavailable, MilvusError, PymilvusGateway
from milvus_rg_operator.core.types import DEFAULT_GROUP, GroupConfig
from tests.adapters.servers import (
    ManagementRoutes,
    ScriptedMilvus,
    closed_port,
    group,
    grpc_milvus,
    management_api,
)


def config(requests: int, limits: int) -> rg_pb2.ResourceGroupConfig:
    return rg_pb2.ResourceGroupConfig(requests=rg_pb2.ResourceGroupLimit(node_num=requests),
                                      limits=rg_pb2.ResourceGroupLimit(node_num=limits))


def listed(*names: str) -> milvus_pb2.ListResourceGroupsResponse:
    return milvus_pb2.ListResourceGroupsResponse(resource_groups=list(names))


async def test_milvus_2_3_describe_without_config_is_not_read_as_limits_0() -> None:
    """2.3.5 answers describe with `nodes: []` and an empty config, even for groups with nodes."""
    servicer = ScriptedMilvus(version="v2.3.5-lite", answers={
        "ListResourceGroups": listed(DEFAULT_GROUP),
        "DescribeResourceGroup": group(DEFAULT_GROUP, 1_000_000, available=1),
    })
    async with grpc_milvus(servicer) as uri:
        gateway = PymilvusGateway(uri, management_uri=f"http://127.0.0.1:{closed_port()}", timeout=2)
        try:
            state = await gateway.observe()
        finally:
            await gateway.close()
    default = state.groups[DEFAULT_GROUP]
    assert default.config_known is False
    assert default.config.limits == 1_000_000 and default.config.requests == 0
    assert default.node_ids == () and state.management_available is False


async def test_a_reported_config_is_known_even_when_zero() -> None:
    servicer = ScriptedMilvus(answers={"ListResourceGroups": listed("rg1"),
                                       "DescribeResourceGroup": group("rg1", 0, config=config(0, 0))})
    async with grpc_milvus(servicer) as uri:
        gateway = PymilvusGateway(uri, management_uri=f"http://127.0.0.1:{closed_port()}", timeout=2)
        try:
            state = await gateway.observe(with_node_states=False)
        finally:
            await gateway.close()
    assert state.groups["rg1"].config_known and state.groups["rg1"].config == GroupConfig(0, 0)


async def test_node_list_without_hostnames_keeps_hostnames_from_describe() -> None:
    servicer = ScriptedMilvus(answers={
        "ListResourceGroups": listed("rg1"),
        "DescribeResourceGroup": group("rg1", 1, config=config(1, 1), nodes=((3, "10.0.0.3:21123", "qn-0"),)),
    })
    routes = ManagementRoutes(answers={"node/list": (200, json.dumps({"nodeInfos": [
        {"ID": 3, "address": "10.0.0.3:21123", "state": "Normal"},
        {"ID": 4, "address": "10.0.0.4:21123", "state": "Normal"},  # suspended: in no group
        {"ID": 5, "address": "10.0.0.5:21123"},  # empty fields are left out
    ]}))})
    async with grpc_milvus(servicer) as uri, management_api(routes) as management:
        gateway = PymilvusGateway(uri, management_uri=management, timeout=2)
        try:
            state = await gateway.observe()
        finally:
            await gateway.close()
    assert state.management_available
    assert (state.nodes[3].hostname, state.nodes[3].state) == ("qn-0", "Normal")
    assert (state.nodes[4].hostname, state.nodes[4].address, state.nodes[4].state) == ("", "10.0.0.4:21123", "Normal")
    assert state.nodes[5].state == "Unknown"
    assert state.groups["rg1"].node_ids == (3,)


@pytest.mark.parametrize(("body", "segments", "channels"), [
    ('{"channel_names":["by-dev-rootcoord-dml_0_1v0"],"sealed_segmentIDs":["449","450","451"]}', 3, 1),
    ('{"channel_names":null,"sealed_segmentIDs":null}', 0, 0),  # 2.4.23+: empty lists as null
    ('{"channelNames":[],"sealed_segmentIDs":[449,450]}', 2, 0),  # older: integer ids
    ("{}", 0, 0),  # older: empty keys left out
])
async def test_distribution_shapes(body: str, segments: int, channels: int) -> None:
    routes = ManagementRoutes(answers={"distribution/get": (200, body)})
    async with management_api(routes) as management:
        gateway = PymilvusGateway("http://127.0.0.1:1", management_uri=management, timeout=2)
        try:
            distribution = await gateway.distribution(4)
        finally:
            await gateway.close()
    assert (distribution.segments, distribution.channels) == (segments, channels)
    assert routes.requests == [("distribution/get", {"node_id": "4"})]


@pytest.mark.parametrize(("status", "body", "expected"), [
    (500, '{"msg": "failed to suspend node, node not found[node=9]"}',
     "HTTP 500: failed to suspend node, node not found[node=9]"),
    (400, '{"msg": "failed to suspend node, strconv.ParseInt: parsing \\"x\\": invalid syntax"}',
     'HTTP 400: failed to suspend node, strconv.ParseInt: parsing "x": invalid syntax'),
    # the proxy formats reasons into JSON unescaped: a quote in the reason makes it invalid JSON
    (500, '{"msg": "failed to suspend node, bad "quoted" reason"}', 'HTTP 500: {"msg": "failed to suspend node, bad'),
])
async def test_management_errors_carry_the_message(status: int, body: str, expected: str) -> None:
    routes = ManagementRoutes(answers={"node/suspend": (status, body)})
    async with management_api(routes) as management:
        gateway = PymilvusGateway("http://127.0.0.1:1", management_uri=management, timeout=2)
        try:
            with pytest.raises(MilvusError) as caught:
                await gateway.suspend_node(9)
        finally:
            await gateway.close()
    assert type(caught.value) is MilvusError and not caught.value.unreachable
    assert expected in caught.value.message and caught.value.code is None


async def test_missing_routes_and_no_server_are_management_unavailable() -> None:
    async with management_api(ManagementRoutes()) as management:  # Milvus 2.3 answers 404
        gateway = PymilvusGateway("http://127.0.0.1:1", management_uri=management, timeout=2)
        try:
            with pytest.raises(ManagementUnavailable, match="HTTP 404"):
                await gateway.suspend_node(1)
        finally:
            await gateway.close()
    gateway = PymilvusGateway("http://127.0.0.1:1", management_uri=f"http://127.0.0.1:{closed_port()}", timeout=2)
    try:
        with pytest.raises(ManagementUnavailable) as caught:
            await gateway.distribution(1)
    finally:
        await gateway.close()
    assert caught.value.unreachable


async def test_a_200_that_is_not_json_is_an_error_not_an_outage() -> None:
    routes = ManagementRoutes(answers={"node/resume": (200, "<html>proxy</html>")})
    async with management_api(routes) as management:
        gateway = PymilvusGateway("http://127.0.0.1:1", management_uri=management, timeout=2)
        try:
            with pytest.raises(MilvusError, match="not JSON") as caught:
                await gateway.resume_node(1)
        finally:
            await gateway.close()
    assert not caught.value.unreachable
