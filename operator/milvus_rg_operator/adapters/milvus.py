"""The Milvus side of the wire: resource groups over pymilvus (gRPC) and the proxy's management HTTP API.

The reconcile loop only sees :class:`MilvusGateway`; :class:`PymilvusGateway` is the production
implementation. Every call carries a timeout, so an unreachable Milvus fails fast instead of
spinning inside pymilvus' own retry loop.

Failures are told apart precisely (pymilvus 3.0.2, measured against real servers and a real 2.3.5):
- Milvus answered with a merr code (>= 100, or 65535 from older servers): :class:`MilvusError` with `code`.
- Milvus could not be reached or gave no answer in time: :class:`MilvusUnavailable` (`unreachable`).
  pymilvus reports a refused connection as `MilvusException(code=2, "Fail connecting ...")`, retries
  UNAVAILABLE / INTERNAL / ... until the timeout and then raises `MilvusException(code=1, "Retry
  timeout")`, and raises DEADLINE_EXCEEDED as the bare `grpc.aio.AioRpcError`.
- The server does not implement the RPC (gRPC UNIMPLEMENTED, e.g. `UpdateResourceGroups` on Milvus
  < 2.4, raised as the bare `AioRpcError`): :class:`MilvusUnsupported`, naming the RPC.
- UNAUTHENTICATED: :class:`MilvusAuthError`.
- Anything else is a bug and propagates as itself: pymilvus wraps an unexpected exception (a
  `TypeError`, ...) in `MilvusException(code=1, "Unexpected error")`; the original is re-raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import aiohttp
import grpc

from milvus_rg_operator.adapters.deferred_pandas import defer_pandas

defer_pandas()  # before pymilvus, which imports pandas (33 MB) for paths the operator never takes

from pymilvus import AsyncMilvusClient  # noqa: E402
from pymilvus.client.types import ResourceGroupConfig  # noqa: E402
from pymilvus.exceptions import MilvusException, ParamError  # noqa: E402

from milvus_rg_operator.constants import DEFAULT_MANAGEMENT_PORT  # noqa: E402
from milvus_rg_operator.core.types import (  # noqa: E402
    DEFAULT_GROUP,
    DEFAULT_GROUP_LIMIT,
    GroupConfig,
    MilvusGroup,
    MilvusNode,
    MilvusState,
)

logger = logging.getLogger(__name__)

MANAGEMENT_PORT = DEFAULT_MANAGEMENT_PORT
# pymilvus' own client-side codes sit below 100 (1 unexpected / retry timeout, 2 cannot connect);
# Milvus' merr codes are >= 100 (65535 is the legacy "unexpected error" of older servers).
FIRST_MILVUS_CODE = 100
PYMILVUS_CANNOT_CONNECT = 2
TRANSPORT_STATUSES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})
AUTH_STATUSES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
# Exceptions that are part of a failed call; anything else in pymilvus' exception chain is a bug.
_CALL_FAILURES = (MilvusException, grpc.RpcError, TimeoutError, asyncio.CancelledError, OSError)


class MilvusError(Exception):
    """Milvus answered with an error: `code` is its merr code (None when the answer carried none)."""

    unreachable: ClassVar[bool] = False

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MilvusUnavailable(MilvusError):
    """Milvus could not be reached or did not answer in time (connection refused, gRPC UNAVAILABLE or
    DEADLINE_EXCEEDED, timeouts)."""

    unreachable: ClassVar[bool] = True


class MilvusUnsupported(MilvusError):
    """This Milvus does not implement `rpc` (gRPC UNIMPLEMENTED): it is too old for the operator."""

    def __init__(self, message: str, rpc: str) -> None:
        super().__init__(message)
        self.rpc = rpc


class MilvusAuthError(MilvusError):
    """Milvus refused the credentials (gRPC UNAUTHENTICATED): the token or user:password is wrong or missing."""


class ManagementUnavailable(MilvusUnavailable):
    """The proxy's management HTTP API (port 9091) cannot be used: not reachable or routes missing
    (Milvus < 2.4 answers 404 for node/list, distribution/get, node/suspend)."""


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and its causes. pymilvus re-raises with `raise e from e` (an exception caused by itself),
    which hides the real cause in `__context__`: follow both, each exception once."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _rpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The first gRPC status (code, details) in `exc`'s chain."""
    for link in _exception_chain(exc):
        if isinstance(link, grpc.RpcError) and callable(getattr(link, "code", None)):
            details = link.details() if callable(getattr(link, "details", None)) else ""
            return link.code(), str(details or "")
    return None


