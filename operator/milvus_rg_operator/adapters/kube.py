"""The Kubernetes side of the wire, through the official kubernetes client.

The client is synchronous; every call runs in a worker thread so the operator's event loop
(kopf's) never blocks. One ApiClient is built once and reused: building it per event costs
more than kopf itself (see the test-environment notes).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import importlib.metadata
import json
import os
import urllib.parse
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from milvus_rg_operator.constants import API_GROUP, VERSION
from milvus_rg_operator.constants import OPERATOR_NAME as OPERATOR_NAME  # re-exported
from milvus_rg_operator.constants import POOL_PLURAL as POOL_PLURAL  # re-exported: the plurals the adapter writes
from milvus_rg_operator.constants import RESOURCE_GROUP_PLURAL as RESOURCE_GROUP_PLURAL
from milvus_rg_operator.core.types import DEPLOYMENT, MILVUS, STATEFULSET, WorkloadRef

USER_AGENT = f"{OPERATOR_NAME}/{importlib.metadata.version(OPERATOR_NAME)}"

JSON = "application/json"
CONCURRENT_CALLS = 16  # API calls in flight at once (threads and pooled connections): see reconcile's label patches
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when the API was unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def conflict(self) -> bool:
        return self.status == 409


class KubeGateway(Protocol):
    async def get_pool(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def list_groups(self, namespace: str) -> list[dict[str, Any]]: ...
    async def get_workload(self, namespace: str, workload: WorkloadRef) -> dict[str, Any] | None: ...
    async def create_statefulset(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def scale_workload(self, namespace: str, workload: WorkloadRef, replicas: int) -> None: ...
    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]: ...
    async def patch_pod_metadata(self, namespace: str, name: str, labels: Mapping[str, str | None],
                                 annotations: Mapping[str, str | None]) -> None: ...
    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    async def set_finalizers(self, plural: str, obj: dict[str, Any], finalizers: list[str]) -> None: ...
    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None: ...
    async def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None: ...


class KubernetesClientGateway:
    """KubeGateway over the official client; configured from KUBECONFIG or the in-cluster config.

    Requests go through the client's ApiClient (its configuration, auth, TLS and connection pool) as JSON
    in and plain dicts out. The typed API classes are not used: importing CoreV1Api and AppsV1Api loads
    about 280 pydantic model classes (about 25 MB of RSS), and turning a LIST of pods into models and back
    into dicts cost more CPU than the rest of a pass."""

    def __init__(self, api_client: ApiClient | None = None) -> None:
        if api_client is None:
            api_client = new_api_client()
        self._api_client = api_client
        # Calls block, so each takes a thread: a pool of our own, as wide as the connection pool, so a pass's
        # concurrent label patches are not capped by asyncio's default executor (cpu count + 4 threads).
        self._threads = ThreadPoolExecutor(max_workers=CONCURRENT_CALLS, thread_name_prefix="kube")

    async def _run(self, what: str, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                   body: Any = None, content_type: str = JSON) -> Any:
        call = functools.partial(request_json, self._api_client, method, path, query=query, body=body,
                                 content_type=content_type)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except ApiException as exc:
            raise KubeError(f"{what}: {_api_message(exc)}", exc.status or 0) from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise KubeError(f"{what}: Kubernetes API unreachable: {exc}") from exc

    async def _run_unless_gone(self, what: str, method: str, path: str, **request: Any) -> Any:
        """`_run`, but None when the object is not there (404)."""
        try:
            return await self._run(what, method, path, **request)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def get_pool(self, namespace: str, name: str) -> dict[str, Any] | None:
        pool: dict[str, Any] | None = await self._run_unless_gone(
            f"get QueryNodePool {namespace}/{name}", "GET", _custom_path(namespace, POOL_PLURAL, name))
        return pool

    async def list_groups(self, namespace: str) -> list[dict[str, Any]]:
        result = await self._run(
            f"list ResourceGroups in {namespace}", "GET", _custom_path(namespace, RESOURCE_GROUP_PLURAL))
        return list(result.get("items", []))

    async def get_workload(self, namespace: str, workload: WorkloadRef) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._run_unless_gone(
            f"get {workload} in {namespace}", "GET", _workload_path(namespace, workload))
        return found

    async def create_statefulset(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        sts: dict[str, Any] = await self._run(
            f"create StatefulSet {namespace}/{body['metadata']['name']}", "POST",
            _statefulset_path(namespace), body=body)
        return sts

    async def scale_workload(self, namespace: str, workload: WorkloadRef, replicas: int) -> None:
        """Through the scale subresource; a Milvus (no scale subresource) through its query-node replicas,
        which milvus-operator then sets on its Deployments."""
        if workload.kind == MILVUS:
            await self._run(f"scale {workload} in {namespace} to {replicas}", "PATCH",
                            _milvus_path(namespace, workload.name),
                            body={"spec": {"components": {"queryNode": {"replicas": replicas}}}},
                            content_type=MERGE_PATCH)
            return
        await self._run(
            f"scale {workload} in {namespace} to {replicas}", "PATCH", f"{_workload_path(namespace, workload)}/scale",
            body={"spec": {"replicas": replicas}}, content_type=MERGE_PATCH)

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = await self._run(
            f"list pods {label_selector} in {namespace}", "GET", _core_path(namespace, "pods"),
            query=[("labelSelector", label_selector)])
        items = pods.get("items") or []
        for pod in items:  # a LIST's items carry no kind; the watch's objects (and the typed client's) do
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
        return list(items)

    async def patch_pod_metadata(self, namespace: str, name: str, labels: Mapping[str, str | None],
                                 annotations: Mapping[str, str | None]) -> None:
        metadata: dict[str, Any] = {}
        if labels:
            metadata["labels"] = dict(labels)
        if annotations:
            metadata["annotations"] = dict(annotations)
        # A pod removed since it was listed needs no label: 404 is not an error here.
        await self._run_unless_gone(f"label pod {namespace}/{name}", "PATCH", _core_path(namespace, "pods", name),
                                    body={"metadata": metadata}, content_type=MERGE_PATCH)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._run(
            f"update status of {plural}/{name}", "PATCH", f"{_custom_path(namespace, plural, name)}/status",
            body={"status": status}, content_type=MERGE_PATCH)

    async def set_finalizers(self, plural: str, obj: dict[str, Any], finalizers: list[str]) -> None:
        meta = obj["metadata"]
        # resourceVersion makes this a compare-and-swap: a concurrent edit gives 409, never a lost finalizer.
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        await self._run(
            f"set finalizers of {plural}/{meta['name']}", "PATCH",
            _custom_path(meta["namespace"], plural, meta["name"]), body=body, content_type=MERGE_PATCH)

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = await self._run_unless_gone(
            f"read Secret {namespace}/{name}", "GET", _core_path(namespace, "secrets", name))
        if secret is None:
            return None
        data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        data.update(secret.get("stringData") or {})
        return data

    async def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "source": {"component": OPERATOR_NAME},
            "reportingComponent": OPERATOR_NAME,
        }
        await self._run(f"post event {reason}", "POST", _core_path(meta["namespace"], "events"), body=body)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _namespaced_path(api: str, namespace: str, plural: str, name: str | None) -> str:
    path = f"{api}/namespaces/{_quote(namespace)}/{plural}"
    return path if name is None else f"{path}/{_quote(name)}"


# One helper per API the adapter calls: the chart's RBAC test reads the calls by these names.
def _core_path(namespace: str, plural: str, name: str | None = None) -> str:
    return _namespaced_path("/api/v1", namespace, plural, name)


def _statefulset_path(namespace: str, name: str | None = None) -> str:
    return _namespaced_path("/apis/apps/v1", namespace, "statefulsets", name)


WORKLOAD_APIS = {STATEFULSET: ("/apis/apps/v1", "statefulsets"), DEPLOYMENT: ("/apis/apps/v1", "deployments"),
                 MILVUS: ("/apis/milvus.io/v1beta1", "milvuses")}


def _workload_path(namespace: str, workload: WorkloadRef) -> str:
    api, plural = WORKLOAD_APIS[workload.kind]
    return _namespaced_path(api, namespace, plural, workload.name)


def _milvus_path(namespace: str, name: str) -> str:
    return _namespaced_path(WORKLOAD_APIS[MILVUS][0], namespace, WORKLOAD_APIS[MILVUS][1], name)


def _custom_path(namespace: str, plural: str, name: str | None = None) -> str:
    return _namespaced_path(f"/apis/{API_GROUP}/{VERSION}", namespace, plural, name)


def request_json(api_client: ApiClient, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                 body: Any = None, content_type: str = JSON, timeout: float | None = None) -> Any:
    """One API call through `api_client` (its configuration, auth, TLS and pool), synchronous: run it in a
    thread. The decoded JSON response; ApiException for an answer outside 2xx."""
    headers = {"Accept": JSON}
    if body is not None:
        headers["Content-Type"] = content_type
    _, url, headers, body, _ = api_client.param_serialize(
        method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"])
    response = api_client.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=data.decode(errors="replace"), data=None)
    return json.loads(data) if data else None


def new_api_client(user_agent: str = USER_AGENT) -> ApiClient:
    """KUBECONFIG (read now, not at import as the client's default does) or ~/.kube/config when present,
    else the in-cluster service account. The user agent names the operator in the API server's audit log."""
    configuration = kubernetes.client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if os.path.exists(kubeconfig.split(os.pathsep)[0]):
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, CONCURRENT_CALLS)
    client = ApiClient(configuration)
    client.user_agent = user_agent
    return client


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return f"HTTP {exc.status} {exc.reason}"
