"""An in-process Kubernetes API server for the sandbox, on kmock's aiohttp server.

kmock 0.8 (`kmock.KubernetesEmulator`) gives the HTTP server, its lifecycle and the Kubernetes
URL parsing; its storage, discovery and request pipeline miss too much (see test-environment.md),
so this module replaces `__call__` of the emulator with its own dispatch onto :class:`ObjectStore`.
Plain HTTP only (no TLS, no authentication: any token is accepted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal.parsing import parse_path

from .crd_validation import unknown_fields
from .errors import ApiError, bad_request
from .eviction import PODS, evict
from .openapi import openapi_v2, openapi_v3_group_version, openapi_v3_root
from .patching import json_patch, merge_patch
from .resources import ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import JSON_PATCH, MERGE_PATCH, ObjectStore, now_rfc3339

logger = logging.getLogger(__name__)

# Where this server knowingly differs from a real Kubernetes API server (v1.32).
KNOWN_DIFFERENCES = (
    "PATCH with application/strategic-merge-patch+json is applied as a JSON merge patch: lists are "
    "replaced, never merged by their patchMergeKey, and $patch/$retainKeys directives are not understood.",
    "Server-side apply (application/apply-patch+yaml) is not supported (415); managedFields are not kept.",
    "A watch from a resourceVersion older than the bounded event history gets a 200 stream with one "
    "ERROR event carrying a 410 Expired Status (as the watch cache does); BOOKMARK events are never sent.",
    "LIST ignores limit/continue and resourceVersion: it always answers everything, current.",
    "All versions of a CRD share one storage without conversion; only the apiVersion differs.",
    "Deleting a namespace does not delete its contents; propagationPolicy Foreground acts as Background.",
    "No authentication, authorization, admission webhooks or built-in controllers: a Deployment, ReplicaSet or "
    "StatefulSet never creates Pods by itself (the sandbox's workload emulator does). Built-in kinds are not "
    "validated but for a pod's controller.kubernetes.io/pod-deletion-cost, and only Deployments, StatefulSets and "
    "ReplicaSets are defaulted (their spec: strategy, replicas, revisionHistoryLimit, ...; not their pod template).",
    "An eviction (pods/eviction) is checked and applied atomically (kube-apiserver retries conflicting PDB "
    "writes); its delete honours deleteOptions' gracePeriodSeconds, preconditions and dryRun only.",
    "/openapi/v3 only lists operations and /openapi/v2 has no definitions (no schemas): kubectl relies on "
    "server-side field validation and its compiled-in types for strategic merge patches, and skips its "
    "client-side check of a `kind: List` document (a real server validates the List against v2's schemas).",
    "On create, `status` of a resource with a status subresource is dropped (pods start as Pending).",
    # Measured against kube-apiserver 1.37 (tests/sandbox run on both; docs/sandbox.md):
    "metadata.generation is set on every object, also on kinds without a spec (ConfigMaps, Secrets).",
    "A new CRD is Established and served at once, and unserved at once when deleted (a real server: a "
    "moment later).",
    "Dependents are garbage-collected synchronously with their owner (a cluster: by a controller).",
    "The final delete of a terminating pod (`purge`) sends only DELETED, not MODIFIED then DELETED.",
)

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Mutation:
    """One write (or LIST) request received over HTTP, for "what did the operator send" checks."""

    method: str
    path: str
    user_agent: str
    status: int
    timestamp: float


def request_record(raw_request: aiohttp.web.BaseRequest, status: int) -> Mutation:
    """What the request logs (`mutations`, `lists`) keep of one request."""
    return Mutation(raw_request.method.upper(), raw_request.path, raw_request.headers.get("User-Agent", ""),
                    status, time.time())


@dataclass
class Fault:
    """Answer the next `remaining` matching requests with `status` instead of serving them."""

    method: str | None
    path_pattern: re.Pattern[str]
    status: int
    remaining: int
    hits: int = 0
    user_agent: str | None = None  # only requests whose User-Agent starts with this (None: any client)

    def matches(self, method: str, path: str, user_agent: str = "") -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and self.path_pattern.search(path) is not None
            and (self.user_agent is None or user_agent.startswith(self.user_agent))
        )

    def error(self) -> ApiError:
        headers = {"Retry-After": "1"} if self.status == 429 else {}
        return ApiError(self.status, f"injected fault: HTTP {self.status}", headers=headers,
                        details={"retryAfterSeconds": 1} if self.status == 429 else {})


class FaultPlan:
    """The faults a test injected, in order: the first that matches a request answers it, instead of the
    server (the embedded API server and the real backend's fault proxy)."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, method: str | None, path_pattern: str, status: int, times: int = 1,
            user_agent: str | None = None) -> Fault:
        fault = Fault(method, re.compile(path_pattern), status, times, user_agent=user_agent)
        self.faults.append(fault)
        return fault

    def take(self, request: aiohttp.web.BaseRequest) -> Fault | None:
        """The fault that answers this request (counted as hit), if any."""
        agent = request.headers.get("User-Agent", "")
        fault = next((f for f in self.faults if f.matches(request.method.upper(), request.path, agent)), None)
        if fault is not None:
            fault.remaining -= 1
            fault.hits += 1
        return fault


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> ResourcePath | None:
    """kmock's URL parsing, plus the namespaces resource itself (which kmock reads as a namespace)."""
    tokens = path.strip("/").split("/")
    if tokens[:3] == ["api", "v1", "namespaces"] and (
        len(tokens) <= 4 or (len(tokens) == 5 and tokens[4] in ("status", "finalize"))
    ):
        return ResourcePath("", "v1", "namespaces", None, *[*tokens[3:5], None, None][:2])
    parsed = parse_path(path)
    if parsed.group is None or parsed.version is None or parsed.plural is None:
        return None
    return ResourcePath(parsed.group, parsed.version, parsed.plural, parsed.namespace, parsed.name,
                        parsed.subresource)


