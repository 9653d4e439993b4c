"""Small real servers for the adapter tests: a gRPC Milvus service built from pymilvus' generated
servicer (answers as configured per RPC) and an aiohttp management API serving given bodies."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, rg_pb2

# What an RPC answers: a response message, a gRPC status to abort with, or a coroutine to wait on first.
Answer = Any


@dataclass(frozen=True)
class Abort:
    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Stall:
    """Never answer within the client's deadline."""

    seconds: float


@dataclass
class ScriptedMilvus(milvus_pb2_grpc.MilvusServiceServicer):  # type: ignore[misc]
    """RPCs not set in `answers` are not implemented (the generated servicer answers UNIMPLEMENTED, as
    grpc-go does for a method the server lacks)."""

    version: str = "v2.5.4"
    answers: dict[str, Answer] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def _answer(self, rpc: str, context: grpc.aio.ServicerContext, default: Callable[[], Any]) -> Any:
        self.calls.append(rpc)
        answer = self.answers.get(rpc)
        if isinstance(answer, Abort):
            await context.abort(answer.code, answer.details)
        if isinstance(answer, Stall):
            await asyncio.sleep(answer.seconds)
            return default()
        return default() if answer is None else answer

    async def Connect(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("Connect", context, lambda: milvus_pb2.ConnectResponse(
            status=common_pb2.Status(), server_info=common_pb2.ServerInfo(build_tags=self.version), identifier=1))

    async def GetVersion(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("GetVersion", context, lambda: milvus_pb2.GetVersionResponse(
            status=common_pb2.Status(), version=self.version))

    async def ListResourceGroups(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("ListResourceGroups", context, lambda: milvus_pb2.ListResourceGroupsResponse(
            status=common_pb2.Status(), resource_groups=["__default_resource_group"]))

    async def DescribeResourceGroup(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("DescribeResourceGroup", context, lambda: milvus_pb2.DescribeResourceGroupResponse(
            status=common_pb2.Status(),
            resource_group=milvus_pb2.ResourceGroup(name=request.resource_group, capacity=1_000_000)))

    async def CreateResourceGroup(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("CreateResourceGroup", context, common_pb2.Status)

    async def DropResourceGroup(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("DropResourceGroup", context, common_pb2.Status)


def milvus_status(code: int, reason: str) -> common_pb2.Status:
    return common_pb2.Status(code=code, reason=reason, error_code=common_pb2.UnexpectedError)


def group(name: str, capacity: int, config: rg_pb2.ResourceGroupConfig | None = None,
          nodes: tuple[tuple[int, str, str], ...] = (), available: int = 0) -> Any:
    return milvus_pb2.DescribeResourceGroupResponse(status=common_pb2.Status(), resource_group=milvus_pb2.ResourceGroup(
        name=name, capacity=capacity, num_available_node=available, config=config,
        nodes=[common_pb2.NodeInfo(node_id=i, address=a, hostname=h) for i, a, h in nodes]))


@contextlib.asynccontextmanager
async def grpc_milvus(servicer: ScriptedMilvus) -> AsyncIterator[str]:
    """Serve `servicer` on a loopback port; yields its URI."""
    server = grpc.aio.server()
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop(0)


@dataclass
class ManagementRoutes:
    """route (e.g. "node/list") -> (HTTP status, body text); unknown routes answer Go's 404."""

    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def management_api(routes: ManagementRoutes) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        route = request.match_info["route"]
        routes.requests.append((route, dict(request.query)))
        status, body = routes.answers.get(route, (404, "404 page not found\n"))
        return web.Response(status=status, text=body)  # Go writes no JSON content type on errors

    app = web.Application()
    app.router.add_get("/management/querycoord/{route:.+}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
