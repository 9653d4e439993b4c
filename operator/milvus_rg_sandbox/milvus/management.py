"""The proxy's query-coordinator management HTTP routes (internal/proxy/management.go, 2.5), port 9091.

As the Go handlers write them: parameters are form or query values; a malformed one is HTTP 400, a
failed coordinator call HTTP 500, both `{"msg": "failed to <action>, <reason>"}`; success `{"msg": "OK"}`,
except `node/list` and `distribution/get`, which write the response message itself (no "msg"). Bodies
are written without a Content-Type, so Go sends `text/plain; charset=utf-8`. Milvus < 2.4 has no such
routes: 404 `404 page not found` (measured on a real 2.3.5); `balance/status` came later (see
`MilvusVersion.balance_status_route`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .grpc_server import ServerControls
from .resource_manager import Code, MilvusError, MilvusVersion, NodeState, ResourceManager

PREFIX = "/management/querycoord"
GO_NOT_FOUND = "404 page not found\n"  # net/http `NotFound`
RouteHandler = Callable[[dict[str, str]], Any]


class BadRequest(Exception):
    """A malformed parameter (HTTP 400); `body` when the handler writes something else than its usual
    `{"msg": "failed to <action>, <error>"}`."""

    def __init__(self, message: str, body: str | None = None) -> None:
        super().__init__(message)
        self.body = body


def _parse_int(params: dict[str, str], name: str) -> int:
    """Go `strconv.ParseInt(req.FormValue(name), 10, 64)`, its error text included."""
    raw = params.get(name, "")
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise BadRequest(f'strconv.ParseInt: parsing "{raw}": invalid syntax')
    return int(raw)


def _parse_bool(params: dict[str, str], name: str, default: bool) -> bool:
    """Go `strconv.ParseBool` of a form value; empty: `default`."""
    raw = params.get(name, "")
    if not raw:
        return default
    if raw.lower() not in ("1", "0", "t", "f", "true", "false"):
        raise BadRequest(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
    return raw.lower() in ("1", "t", "true")


def _optional_int(params: dict[str, str], name: str) -> int | None:
    """An empty value means "all" (`ToAllNodes`, `TransferAll`)."""
    return _parse_int(params, name) if params.get(name) else None


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
            "distribution/check": ("check whether query node has same distribution", self.check_distribution, False),
            "transfer/segment": ("transfer segment", self.transfer_segment, True),
            "transfer/channel": ("transfer channel", self.transfer_channel, True),
            "balance/suspend": ("suspend balance", self.suspend_balance, True),
            "balance/resume": ("resume balance", self.resume_balance, True),
            "balance/status": ("check balance status", self.balance_status, False),
        }

    def serves(self, suffix: str) -> bool:
        """Whether the simulated version has the route (else Go's mux answers 404)."""
        version = self.rm.milvus_version
        if not (self.controls.management_enabled and version.management_routes):
            return False
        if suffix == "balance/status":
            return version.balance_status_route
        return suffix in self.routes()

    def list_nodes(self, params: dict[str, str]) -> dict[str, Any]:
        """querycoord services.go `ListQueryNode`: every node the node manager knows (a crashed node until its
        session expires), `{"ID", "address", "state"}`, marshalled by encoding/json with the Status set to
        nil and `omitempty` tags: no "status", and `{}` when there is no node."""
        infos = [
            {"ID": node.node_id, "address": node.address, "state": self.rm.wire_state(node)}
            for node in sorted(self.rm.nodes.values(), key=lambda n: n.node_id)
        ]
        return {"nodeInfos": infos} if infos else {}

    def suspend_node(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.suspend_node(_parse_int(params, "node_id"))
        return {"msg": "OK"}

    def resume_node(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.resume_node(_parse_int(params, "node_id"))
        return {"msg": "OK"}

    def get_distribution(self, params: dict[str, str]) -> dict[str, Any]:
        """2.4.23+/2.5.5+ (PR #39927/#39926): `{"channel_names": [...], "sealed_segmentIDs": ["..."]}`, ids as
        strings, keys always present; channel_names is null when empty, as an empty repeated field arrives
        nil over querycoord's gRPC (inferred). Older: the response message itself, ids as numbers, empty
        keys left out (`omitempty`)."""
        channels, segments = self.rm.distribution(_parse_int(params, "node_id"))
        if self.rm.milvus_version.distribution_ids_as_strings:
            return {"channel_names": channels or None, "sealed_segmentIDs": [str(s) for s in segments]}
        body: dict[str, Any] = {}
        if channels:
            body["channel_names"] = channels
        if segments:
            body["sealed_segmentIDs"] = segments
        return body

    def check_distribution(self, params: dict[str, str]) -> dict[str, Any]:
        """services.go `CheckQueryNodeDistribution`: every channel and segment of the source is on the target."""
        source = _parse_int(params, "source_node_id")
        target = _parse_int(params, "target_node_id")
        for node_id, which in ((source, "source"), (target, "target")):
            if node_id not in self.rm.nodes:
                raise MilvusError(Code.NODE_NOT_FOUND, f"{which} node not found: node not found[node={node_id}]")
        source_channels, source_segments = self.rm.distribution(source)
        target_channels, target_segments = self.rm.distribution(target)
        for channel in source_channels:
            if channel not in target_channels:
                raise MilvusError(501, f"channel lacks[channel={channel}]")
        for segment in source_segments:
            if segment not in target_segments:
                raise MilvusError(602, f"segment lacks[segment={segment}]")
        return {"msg": "OK"}

    def _transfer(self, params: dict[str, str], segments: bool) -> dict[str, Any]:
        """management.go `TransferSegment` / `TransferChannel` -> querycoord ops_services.go (2.5): source and target
        must be known, not stopping (`isStoppingNode`, 905); an empty target means every RW node of each replica
        (`ToAllNodes`), an empty segment id or channel name everything the source holds (`TransferAll`);
        `copy_mode` defaults to true for segments and false for channels (management.go); the moves run in the
        background (`ResourceManager.transfer_data`)."""
        try:
            source = _parse_int(params, "source_node_id")
        except BadRequest as error:  # management.go's format string misses a quote here: the body is not JSON
            action = "transfer segment" if segments else "transfer channel"
            raise BadRequest(str(error), body=f'{{"msg": failed to {action}", {error}"}}') from None
        target = _optional_int(params, "target_node_id")
        item: str | int | None = (_optional_int(params, "segment_id") if segments
                                  else params.get("channel_name") or None)
        copy_mode = _parse_bool(params, "copy_mode", default=segments)
        for node_id, which in ((source, "source"), (target, "target")):
            node = self.rm.nodes.get(node_id) if node_id is not None else None
            if node_id is not None and (node is None or node.state is NodeState.STOPPING):
                raise MilvusError(
                    Code.NODE_NOT_AVAILABLE, f"the {which} node is invalid: node not available[node={source}]"
                )
        target_node = self.rm.nodes.get(target) if target is not None else None
        if segments and target_node is not None and target_node.embedded:  # ops_services.go (2.6)
            raise MilvusError(Code.PARAMETER_INVALID, "embedded query node in streaming node can't be the "
                                                      "destination of transfer segment: invalid parameter")
        self.rm.transfer_data(source, target, item, channels=not segments, copy_mode=copy_mode)
        return {"msg": "OK"}

    def transfer_segment(self, params: dict[str, str]) -> dict[str, Any]:
        return self._transfer(params, segments=True)

    def transfer_channel(self, params: dict[str, str]) -> dict[str, Any]:
        return self._transfer(params, segments=False)

    def suspend_balance(self, params: dict[str, str]) -> dict[str, Any]:
        """`SuspendBalance`: deactivates the balance checker's normal rebalance; moving data off read-only
        (suspended, stopping) nodes goes on (checkers/balance_checker.go `replicasToBalance`)."""
        self.rm.set_balance_suspended(True)
        return {"msg": "OK"}

    def resume_balance(self, params: dict[str, str]) -> dict[str, Any]:
        self.rm.set_balance_suspended(False)
        return {"msg": "OK"}

    def balance_status(self, params: dict[str, str]) -> dict[str, Any]:
        return {"msg": "OK", "status": "suspended" if self.rm.balance_suspended else "active"}


def go_body(body: dict[str, Any]) -> str:
    """What the handler writes: `{"msg": ...}` bodies come from format strings (`{"msg": "OK"}`,
    `{"msg": "failed to <action>, %s"}`, `{"msg": "OK", "status": "%v"}`: values unescaped, so a reason with a
    quote is not JSON); response messages (`node/list`, `distribution/get`) from encoding/json (compact)."""
    if body and set(body) <= {"msg", "status"}:
        return "{" + ", ".join(f'"{key}": "{value}"' for key, value in body.items()) + "}"
    return json.dumps(body, separators=(",", ":"))


def go_response(body: dict[str, Any] | str, status: int = 200) -> web.Response:
    """A Go handler's `w.Write(...)` with no Content-Type set: net/http sniffs text/plain."""
    text = body if isinstance(body, str) else go_body(body)
    return web.Response(text=text, status=status, content_type="text/plain")


def coordinator_unavailable(version: MilvusVersion) -> str:
    """The reason a coordinator that is not serving gives: querycoord services.go handlers start with
    `merr.CheckHealthy(s.State())` -> merr `WrapErrServiceNotReady(role, nodeID, state)`, rendered by
    `wrapFieldsWithDesc` as `service not ready[<role>=<id>]: <state>` (2.5); so it answers while it starts.
    2.6 runs it in the MixCoord process (`paramtable.GetRole()` "mixcoord")."""
    role = "mixcoord" if version.streaming else "querycoord"
    return f"service not ready[{role}=1]: Initializing"


def build_app(api: ManagementApi) -> web.Application:
    controls = api.controls

    @web.middleware
    async def faults(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith(PREFIX) and not api.serves(request.path.removeprefix(f"{PREFIX}/")):
            return web.Response(text=GO_NOT_FOUND, status=404)
        return await handler(request)

    def endpoint(suffix: str, action: str, handler: RouteHandler, mutating: bool) -> Any:
        async def handle(request: web.Request) -> web.Response:
            params = {**request.query, **(await request.post())}
            str_params = {k: str(v) for k, v in params.items()}
            if controls.unavailable:
                # every handler: `if !merr.Ok(resp...)` -> HTTP 500 with the coordinator's reason
                return go_response({"msg": f"failed to {action}, {coordinator_unavailable(api.rm.milvus_version)}"},
                                   status=500)
            if mutating:
                controls.write_rpcs[suffix] += 1
            try:
                with controls.lock:
                    body = handler(str_params)
            except BadRequest as error:
                return go_response(error.body or {"msg": f"failed to {action}, {error}"}, status=400)
            except MilvusError as error:
                return go_response({"msg": f"failed to {action}, {error.message}"}, status=500)
            if mutating:
                controls.on_change()
            return go_response(body)

        return handle

    async def healthz(request: web.Request) -> web.Response:
        """internal/http/healthz `ServeHTTP`: the components of this (proxy) process; the coordinator's state
        is not among them, so it says OK while the coordinator is unavailable."""
        return web.Response(text="OK")

    app = web.Application(middlewares=[faults])
    app.router.add_get("/healthz", healthz)
    for suffix, (action, handler, mutating) in api.routes().items():
        app.router.add_route("*", f"{PREFIX}/{suffix}", endpoint(suffix, action, handler, mutating))
    return app
