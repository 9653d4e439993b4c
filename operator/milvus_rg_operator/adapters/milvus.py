"""The Milvus side of the wire: resource groups over pymilvus (gRPC) and the proxy's management HTTP API.

The reconcile loop only sees :class:`MilvusGateway`; :class:`PymilvusGateway` is the production
implementation. Every call carries a timeout, so an unreachable Milvus fails fast instead of
spinning inside pymilvus' own retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import grpc
from pymilvus import AsyncMilvusClient
from pymilvus.client.types import ResourceGroupConfig
from pymilvus.exceptions import MilvusException

from milvus_rg_operator.core.types import GroupConfig, MilvusGroup, MilvusNode, MilvusState

MANAGEMENT_PORT = 9091


class MilvusError(Exception):
    """Milvus answered with an error (merr code and message), or could not be reached (code None)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def unreachable(self) -> bool:
        return self.code is None


class MilvusAuthError(MilvusError):
    """Milvus refused the credentials (gRPC UNAUTHENTICATED): the token or user:password is wrong or missing."""


def unauthenticated_details(exc: BaseException) -> str | None:
    """The details of a gRPC UNAUTHENTICATED answer in `exc` or its causes (pymilvus wraps it in a
    generic "Fail connecting to server" MilvusException)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, grpc.aio.AioRpcError) and current.code() == grpc.StatusCode.UNAUTHENTICATED:
            return str(current.details())
        current = current.__cause__ or current.__context__
    return None


class ManagementUnavailable(MilvusError):
    """The proxy's management HTTP API (port 9091) cannot be used: not reachable or routes missing."""


@dataclass(frozen=True)
class Distribution:
    segments: int
    channels: int


def default_management_uri(uri: str) -> str:
    """Milvus serves the management routes on the proxy's port 9091, next to gRPC on 19530."""
    host = urlsplit(uri if "://" in uri else f"http://{uri}").hostname or "localhost"
    return f"http://{host}:{MANAGEMENT_PORT}"


class MilvusGateway(Protocol):
    async def observe(self, *, with_node_states: bool = True) -> MilvusState: ...
    async def server_version(self) -> str: ...
    async def create_group(self, name: str, config: GroupConfig) -> None: ...
    async def update_groups(self, configs: Mapping[str, GroupConfig]) -> None: ...
    async def drop_group(self, name: str) -> None: ...
    async def suspend_node(self, node_id: int) -> None: ...
    async def resume_node(self, node_id: int) -> None: ...
    async def distribution(self, node_id: int) -> Distribution: ...
    async def close(self) -> None: ...


def to_pymilvus_config(config: GroupConfig) -> Any:
    return ResourceGroupConfig(
        requests={"node_num": config.requests},
        limits={"node_num": config.limits},
        transfer_from=[{"resource_group": name} for name in config.transfer_from],
        transfer_to=[{"resource_group": name} for name in config.transfer_to],
        node_filter={"node_labels": [{"key": k, "value": v} for k, v in config.node_labels]},
    )


def from_pymilvus_config(config: Any) -> GroupConfig:
    return GroupConfig(
        requests=int(config.requests.node_num),
        limits=int(config.limits.node_num),
        transfer_from=tuple(sorted({t.resource_group for t in config.transfer_from})),
        transfer_to=tuple(sorted({t.resource_group for t in config.transfer_to})),
        node_labels=tuple(sorted((kv.key, kv.value) for kv in config.node_filter.node_labels)),
    )


