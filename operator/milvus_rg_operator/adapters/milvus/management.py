"""The Milvus proxy's management HTTP API (port 9091, `internal/proxy/management.go` `RegisterMgrRoute`): the
querycoord routes the drains use (node list, suspend, resume, distribution)."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from milvus_rg_operator.adapters.milvus.errors import ManagementUnavailable, MilvusError, MilvusTlsError
from milvus_rg_operator.core.types import MilvusNode


@dataclass(frozen=True)
class Distribution:
    segments: int
    channels: int


def parse_node_list(body: Any) -> list[MilvusNode]:
    """`node/list`: `{"nodeInfos":[{"ID":..,"address":"..","state":".."}]}` (internal/proxy/management.go
    `ListQueryNode` marshals querypb.ListQueryNodeResponse: no hostname, empty fields and an empty list
    left out). The hostname is filled in from describe_resource_group when the node is in a group."""
    if not isinstance(body, Mapping):
        raise MilvusError(f"node/list: unexpected answer {body!r}")
    nodes = []
    for item in body.get("nodeInfos") or []:
        node_id = item.get("ID", item.get("node_id"))
        if node_id is None:
            continue
        nodes.append(MilvusNode(node_id=int(node_id), hostname=str(item.get("hostname") or ""),
                                address=str(item.get("address") or ""),
                                state=str(item.get("state") or "Unknown")))
    return nodes


def parse_distribution(body: Any) -> Distribution:
    """`distribution/get`: `{"channel_names":[..],"sealed_segmentIDs":["..",..]}`: ids as strings and
    empty lists as null since #39927 (2.4.23); older servers write integers and leave empty keys out."""
    if not isinstance(body, Mapping):
        raise MilvusError(f"distribution/get: unexpected answer {body!r}")
    return Distribution(segments=len(body.get("sealed_segmentIDs") or []),
                        channels=len(body.get("channel_names") or []))


def management_error_text(body: str) -> str:
    """The `msg` of a management error (`{"msg": "failed to suspend node, <reason>"}`). The proxy formats
    the reason into the JSON unescaped, so a reason with a quote is not JSON: then the raw text."""
    with contextlib.suppress(ValueError):
        parsed = json.loads(body)
        if isinstance(parsed, Mapping) and "msg" in parsed:
            return str(parsed["msg"])
    return body.strip()


TlsCheck = Callable[[], Awaitable[MilvusTlsError | None]]


class ManagementClient:
    """GETs of querycoord management routes; no route is served without a `base_uri` (ManagementUnavailable).
    `ssl_context` and `server_name` are for an https:// `base_uri`; `tls_check` tells why a connection failed when
    the reason is TLS (`tls.diagnose`)."""

    def __init__(self, base_uri: str | None, timeout: float, ssl_context: ssl.SSLContext | None = None,
                 server_name: str | None = None, tls_check: TlsCheck | None = None) -> None:
        self.base_uri = base_uri.rstrip("/") if base_uri else None
        self.timeout = timeout
        self._ssl = ssl_context
        self._server_name = server_name
        self._tls_check = tls_check
        self._http: aiohttp.ClientSession | None = None

    async def get(self, route: str, params: Mapping[str, str]) -> Any:
        """200 with JSON; errors are 400 (bad parameter) or 500 (the coordinator's reason) with `{"msg": ...}`
        and no merr code."""
        if self.base_uri is None:
            raise ManagementUnavailable(f"{route}: no management endpoint is configured")
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = f"{self.base_uri}/management/querycoord/{route}"
        try:
            async with self._http.get(url, params=dict(params), ssl=self._ssl if self._ssl is not None else True,
                                      server_hostname=self._server_name) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            tls_failure = await self._tls_check() if self._tls_check is not None else None
            if tls_failure is not None:
                raise tls_failure from exc
            raise ManagementUnavailable(f"{route}: cannot reach the management API at {url}: "
                                        f"{exc or type(exc).__name__}") from exc
        if status == 404:
            raise ManagementUnavailable(f"{route}: {url} is not served (HTTP 404; Milvus < 2.4 has no such route)")
        if status != 200:
            raise MilvusError(f"{route}: Milvus answered HTTP {status}: {management_error_text(text)}")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise MilvusError(f"{route}: Milvus answered HTTP 200 with a body that is not JSON: "
                              f"{text[:200]!r}") from exc

    async def node_list(self) -> list[MilvusNode]:
        return parse_node_list(await self.get("node/list", {}))

    async def suspend_node(self, node_id: int) -> None:
        await self.get("node/suspend", {"node_id": str(node_id)})

    async def resume_node(self, node_id: int) -> None:
        await self.get("node/resume", {"node_id": str(node_id)})

    async def distribution(self, node_id: int) -> Distribution:
        return parse_distribution(await self.get("distribution/get", {"node_id": str(node_id)}))

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()
