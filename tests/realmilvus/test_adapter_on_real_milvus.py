"""The adapter against a real Milvus 2.3.5: what it reads, and how it reports what 2.3 lacks. The codes
asserted here were measured on this server (docs: shared reference milvus-source-facts.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from milvus_rg_operator.adapters.milvus import (
    ManagementUnavailable,
    MilvusError,
    MilvusUnsupported,
    PymilvusGateway,
)
from milvus_rg_operator.core import versions
from milvus_rg_operator.core.types import DEFAULT_GROUP, DEFAULT_GROUP_LIMIT, GroupConfig
from tests.realmilvus.conftest import RealMilvus


@pytest.fixture
async def gateway(real_milvus: RealMilvus) -> AsyncIterator[PymilvusGateway]:
    gateway = PymilvusGateway(real_milvus.uri, management_uri=real_milvus.management_uri, timeout=10)
    try:
        yield gateway
    finally:
        await gateway.close()


async def test_reports_its_version_and_is_refused(gateway: PymilvusGateway) -> None:
    reported = await gateway.server_version()
    assert reported == "v2.3.5-lite"
    support = versions.milvus_support(reported)
    assert not support.supported
    assert support.message == ("Milvus v2.3.5-lite is older than 2.4.1: resource group configs "
                               "(UpdateResourceGroups) are not supported")


async def test_describe_without_nodes_or_config_is_read_without_inventing_limits(gateway: PymilvusGateway) -> None:
    state = await gateway.observe()
    assert list(state.groups) == [DEFAULT_GROUP]
    default = state.groups[DEFAULT_GROUP]
    assert default.config_known is False  # 2.3 answers an empty config ...
    assert default.config == GroupConfig(0, DEFAULT_GROUP_LIMIT)  # ... which is never read as limits 0
    assert default.node_ids == ()  # and `nodes: []` although its query node is in it
    assert state.management_available is False  # node/list answers 404


async def test_update_resource_groups_is_unsupported(gateway: PymilvusGateway) -> None:
    with pytest.raises(MilvusUnsupported) as caught:
        await gateway.update_groups({DEFAULT_GROUP: GroupConfig(0, DEFAULT_GROUP_LIMIT)})
    assert caught.value.rpc == "update_resource_groups" and not caught.value.unreachable
    assert "unknown method UpdateResourceGroups" in caught.value.message


async def test_create_and_drop_codes_as_measured(gateway: PymilvusGateway) -> None:
    await gateway.create_group("rg_probe", GroupConfig(1, 2))
    try:
        state = await gateway.observe(with_node_states=False)
        probe = state.groups["rg_probe"]
        assert probe.config_known is False  # 2.3 accepted the config and dropped it
        with pytest.raises(MilvusError) as again:
            await gateway.create_group("rg_probe", GroupConfig(1, 2))
        assert again.value.code == 65535 and "already exist" in again.value.message
    finally:
        await gateway.drop_group("rg_probe")
    with pytest.raises(MilvusError) as bad_name:
        await gateway.create_group("bad-name", GroupConfig(0, 0))
    assert bad_name.value.code == 1100 and "bad-name" in bad_name.value.message
    with pytest.raises(MilvusError) as default:
        await gateway.drop_group(DEFAULT_GROUP)
    assert default.value.code == 65535 and "default rg" in default.value.message
    await gateway.drop_group("rg_absent")  # dropping a missing group succeeds
    assert list((await gateway.observe(with_node_states=False)).groups) == [DEFAULT_GROUP]


async def test_management_routes_are_missing(gateway: PymilvusGateway) -> None:
    with pytest.raises(ManagementUnavailable, match="HTTP 404"):
        await gateway.suspend_node(1)
    with pytest.raises(ManagementUnavailable, match="HTTP 404"):
        await gateway.distribution(1)


async def test_pymilvus_logs_no_traceback_for_failed_calls(gateway: PymilvusGateway,
                                                           pymilvus_records: list[logging.LogRecord]) -> None:
    with pytest.raises(MilvusUnsupported):
        await gateway.update_groups({DEFAULT_GROUP: GroupConfig(0, DEFAULT_GROUP_LIMIT)})
    with pytest.raises(MilvusError):
        await gateway.drop_group(DEFAULT_GROUP)
    assert pymilvus_records == []
