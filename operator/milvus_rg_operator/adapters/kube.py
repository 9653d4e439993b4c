"""The Kubernetes side of the wire, through the official kubernetes client.

The client is synchronous; every call runs in a worker thread so the operator's event loop
(kopf's) never blocks. One ApiClient is built once and reused: building it per event costs
more than kopf itself (see the test-environment notes).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import importlib.metadata
import json
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import kubernetes
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from milvus_rg_operator.constants import GROUP, RESOURCE_GROUP_PLURAL, VERSION
from milvus_rg_operator.constants import OPERATOR_NAME as OPERATOR_NAME  # re-exported
from milvus_rg_operator.constants import POOL_PLURAL as POOL_PLURAL  # re-exported beside GROUP_PLURAL

GROUP_PLURAL = RESOURCE_GROUP_PLURAL
USER_AGENT = f"{OPERATOR_NAME}/{importlib.metadata.version(OPERATOR_NAME)}"

T = TypeVar("T")


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
    async def get_statefulset(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_statefulset(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def scale_statefulset(self, namespace: str, name: str, replicas: int) -> None: ...
    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]: ...
    async def patch_pod_metadata(self, namespace: str, name: str, labels: Mapping[str, str | None],
                                 annotations: Mapping[str, str | None]) -> None: ...
    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    async def set_finalizers(self, plural: str, obj: dict[str, Any], finalizers: list[str]) -> None: ...
    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None: ...
    async def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None: ...


class KubernetesClientGateway:
    """KubeGateway over the official client; configured from KUBECONFIG or the in-cluster config."""

    def __init__(self, api_client: ApiClient | None = None) -> None:
        if api_client is None:
            api_client = new_api_client()
        self._api_client = api_client
        self._core = CoreV1Api(api_client)
        self._apps = AppsV1Api(api_client)
        self._custom = CustomObjectsApi(api_client)

    async def _run(self, what: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except ApiException as exc:
            raise KubeError(f"{what}: {_api_message(exc)}", exc.status or 0) from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise KubeError(f"{what}: Kubernetes API unreachable: {exc}") from exc

    async def _get_or_none(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            return await self._run(what, call)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def _sanitize(self, obj: Any) -> dict[str, Any]:
        return dict(self._api_client.sanitize_for_serialization(obj))

    async def get_pool(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(
            f"get QueryNodePool {namespace}/{name}",
            lambda: self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, POOL_PLURAL, name),
        )

    async def list_groups(self, namespace: str) -> list[dict[str, Any]]:
        result = await self._run(
            f"list ResourceGroups in {namespace}",
            lambda: self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, GROUP_PLURAL),
        )
        return list(result.get("items", []))

    async def get_statefulset(self, namespace: str, name: str) -> dict[str, Any] | None:
        sts = await self._get_or_none(
            f"get StatefulSet {namespace}/{name}",
            lambda: self._apps.read_namespaced_stateful_set(name, namespace),
        )
        return None if sts is None else self._sanitize(sts)

    async def create_statefulset(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        sts = await self._run(
            f"create StatefulSet {namespace}/{body['metadata']['name']}",
            lambda: self._apps.create_namespaced_stateful_set(namespace, body),
        )
        return self._sanitize(sts)

    async def scale_statefulset(self, namespace: str, name: str, replicas: int) -> None:
        await self._run(
            f"scale StatefulSet {namespace}/{name} to {replicas}",
            lambda: self._apps.patch_namespaced_stateful_set_scale(
                name, namespace, {"spec": {"replicas": replicas}}),
        )

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = await self._run(
            f"list pods {label_selector} in {namespace}",
            lambda: self._core.list_namespaced_pod(namespace, label_selector=label_selector),
        )
        return [self._sanitize(pod) for pod in pods.items]

    async def patch_pod_metadata(self, namespace: str, name: str, labels: Mapping[str, str | None],
                                 annotations: Mapping[str, str | None]) -> None:
        metadata: dict[str, Any] = {}
        if labels:
            metadata["labels"] = dict(labels)
        if annotations:
            metadata["annotations"] = dict(annotations)
        # A pod removed since it was listed needs no label: 404 is not an error here.
        await self._get_or_none(
            f"label pod {namespace}/{name}",
            lambda: self._core.patch_namespaced_pod(name, namespace, {"metadata": metadata}),
        )

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._run(
            f"update status of {plural}/{name}",
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, {"status": status}),
        )

    async def set_finalizers(self, plural: str, obj: dict[str, Any], finalizers: list[str]) -> None:
        meta = obj["metadata"]
        # resourceVersion makes this a compare-and-swap: a concurrent edit gives 409, never a lost finalizer.
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        await self._run(
            f"set finalizers of {plural}/{meta['name']}",
            lambda: self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], body),
        )

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = await self._get_or_none(
            f"read Secret {namespace}/{name}", lambda: self._core.read_namespaced_secret(name, namespace))
        if secret is None:
            return None
        data = {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
        data.update(secret.string_data or {})
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
        await self._run(f"post event {reason}",
                        lambda: self._core.create_namespaced_event(meta["namespace"], body))


def new_api_client(user_agent: str = USER_AGENT) -> ApiClient:
    """KUBECONFIG (read now, not at import as the client's default does) or ~/.kube/config when present,
    else the in-cluster service account. The user agent names the operator in the API server's audit log."""
    configuration = kubernetes.client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if os.path.exists(kubeconfig.split(os.pathsep)[0]):
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    client = ApiClient(configuration)
    client.user_agent = user_agent
    return client


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return f"HTTP {exc.status} {exc.reason}"