def unauthenticated_details(exc: BaseException) -> str | None:
    """The details of a gRPC UNAUTHENTICATED answer in `exc` or its causes (pymilvus wraps it in a
    generic "Fail connecting to server" MilvusException)."""
    for link in _exception_chain(exc):
        if isinstance(link, grpc.RpcError) and callable(getattr(link, "code", None)) \
                and link.code() == grpc.StatusCode.UNAUTHENTICATED:
            return str(link.details())
    return None


def _bug_in(exc: MilvusException) -> BaseException | None:
    """The programming error pymilvus wrapped into `MilvusException(message="Unexpected error, ...")`
    (decorators.error_handler), if `exc` is such a wrapper."""
    if not str(exc.message).startswith("Unexpected error"):
        return None
    for link in _exception_chain(exc):
        if not isinstance(link, _CALL_FAILURES):
            return link
    return None


def _caused(error: MilvusError, cause: BaseException) -> MilvusError:
    error.__cause__ = cause
    return error


# --- pymilvus' own logging --------------------------------------------------------------------------

_IN_ADAPTER_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("in_milvus_adapter_call", default=False)
# pymilvus logs each failed call with a ~30-line ERROR traceback (decorators.error_handler) and a
# WARNING per retry timeout. The operator reports failures itself, once per transition: during the
# adapter's calls these records go to our DEBUG log, first line only.
PYMILVUS_LOGGERS = ("pymilvus", "pymilvus.decorators", "pymilvus.client.async_grpc_handler",
                    "pymilvus.client.connection_manager", "pymilvus.client.global_topology",
                    "pymilvus.milvus_client.async_milvus_client", "pymilvus.milvus_client.base",
                    "pymilvus.orm.connections")


class _QuietDuringAdapterCalls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not _IN_ADAPTER_CALL.get():
            return True
        first_line = record.getMessage().split("\n", 1)[0]
        logger.debug("pymilvus %s (reported by the operator instead): %s", record.levelname, first_line)
        return False


_QUIET_FILTER = _QuietDuringAdapterCalls()


def quiet_pymilvus_logs() -> None:
    """Install the filter on pymilvus' loggers (idempotent). Logger filters only see records logged on
    that very logger, so each logger pymilvus uses gets it."""
    names = set(PYMILVUS_LOGGERS) | {name for name in logging.root.manager.loggerDict if name.startswith("pymilvus")}
    for name in names:
        target = logging.getLogger(name)
        if _QUIET_FILTER not in target.filters:
            target.addFilter(_QUIET_FILTER)


@contextlib.contextmanager
def _adapter_call() -> Iterator[None]:
    token = _IN_ADAPTER_CALL.set(True)
    try:
        yield
    finally:
        _IN_ADAPTER_CALL.reset(token)


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


def config_reported(config: Any) -> bool:
    """Milvus >= 2.4 always sets requests and limits (resource_group.go keeps both); Milvus 2.3 has no
    configs and answers an empty message."""
    return bool(config.HasField("requests") or config.HasField("limits"))


def from_pymilvus_config(config: Any) -> GroupConfig:
    return GroupConfig(
        requests=int(config.requests.node_num),
        limits=int(config.limits.node_num),
        transfer_from=tuple(sorted({t.resource_group for t in config.transfer_from})),
        transfer_to=tuple(sorted({t.resource_group for t in config.transfer_to})),
        node_labels=tuple(sorted((kv.key, kv.value) for kv in config.node_filter.node_labels)),
    )


