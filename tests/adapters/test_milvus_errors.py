"""How the adapter reports each way a Milvus call can fail, against real gRPC servers (pymilvus 3.0.2 on
the client side, a scripted server built from pymilvus' generated servicer on the other)."""

from __future__ import annotations

import logging

import grpc
import pytest
from pymilvus import AsyncMilvusClient
from pymilvus.decorators import error_handler
from pymilvus.exceptions import MilvusException

from milvus_rg_operator.adapters.milvus import (
    MilvusAuthError,
    MilvusError,
    MilvusUnavailable,
    MilvusUnsupported,
    PymilvusGateway,
)
from milvus_rg_operator.adapters.milvus.errors import classify
from milvus_rg_operator.core.types import GroupConfig
from tests.adapters.servers import Abort, ScriptedMilvus, Stall, closed_port, grpc_milvus, milvus_status


async def test_unimplemented_rpc_is_unsupported_naming_the_call() -> None:
    async with grpc_milvus(ScriptedMilvus()) as uri:  # UpdateResourceGroups is not implemented
        gateway = PymilvusGateway(uri, timeout=2)
        try:
            with pytest.raises(MilvusUnsupported) as caught:
                await gateway.update_groups({"rg1": GroupConfig(1, 1)})
        finally:
            await gateway.close()
    assert caught.value.rpc == "update_resource_groups"
    assert "UNIMPLEMENTED" in caught.value.message and not caught.value.unreachable
    assert caught.value.code is None


@pytest.mark.parametrize("status", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
async def test_a_server_failing_until_the_timeout_is_unavailable(status: grpc.StatusCode) -> None:
    servicer = ScriptedMilvus(answers={"ListResourceGroups": Abort(status, "down")})
    async with grpc_milvus(servicer) as uri:
        gateway = PymilvusGateway(uri, timeout=0.5)
        try:
            with pytest.raises(MilvusUnavailable) as caught:
                await gateway.observe(with_node_states=False)
        finally:
            await gateway.close()
    assert caught.value.unreachable and caught.value.code is None
    assert servicer.calls.count("ListResourceGroups") > 1  # pymilvus retried before giving up


async def test_deadline_exceeded_is_unavailable() -> None:
    servicer = ScriptedMilvus(answers={"GetVersion": Abort(grpc.StatusCode.DEADLINE_EXCEEDED, "too slow")})
    async with grpc_milvus(servicer) as uri:
        gateway = PymilvusGateway(uri, timeout=1)
        try:
            with pytest.raises(MilvusUnavailable, match="DEADLINE_EXCEEDED"):
                await gateway.server_version()
        finally:
            await gateway.close()


async def test_a_server_that_never_answers_is_unavailable_within_the_timeout() -> None:
    async with grpc_milvus(ScriptedMilvus(answers={"ListResourceGroups": Stall(5)})) as uri:
        gateway = PymilvusGateway(uri, timeout=0.3)
        try:
            with pytest.raises(MilvusUnavailable, match=r"did not answer within 0\.3s"):
                await gateway.observe(with_node_states=False)
        finally:
            await gateway.close()


async def test_connection_refused_is_unavailable() -> None:
    gateway = PymilvusGateway(f"http://127.0.0.1:{closed_port()}", timeout=1)
    try:
        with pytest.raises(MilvusUnavailable, match="cannot reach Milvus") as caught:
            await gateway.server_version()
    finally:
        await gateway.close()
    assert "UNAVAILABLE" in caught.value.message


async def test_milvus_codes_keep_their_code() -> None:
    servicer = ScriptedMilvus(answers={
        "CreateResourceGroup": milvus_status(1100, "resource group name can only contain numbers"),
        "DropResourceGroup": milvus_status(65535, "delete default rg is not permitted"),
    })
    async with grpc_milvus(servicer) as uri:
        gateway = PymilvusGateway(uri, timeout=2)
        try:
            with pytest.raises(MilvusError) as created:
                await gateway.create_group("bad_name", GroupConfig(1, 1))
            with pytest.raises(MilvusError) as dropped:
                await gateway.drop_group("__default_resource_group")
        finally:
            await gateway.close()
    assert type(created.value) is MilvusError and created.value.code == 1100
    assert "can only contain numbers" in created.value.message and not created.value.unreachable
    assert dropped.value.code == 65535


async def test_unauthenticated_is_an_auth_error() -> None:
    servicer = ScriptedMilvus(answers={"ListResourceGroups": Abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")})
    async with grpc_milvus(servicer) as uri:
        gateway = PymilvusGateway(uri, token="root:wrong", timeout=2)
        try:
            with pytest.raises(MilvusAuthError, match="bad token"):
                await gateway.observe(with_node_states=False)
        finally:
            await gateway.close()


async def test_a_bug_inside_a_pymilvus_call_propagates_as_itself() -> None:
    """pymilvus' error_handler turns any exception into MilvusException("Unexpected error"); the adapter
    hands back the original instead of calling Milvus unreachable."""

    @error_handler(func_name="describe_resource_group")
    async def broken() -> None:
        raise TypeError("unsupported operand")

    with pytest.raises(MilvusException) as wrapped:
        await broken()
    with pytest.raises(TypeError, match="unsupported operand"):
        classify("describe_resource_group", "http://127.0.0.1:1", 1.0, wrapped.value)


async def test_pymilvus_logs_nothing_for_the_adapters_calls(pymilvus_records: list[logging.LogRecord]) -> None:
    async with grpc_milvus(ScriptedMilvus()) as uri:
        gateway = PymilvusGateway(uri, timeout=2)
        try:
            with pytest.raises(MilvusUnsupported):
                await gateway.update_groups({"rg1": GroupConfig(1, 1)})
        finally:
            await gateway.close()
        assert pymilvus_records == []
        # The same failure outside the adapter is still logged by pymilvus: the filter is scoped.
        client = AsyncMilvusClient(uri=uri, timeout=2)
        try:
            with pytest.raises(grpc.RpcError):
                await client.update_resource_groups({}, timeout=2)
        finally:
            await client.close()
    assert any(r.levelno == logging.ERROR for r in pymilvus_records)
