"""The Milvus side of the wire as the reconcile pass sees it: :class:`MilvusGateway`, and its production
implementation over pymilvus (gRPC) and the management HTTP API. Every call carries a timeout, so an
unreachable Milvus fails fast instead of spinning inside pymilvus' own retry loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import grpc
from pymilvus import AsyncMilvusClient
from pymilvus.exceptions import MilvusException

from milvus_rg_operator.adapters.milvus import serving
from milvus_rg_operator.adapters.milvus.errors import ManagementUnavailable, MilvusAuthError, MilvusTlsError, classify
from milvus_rg_operator.adapters.milvus.management import Distribution, ManagementClient
from milvus_rg_operator.adapters.milvus.quiet import adapter_call, quiet_pymilvus_logs
from milvus_rg_operator.adapters.milvus.tls import (
    HTTP2_HELLO,
    Endpoint,
    TlsFiles,
    TlsMaterial,
    client_context,
    diagnose,
)
from milvus_rg_operator.adapters.milvus.wire import group_from_info, to_pymilvus_config
from milvus_rg_operator.core.types import CollectionInfo, GroupConfig, MilvusGroup, MilvusNode, MilvusState


class MilvusGateway(Protocol):
    async def observe(self, *, with_node_states: bool = True) -> MilvusState: ...
    async def server_version(self) -> str: ...
    async def create_group(self, name: str, config: GroupConfig) -> None: ...
    async def update_groups(self, configs: Mapping[str, GroupConfig]) -> None: ...
    async def drop_group(self, name: str) -> None: ...
    async def suspend_node(self, node_id: int) -> None: ...
    async def resume_node(self, node_id: int) -> None: ...
    async def distribution(self, node_id: int) -> Distribution: ...
    async def collections(self, loaded: Collection[str]) -> dict[str, CollectionInfo]: ...
    async def transfer_replica(self, source: str, target: str, collection: str, replicas: int) -> None: ...
    async def load_collection(self, collection: str, replicas: int, groups: Sequence[str]) -> None: ...
    async def load_balance(self, collection: str, source: int, target: int, segment: int) -> None: ...
    async def close(self) -> None: ...


GRPC_DEFAULT_PORTS = {"https": 443}  # pymilvus' defaults (client/connection_manager.py ConnectionConfig.from_uri)
GRPC_DEFAULT_PORT = 19530
HTTP_DEFAULT_PORTS = {"https": 443, "http": 80}
HTTP_HELLO = b"GET /healthz HTTP/1.1\r\nHost: milvus\r\nConnection: close\r\n\r\n"
MAX_DIAGNOSIS_SECONDS = 3.0  # a failed call has waited its timeout already; the handshake answers in milliseconds


def _endpoint(url: str, url_field: str, default_ports: Mapping[str, int], default_port: int,
              hello: bytes) -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(parts.hostname or "localhost", parts.port or default_ports.get(parts.scheme, default_port), url,
                    url_field, parts.scheme == "https", hello)


class PymilvusGateway:
    """Resource groups through pymilvus' AsyncMilvusClient, draining through the management API
    (`management_uri`: the proxy's management endpoint; None: none, so no drain can start). `tls`: the pool's CA,
    client certificate and server name, for an https:// `uri` (and an https:// `management_uri`)."""

    def __init__(self, uri: str, token: str = "", management_uri: str | None = None,
                 timeout: float = 10.0, tls: TlsMaterial | None = None) -> None:
        self.uri = uri
        self.timeout = timeout
        self._token = token
        self._client: AsyncMilvusClient | None = None
        self._tls = tls
        self._files = TlsFiles.write(tls) if tls is not None and (tls.ca_pem or tls.client_cert_pem) else None
        self._grpc = _endpoint(uri, "spec.milvus.uri", GRPC_DEFAULT_PORTS, GRPC_DEFAULT_PORT, HTTP2_HELLO)
        self._http = (_endpoint(management_uri, "spec.milvus.managementUri", HTTP_DEFAULT_PORTS, 80, HTTP_HELLO)
                      if management_uri else None)
        secure = self._http is not None and self._http.secure
        self._management = ManagementClient(management_uri, timeout,
                                            ssl_context=client_context(self._files) if secure else None,
                                            server_name=tls.server_name if tls is not None else None,
                                            tls_check=self._management_tls_failure)
        quiet_pymilvus_logs()

    @property
    def management_uri(self) -> str | None:
        return self._management.base_uri

    def _milvus(self) -> AsyncMilvusClient:
        if self._client is None:
            # A connection of its own: pymilvus shares one per address and token, whatever its certificates.
            tls = self._files.pymilvus_options(self._tls.server_name) if self._files and self._tls else {}
            if self._tls is not None and self._tls.server_name and not tls:
                tls = {"server_name": self._tls.server_name}
            self._client = AsyncMilvusClient(uri=self.uri, token=self._token, timeout=self.timeout, dedicated=True,
                                             **tls)
        return self._client

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._guarded(method, lambda client: getattr(client, method)(*args, timeout=self.timeout,
                                                                                  **kwargs))

    async def _guarded(self, method: str, call: Callable[[AsyncMilvusClient], Awaitable[Any]]) -> Any:
        """One call to Milvus, bounded by the timeout, its failure classified (`method` names it)."""
        with adapter_call():
            try:
                async with asyncio.timeout(self.timeout + 1):
                    return await call(self._milvus())
            except (MilvusException, grpc.RpcError, TimeoutError, OSError) as exc:
                error = classify(method, self.uri, self.timeout, exc)
        if error.unreachable:
            # pymilvus says "Fail connecting" whatever the cause: a handshake of our own tells a TLS problem apart.
            tls_failure = await diagnose(self._grpc, self._tls, self._files, self._diagnosis_timeout)
            if tls_failure is not None:
                tls_failure.__cause__ = error
                error = tls_failure
        if error.unreachable or isinstance(error, MilvusAuthError | MilvusTlsError):
            await self._reset()  # a broken or refused channel is built anew on the next call
        raise error

    async def _management_tls_failure(self) -> MilvusTlsError | None:
        return await diagnose(self._http, self._tls, self._files, self._diagnosis_timeout) if self._http else None

    @property
    def _diagnosis_timeout(self) -> float:
        return min(self.timeout, MAX_DIAGNOSIS_SECONDS)

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(MilvusException, grpc.RpcError, OSError):
                await client.close()  # a broken channel may fail to close; it is dropped either way

    async def server_version(self) -> str:
        """The version as Milvus reports it (`v2.5.4`, `v2.3.5-lite`, ...): see core.versions."""
        return str(await self._call("get_server_version"))

    async def observe(self, *, with_node_states: bool = True) -> MilvusState:
        names = await self._call("list_resource_groups")
        infos = await asyncio.gather(*(self._call("describe_resource_group", name) for name in names))
        groups: dict[str, MilvusGroup] = {}
        nodes: dict[int, MilvusNode] = {}
        for info in infos:
            groups[info.name] = group_from_info(info)
            for node in info.nodes:
                nodes[node.node_id] = MilvusNode(node.node_id, node.hostname, node.address, "Unknown")
        management_available = False
        if with_node_states:
            try:
                listed = await self._management.node_list()
                management_available = True
            except ManagementUnavailable:
                listed = []
            for node in listed:
                known = nodes.get(node.node_id)
                hostname = node.hostname or (known.hostname if known else "")
                nodes[node.node_id] = MilvusNode(node.node_id, hostname, node.address, node.state)
        return MilvusState(groups=groups, nodes=nodes, management_available=management_available)

    async def create_group(self, name: str, config: GroupConfig) -> None:
        await self._call("create_resource_group", name, config=to_pymilvus_config(config))

    async def update_groups(self, configs: Mapping[str, GroupConfig]) -> None:
        await self._call("update_resource_groups",
                         {name: to_pymilvus_config(config) for name, config in configs.items()})

    async def drop_group(self, name: str) -> None:
        await self._call("drop_resource_group", name)

    async def suspend_node(self, node_id: int) -> None:
        await self._management.suspend_node(node_id)

    async def resume_node(self, node_id: int) -> None:
        await self._management.resume_node(node_id)

    async def distribution(self, node_id: int) -> Distribution:
        return await self._management.distribution(node_id)

    async def collections(self, loaded: Collection[str]) -> dict[str, CollectionInfo]:
        """Every collection; the replicas (GetReplicas) and sealed segments (GetQuerySegmentInfo) of those in
        `loaded` (the ones describe_resource_group shows replicas of)."""
        result: dict[str, CollectionInfo] = {}
        for name in await self._call("list_collections"):
            if name not in loaded:
                result[name] = CollectionInfo(name)
                continue
            replicas = await self._call("describe_replica", name)
            segments = await self._guarded("get_query_segment_info", self._segments_of(name))
            result[name] = serving.collection_info(name, replicas, segments)
        return result

    def _segments_of(self, name: str) -> Callable[[AsyncMilvusClient], Awaitable[Any]]:
        return lambda client: serving.query_segment_info(client, name, timeout=self.timeout)

    async def transfer_replica(self, source: str, target: str, collection: str, replicas: int) -> None:
        await self._call("transfer_replica", source, target, collection, replicas)

    async def load_collection(self, collection: str, replicas: int, groups: Sequence[str]) -> None:
        await self._guarded("load_collection", lambda client: serving.start_load(
            client, collection, replicas, groups, timeout=self.timeout))

    async def load_balance(self, collection: str, source: int, target: int, segment: int) -> None:
        await self._guarded("load_balance", lambda client: serving.load_balance(
            client, collection, source, [target], [segment], timeout=self.timeout))

    async def close(self) -> None:
        await self._reset()
        await self._management.close()
        if self._files is not None:
            self._files.remove()