def _decode_strictly(resource: ResourceType, body: dict[str, Any]) -> None:
    """fieldValidation=Strict on a create or an update: unknown fields fail the decoding of the body before
    any validation (400 BadRequest, as kube-apiserver's `transformDecodeError`); a patch's are refused
    later, 422 Invalid, by the store (as kube-apiserver's patcher)."""
    unknown = unknown_fields(resource.schema, body) if resource.schema is not None else []
    if unknown:
        version = str(body.get("apiVersion") or resource.api_version).rsplit("/", 1)[-1]
        fields = ", ".join(f'unknown field "{name}"' for name in unknown)
        raise bad_request(f'{resource.kind} in version "{version}" cannot be handled as a {resource.kind}: '
                          f"strict decoding error: {fields}")


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, headers=headers,
                                content_type="application/json")


@attrs.define(kw_only=True)
class _KmockFrontEnd(kmock.KubernetesEmulator):
    """kmock's emulator as the aiohttp handler, with every request dispatched to the sandbox server."""

    api_server: KubeApiServer

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        return await self.api_server.handle(raw_request)


class KubeApiServer:
    """A Kubernetes API server on 127.0.0.1 for kubectl, kopf and the kubernetes client (plain HTTP)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 18443, *, history_limit: int = 2000) -> None:
        self.store = ObjectStore(history_limit=history_limit)
        self.mutations: list[Mutation] = []
        self.lists: list[Mutation] = []  # LIST requests (a GET of a collection, not a watch)
        self._faults = FaultPlan()
        self._front_end = _KmockFrontEnd(api_server=self)
        self._server = kmock.Server(self._front_end, host=host, port=port)

    async def start(self) -> None:
        await self._front_end.__aenter__()
        await self._server.__aenter__()

    async def stop(self) -> None:
        self.store.close_watches()  # so that the open watch streams end before the server waits for them
        await self._server.__aexit__(None, None, None)
        await self._front_end.__aexit__(None, None, None)

    async def __aenter__(self) -> KubeApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def inject_fault(self, method: str | None, path_pattern: str, status: int, times: int = 1,
                     user_agent: str | None = None) -> Fault:
        return self._faults.add(method, path_pattern, status, times, user_agent)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig (JSON, which is YAML) for kubectl, `kopf run` and `load_kube_config`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "sandbox", "user": {"token": "sandbox-token"}}],
            "contexts": [{"name": "sandbox",
                          "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace}}],
            "current-context": "sandbox",
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    # ----- request handling -----

    async def handle(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        method = raw_request.method.upper()
        try:
            fault = self._faults.take(raw_request)
            if fault is not None:
                raise fault.error()
            response = await self._route(raw_request)
        except ApiError as error:
            response = _json_response(error.status_body(), error.code, error.headers)
        except Exception as error:
            logger.exception("sandbox API server failed on %s %s", method, raw_request.path)
            response = _json_response(ApiError(500, repr(error)).status_body(), 500)
        if method in MUTATING_METHODS:
            self.mutations.append(request_record(raw_request, response.status))
        return response

    async def _route(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw_request.path.rstrip("/") or "/"
        if path == "/openapi/v2" and raw_request.method == "GET":
            body, content_type = openapi_v2(raw_request.headers.get("Accept", ""))
            return aiohttp.web.Response(body=body, content_type=content_type)
        discovery = self._discovery(path) if raw_request.method == "GET" else None
        if discovery is not None:
            return _json_response(discovery)
        target = parse_resource_path(path)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource")
        resource = self.store.registry.find(target.group, target.version, target.plural)
        if resource is None or target.subresource not in (None, "status", "scale", "eviction") or (
            target.subresource == "status" and not resource.has_status
        ) or (target.subresource == "scale" and resource.scale is None) or (
            target.subresource == "eviction" and resource.key != PODS
        ):
            raise ApiError(404, "the server could not find the requested resource")
        if resource.namespaced is False and target.namespace is not None:
            raise ApiError(404, "the server could not find the requested resource")
        return await self._serve_resource(raw_request, resource, target)

    async def _serve_resource(
        self, raw_request: aiohttp.web.BaseRequest, resource: ResourceType, target: ResourcePath,
    ) -> aiohttp.web.StreamResponse:
        query = raw_request.query
        method = raw_request.method
        body = await _read_json(raw_request)
        dry_run = query.get("dryRun") == "All"
        strict = query.get("fieldValidation", "").lower() == "strict"
        store = self.store
        if target.name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._watch(raw_request, resource, target.namespace)
            if method == "GET":
                self.lists.append(request_record(raw_request, 200))
                matches = _selector(query)
                items = store.list_objects(resource, target.namespace, matches)
                if resource.crd_name is None:
                    # Items of built-in kinds come without kind/apiVersion (typed lists); custom resources'
                    # (unstructured) keep them, as kube-apiserver answers.
                    items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
                return _json_response({
                    "apiVersion": resource.api_version,
                    "kind": f"{resource.kind}List",
                    "metadata": {"resourceVersion": str(store.revision)},
                    "items": items,
                })
            if method == "POST":
                if not isinstance(body, dict):
                    raise bad_request("the request body must be a JSON object")
                if strict:
                    _decode_strictly(resource, body)
                created = store.create_object(resource, target.namespace, body, dry_run=dry_run, strict=strict)
                return _json_response(created, 201)
            if method == "DELETE":
                doomed = store.list_objects(resource, target.namespace, _selector(query))
                removed = [
                    store.delete_object(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                        dry_run=dry_run)
                    for obj in doomed
                ]
                return _json_response({"apiVersion": resource.api_version, "kind": f"{resource.kind}List",
                                       "metadata": {"resourceVersion": str(store.revision)}, "items": removed})
            raise ApiError(405, f"{method} is not allowed on a collection")
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(raw_request, resource, target.namespace, name=target.name)
        if target.subresource == "scale":
            return _json_response(self._serve_scale(raw_request, resource, target, body, dry_run))
        if target.subresource == "eviction":
            if method != "POST":
                raise ApiError(405, f"{method} is not allowed on an eviction subresource")
            answer = evict(store, target.namespace or "default", target.name, body, now_rfc3339(), dry_run=dry_run)
            return _json_response(answer, int(answer["code"]))
        if method == "GET":
            return _json_response(store.get_object(resource, target.namespace, target.name))
        if method == "PUT":
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            if strict:
                _decode_strictly(resource, body)
            replacement = body
            return _json_response(store.update_object(
                resource, target.namespace, target.name, lambda _current: replacement,
                subresource=target.subresource, dry_run=dry_run, strict=strict))
        if method == "PATCH":
            return _json_response(store.patch_object(
                resource, target.namespace, target.name, body, _content_type(raw_request),
                subresource=target.subresource, dry_run=dry_run, strict=strict))
        if method == "DELETE":
            options = body if isinstance(body, dict) else {}
            grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
            propagation = options.get("propagationPolicy", query.get("propagationPolicy"))
            deleted = store.delete_object(
                resource, target.namespace, target.name,
                grace_period_seconds=None if grace is None else int(grace),
                orphan_dependents=propagation == "Orphan", dry_run=dry_run)
            # 200 with the object, also when finalizers or a grace period keep it (kube-apiserver answers 202
            # only to an explicit orphanDependents=false, a deprecated option: apiserver handlers/delete.go).
            return _json_response(deleted, 200)
        raise ApiError(405, f"{method} is not allowed on an object")

    def _serve_scale(
        self, raw_request: aiohttp.web.BaseRequest, resource: ResourceType, target: ResourcePath, body: Any,
        dry_run: bool,
    ) -> dict[str, Any]:
        assert target.name is not None  # the caller routes only named requests here
        store = self.store
        if raw_request.method == "GET":
            return store.get_scale(resource, target.namespace, target.name)
        if raw_request.method == "PUT":
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            replacement = body
            return store.update_scale(resource, target.namespace, target.name, lambda _current: replacement,
                                      dry_run=dry_run)
        if raw_request.method == "PATCH":
            content_type = _content_type(raw_request)

            def patched(current: dict[str, Any]) -> dict[str, Any]:
                result: dict[str, Any] = (
                    json_patch(current, body) if content_type == JSON_PATCH
                    else merge_patch(current, body)
                )
                return result

            return store.update_scale(resource, target.namespace, target.name, patched, dry_run=dry_run)
        raise ApiError(405, f"{raw_request.method} is not allowed on a scale subresource")

    async def _watch(
        self, raw_request: aiohttp.web.BaseRequest, resource: ResourceType, namespace: str | None,
        name: str | None = None,
    ) -> aiohttp.web.StreamResponse:
        query = raw_request.query
        matches = _selector(query, name)
        raw_revision = query.get("resourceVersion", "")
        since = int(raw_revision) if raw_revision not in ("", "0") else None
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        try:
            subscription = self.store.subscribe(resource, namespace, matches, since)
        except ApiError as error:
            await response.prepare(raw_request)
            await _write_event(response, "ERROR", error.status_body())
            await response.write_eof()
            return response
        try:
            await response.prepare(raw_request)
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            while True:
                remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        event = await subscription.queue.get()
                except TimeoutError:
                    break
                if event is None:
                    break
                await _write_event(response, *event)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the watcher went away
        finally:
            self.store.unsubscribe(subscription)
        return response

    # ----- discovery -----

    def _discovery(self, path: str) -> dict[str, Any] | None:
        registry = self.store.registry
        if path == "/version":
            return SERVER_VERSION
        if path == "/":
            paths = ["/api", "/api/v1", "/apis", "/version"]
            paths += [f"/apis/{g}/{v}" for g, versions in registry.groups().items() for v in versions]
            return {"paths": sorted(paths + [f"/apis/{g}" for g in registry.groups()])}
        if path in ("/healthz", "/readyz", "/livez"):
            return {"status": "ok"}
        if path == "/openapi/v3":
            return openapi_v3_root(registry)
        if path.startswith("/openapi/v3/"):
            *group, version = path.removeprefix("/openapi/v3/").split("/")[1:]
            document = openapi_v3_group_version(registry, "/".join(group), version)
            if document is None:
                raise ApiError(404, "the server could not find the requested resource")
            return document
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                    "serverAddress": self.url.removeprefix("http://")}]}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [_group_document(g, vs) for g, vs in registry.groups().items()]}
        tokens = path.strip("/").split("/")
        if tokens[0] == "api" and len(tokens) == 2:
            return self._resource_list("", tokens[1])
        if tokens[0] == "apis" and len(tokens) == 2:
            versions = registry.groups().get(tokens[1])
            if versions is None:
                raise ApiError(404, "the server could not find the requested resource")
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_document(tokens[1], versions)}
        if tokens[0] == "apis" and len(tokens) == 3:
            return self._resource_list(tokens[1], tokens[2])
        return None

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = self.store.registry.in_group_version(group, version)
        if not resources:
            raise ApiError(404, "the server could not find the requested resource")
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [entry for resource in resources for entry in resource.discovery_entries()],
        }


def _group_document(group: str, versions: list[str]) -> dict[str, Any]:
    documents = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
    return {"name": group, "versions": documents, "preferredVersion": documents[0]}


def _selector(query: Any, name: str | None = None) -> Any:
    by_labels = parse_label_selector(query.get("labelSelector"))
    by_fields = parse_field_selector(query.get("fieldSelector"))

    def matches(obj: dict[str, Any]) -> bool:
        return by_labels(obj) and by_fields(obj) and (name is None or obj["metadata"]["name"] == name)

    return matches


def _content_type(raw_request: aiohttp.web.BaseRequest) -> str:
    return (raw_request.headers.get("Content-Type") or MERGE_PATCH).split(";")[0].strip()


def _exists(store: ObjectStore, resource: ResourceType, target: ResourcePath) -> bool:
    assert target.name is not None
    try:
        store.get_object(resource, target.namespace, target.name)
    except ApiError:
        return False
    return True


async def _read_json(raw_request: aiohttp.web.BaseRequest) -> Any:
    raw = await raw_request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc


async def _write_event(response: aiohttp.web.StreamResponse, event_type: str, obj: dict[str, Any]) -> None:
    await response.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")