def group_from_info(info: Any) -> MilvusGroup:
    """A `describe_resource_group` answer as a MilvusGroup. Without a reported config (Milvus < 2.4) the
    stand-in is what that Milvus enforces: the default group takes any node (requests 0, its capacity
    1,000,000 as limits), another group holds its capacity (the nodes transferred to it)."""
    if config_reported(info.config):
        config, known = from_pymilvus_config(info.config), True
    elif info.name == DEFAULT_GROUP:
        config, known = GroupConfig(0, int(info.capacity) or DEFAULT_GROUP_LIMIT), False
    else:
        config, known = GroupConfig(int(info.capacity), int(info.capacity)), False
    return MilvusGroup(
        name=info.name,
        config=config,
        node_ids=tuple(sorted(node.node_id for node in info.nodes)),
        loaded_replicas=dict(info.num_loaded_replica),
        incoming=dict(info.num_incoming_node),
        outgoing=dict(info.num_outgoing_node),
        config_known=known,
    )


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
        quiet_pymilvus_logs()

    def _milvus(self) -> AsyncMilvusClient:
        if self._client is None:
            self._client = AsyncMilvusClient(uri=self.uri, token=self._token, timeout=self.timeout)
        return self._client

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with _adapter_call():
            try:
                async with asyncio.timeout(self.timeout + 1):
                    return await getattr(self._milvus(), method)(*args, timeout=self.timeout, **kwargs)
            except MilvusException as exc:
                error = self._from_pymilvus(method, exc)
            except grpc.RpcError as exc:
                error = self._from_rpc_error(method, exc)
            except (TimeoutError, OSError) as exc:
                error = _caused(MilvusUnavailable(
                    f"{method}: Milvus at {self.uri} did not answer within {self.timeout}s"), exc)
        if error.unreachable or isinstance(error, MilvusAuthError):
            await self._reset()  # a broken or refused channel is built anew on the next call
        raise error

    def _from_pymilvus(self, method: str, exc: MilvusException) -> MilvusError:
        status = _rpc_status(exc)
        if status is not None and status[0] in AUTH_STATUSES | {grpc.StatusCode.UNIMPLEMENTED}:
            return self._from_status(method, status[0], status[1], exc)
        code = exc.code
        if isinstance(code, grpc.StatusCode):  # pymilvus' retry loop ran out of time after this status
            return self._from_status(method, code, str(exc.message), exc)
        if isinstance(code, int) and code >= FIRST_MILVUS_CODE:
            return _caused(MilvusError(f"{method}: {exc.message}", int(code)), exc)
        if code == PYMILVUS_CANNOT_CONNECT:
            details = f" ({status[0].name}: {status[1]})" if status else ""
            return _caused(MilvusUnavailable(f"{method}: cannot reach Milvus at {self.uri}{details}"), exc)
        if isinstance(exc, ParamError):
            return _caused(MilvusError(f"{method}: pymilvus refused the request: {exc.message}"), exc)
        bug = _bug_in(exc)
        if bug is not None:
            raise bug
        if "Retry timeout" in str(exc.message):
            return _caused(MilvusUnavailable(
                f"{method}: Milvus at {self.uri} did not answer within {self.timeout}s"), exc)
        return _caused(MilvusError(f"{method}: {exc.message}"), exc)

    def _from_rpc_error(self, method: str, exc: grpc.RpcError) -> MilvusError:
        code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        return self._from_status(method, code, str(details or ""), exc)

    def _from_status(self, method: str, status: grpc.StatusCode, details: str, exc: BaseException) -> MilvusError:
        if status in TRANSPORT_STATUSES:
            error: MilvusError = MilvusUnavailable(f"{method}: Milvus at {self.uri} is unavailable "
                                                   f"(gRPC {status.name}: {details})")
        elif status == grpc.StatusCode.UNIMPLEMENTED:
            error = MilvusUnsupported(f"{method}: Milvus at {self.uri} does not implement this call "
                                      f"(gRPC UNIMPLEMENTED: {details})", rpc=method)
        elif status in AUTH_STATUSES:
            error = MilvusAuthError(f"{method}: Milvus at {self.uri} refused the credentials: {details}")
        else:
            error = MilvusError(f"{method}: Milvus at {self.uri} answered gRPC {status.name}: {details}")
        return _caused(error, exc)

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
        """GET a querycoord management route (internal/proxy/management.go): 200 with JSON; errors are
        400 (bad parameter) or 500 (the coordinator's reason) with `{"msg": ...}` and no merr code."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = f"{self.management_uri}/management/querycoord/{route}"
        try:
            async with self._http.get(url, params=dict(params)) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
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

    async def _node_list(self) -> list[MilvusNode]:
        return parse_node_list(await self._management("node/list", {}))

    async def suspend_node(self, node_id: int) -> None:
        await self._management("node/suspend", {"node_id": str(node_id)})

    async def resume_node(self, node_id: int) -> None:
        await self._management("node/resume", {"node_id": str(node_id)})

    async def distribution(self, node_id: int) -> Distribution:
        return parse_distribution(await self._management("distribution/get", {"node_id": str(node_id)}))

    async def close(self) -> None:
        await self._reset()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
