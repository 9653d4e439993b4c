"""The proxy's query-coordinator management HTTP routes (internal/proxy/management.go), port 9091.

Parameters are read from the query string or a form body. Success: `{"msg": "OK"}` (plus data);
bad parameters: HTTP 400, errors from the coordinator: HTTP 500, both as `{"msg": "..."}`.

`GET /management/querycoord/node/list` answers
`{"status": {}, "nodeInfos": [{"ID": 1, "address": "10.0.0.1:21123", "state": "Healthy"}]}`
with state one of "Healthy", "Stopping", "Suspend" (a crashed node keeps "Healthy" until its
session expires, as querycoord cannot tell earlier).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .grpc_server import ServerControls
from .resource_manager import MilvusError, NodeState, ResourceManager

PREFIX = "/management/querycoord"
RouteHandler = Callable[[dict[str, str]], Any]


class BadRequest(Exception):
    """A missing or malformed parameter (HTTP 400)."""


def _int_param(params: dict[str, str], name: str, required: bool = True) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"{name} is required")
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise BadRequest(f"invalid {name}: {raw}") from error


def _bool_param(params: dict[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    return default if raw is None or raw == "" else raw.lower() in ("true", "1")


class ManagementApi:
    """Route handlers; each returns the JSON body of a success reply."""

    def __init__(self, rm: ResourceManager, controls: ServerControls) -> None:
        self.rm = rm
        self.controls = controls

    def routes(self) -> dict[str, tuple[str, RouteHandler, bool]]:
        """path suffix -> (action named in error messages, handler, mutating)."""
        return {
            "node/list": ("list query node", self.list_nodes, False),
            "node/suspend": ("suspend node", self.suspend_node, True),
            "node/resume": ("resume node", self.resume_node, True),
            "distribution/get": ("get query node distribution", self.get_distribution, False),
            "distribution/check": ("check query node distribution", self.check_distribution, False),
            "transfer/segment": ("transfer segment", self.transfer_segment, True),
            "transfer/channel": ("transfer channel", self.transfer_channel, True),
            "balance/suspend": ("suspend balance", self.suspend_balance, True),
            "balance/resume": ("resume balance", self.resume_balance, True),
            "balance/status": ("get balance status", self.balance_status, False),
        }

    def list_nodes(self, params: dict[str, str]) -> dict[str, Any]:
        infos = [
            {
                "ID": node.node_id,
                "address": node.address,
                "state": NodeState.HEALTHY.value if node.state is NodeState.OFFLINE else node.state.value,
            }
            for node in sorted(self.rm.nodes.values(), key=lambda n: n.node_id)
        ]
        return {"status": {}, "nodeInfos": infos}

    def _node_id(self, params: dict[str, str], name: str = "node_id") -> int:
        node_id = _int_param(params, name)
        assert node_id is not None
        return node_id

    def suspend_node(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.suspend_node(self._node_id(params))
        return {"msg": "OK"}

    def resume_node(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.resume_node(self._node_id(params))
        return {"msg": "OK"}

    def get_distribution(self, params: dict[str, str]) -> dict[str, Any]:
        node_id = self._node_id(params)
        if node_id not in self.rm.nodes:
            raise MilvusError(901, f"node not found[node={node_id}]")
        channels, segments = self.rm.distribution(node_id)
        return {"msg": "OK", "channel_names": channels, "sealed_segmentIDs": segments}

    def check_distribution(self, params: dict[str, str]) -> dict[str, Any]:
        source = self._node_id(params, "source_node_id")
        self._node_id(params, "target_node_id")
        channels, segments = self.rm.distribution(source)
        if channels or segments:
            raise MilvusError(1100, f"data of node {source} is not on the target node")
        return {"msg": "OK"}

    def _transfer(self, params: dict[str, str], segments: bool) -> dict[str, Any]:
        source = self._node_id(params, "source_node_id")
        target = _int_param(params, "target_node_id", required=False)
        segment_id = _int_param(params, "segment_id", required=False) if segments else None
        channel_name = None if segments else params.get("channel_name") or None
        for node_id in (source, target):
            if node_id is not None and node_id not in self.rm.nodes:
                raise MilvusError(901, f"node not found[node={node_id}]")
        replicas = [
            r for r in self.rm.replicas.values() if target is None or target in r.rw_nodes
        ]
        for replica in replicas:
            self.rm.move_data(
                replica,
                source,
                target,
                segment_id=segment_id,
                channel_name=channel_name,
                move_segments=segments,
                move_channels=not segments,
            )
        return {"msg": "OK"}

    def transfer_segment(self, params: dict[str, str]) -> dict[str, Any]:
        return self._transfer(params, segments=True)

    def transfer_channel(self, params: dict[str, str]) -> dict[str, Any]:
        return self._transfer(params, segments=False)

    def suspend_balance(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.balance_suspended = True
        return {"msg": "OK"}

    def resume_balance(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.balance_suspended = False
        return {"msg": "OK"}

    def balance_status(self, params: dict[str, str]) -> dict[str, Any]:
        return {"msg": "OK", "status": "suspended" if self.rm.balance_suspended else "active"}


def build_app(api: ManagementApi) -> web.Application:
    controls = api.controls

    @web.middleware
    async def faults(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if controls.unavailable:
            return web.json_response({"msg": "milvus simulator is unavailable"}, status=503)
        if request.path.startswith(PREFIX) and not controls.management_enabled:
            return web.json_response({"msg": "404 page not found"}, status=404)
        return await handler(request)

    def endpoint(suffix: str, action: str, handler: RouteHandler, mutating: bool) -> Any:
        async def handle(request: web.Request) -> web.Response:
            params = {**request.query, **(await request.post())}
            str_params = {k: str(v) for k, v in params.items()}
            if mutating:
                controls.write_rpcs[suffix] += 1
            try:
                with controls.lock:
                    body = handler(str_params)
            except BadRequest as error:
                return web.json_response({"msg": f"failed to {action}, {error}"}, status=400)
            except MilvusError as error:
                return web.json_response({"msg": f"failed to {action}, {error.message}"}, status=500)
            if mutating:
                controls.on_change()
            return web.json_response(body)

        return handle

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application(middlewares=[faults])
    app.router.add_get("/healthz", healthz)
    for suffix, (action, handler, mutating) in api.routes().items():
        app.router.add_route("*", f"{PREFIX}/{suffix}", endpoint(suffix, action, handler, mutating))
    return app