class PymilvusGateway:
    """Resource groups through pymilvus' AsyncMilvusClient, draining through the management API."""

    def __init__(self, uri: str, token: str = "", management_uri: str | None = None,
                 timeout: float = 10.0) -> None:
        self.uri = uri
        self.management_uri = (management_uri or default_management_uri(uri)).rstrip("/")
        self.timeout = timeout
        self._token = token
        self._client: AsyncMilvusClient | None = None
        self._http: aiohttp.ClientSession | None = None

    def _milvus(self) -> AsyncMilvusClient:
        if self._client is None:
            self._client = AsyncMilvusClient(uri=self.uri, token=self._token, timeout=self.timeout)
        return self._client

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._call_unchecked(method, *args, **kwargs)
        except MilvusError as exc:
            details = unauthenticated_details(exc)
            if details is None:
                raise
            await self._reset()
            raise MilvusAuthError(f"{method}: Milvus at {self.uri} refused the credentials: {details}") from exc

    async def _call_unchecked(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.wait_for(
                getattr(self._milvus(), method)(*args, timeout=self.timeout, **kwargs),
                timeout=self.timeout + 1,
            )
        except MilvusException as exc:
            # Codes below 100 are pymilvus' own (connection, timeout); Milvus' merr codes are >= 100.
            code = int(exc.code) if isinstance(exc.code, int) and exc.code >= 100 else None
            raise MilvusError(f"{method}: {exc.message}", code) from exc
        except (TimeoutError, OSError) as exc:
            await self._reset()
            raise MilvusError(f"{method}: Milvus at {self.uri} did not answer within {self.timeout}s") from exc
        except Exception as exc:  # grpc and connection errors surface as many types
            await self._reset()
            raise MilvusError(f"{method}: cannot reach Milvus at {self.uri}: {exc}") from exc

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a broken channel may fail to close; dropped either way
                await client.close()

    async def server_version(self) -> str:
        return str(await self._call("get_server_version"))

    async def observe(self, *, with_node_states: bool = True) -> MilvusState:
        names = await self._call("list_resource_groups")
        infos = await asyncio.gather(*(self._call("describe_resource_group", name) for name in names))
        groups: dict[str, MilvusGroup] = {}
        nodes: dict[int, MilvusNode] = {}
        for info in infos:
            groups[info.name] = MilvusGroup(
                name=info.name,
                config=from_pymilvus_config(info.config),
                node_ids=tuple(sorted(node.node_id for node in info.nodes)),
                loaded_replicas=dict(info.num_loaded_replica),
                incoming=dict(info.num_incoming_node),
                outgoing=dict(info.num_outgoing_node),
            )
            for node in info.nodes:
                nodes[node.node_id] = MilvusNode(node.node_id, node.hostname, node.address, "Unknown")
        management_available = False
        if with_node_states:
            try:
                listed = await self._node_list()
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

    # --- management API -------------------------------------------------------------------------

    async def _management(self, route: str, params: Mapping[str, str]) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = f"{self.management_uri}/management/querycoord/{route}"
        try:
            async with self._http.get(url, params=dict(params)) as response:
                if response.status == 404:
                    raise ManagementUnavailable(f"{url}: route not served (HTTP 404)")
                body = await response.json(content_type=None)
                if response.status != 200:
                    message = body.get("msg") if isinstance(body, dict) else body
                    raise MilvusError(f"{route}: HTTP {response.status}: {message}", response.status)
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ManagementUnavailable(f"{url}: {exc or type(exc).__name__}") from exc

    async def _node_list(self) -> list[MilvusNode]:
        body = await self._management("node/list", {})
        return [
            MilvusNode(
                node_id=int(item.get("ID", item.get("node_id", 0))),
                hostname=str(item.get("hostname", "")),
                address=str(item.get("address", "")),
                state=str(item.get("state", "Unknown")),
            )
            for item in body.get("nodeInfos", [])
        ]

    async def suspend_node(self, node_id: int) -> None:
        await self._management("node/suspend", {"node_id": str(node_id)})

    async def resume_node(self, node_id: int) -> None:
        await self._management("node/resume", {"node_id": str(node_id)})

    async def distribution(self, node_id: int) -> Distribution:
        body = await self._management("distribution/get", {"node_id": str(node_id)})
        return Distribution(
            segments=len(body.get("sealed_segmentIDs") or []),
            channels=len(body.get("channel_names") or []),
        )

    async def close(self) -> None:
        await self._reset()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
