"""A small asyncio client for the real API server, addressed like the embedded store ("apps/v1/statefulsets").

The sandbox side cannot use the operator's gateway (it never imports the operator) and needs only
create/get/list/patch/delete and a resumable watch.
"""

from __future__ import annotations

import json
import ssl
import unittest
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

Obj = dict[str, Any]

CLUSTER_SCOPED = frozenset({
    "nodes", "namespaces", "customresourcedefinitions", "clusterroles", "clusterrolebindings",
    "persistentvolumes", "priorityclasses", "storageclasses", "apiservices",
})


class EmbeddedOnly(NotImplementedError, unittest.SkipTest):
    """A fault or probe the embedded sandbox offers but a real cluster's API cannot express. Also a
    `unittest.SkipTest`: a test that asks for one on the real backend is skipped with this reason (test
    runners and hypothesis honour it at once, rather than report or shrink it as a failure)."""


class ApiStatusError(RuntimeError):
    """A non-2xx answer; `status` is the HTTP code, `body` the decoded Status object."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class WatchExpired(RuntimeError):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def resource_path(resource: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """`v1/pods` -> /api/v1[/namespaces/NS]/pods[/NAME[/SUB]]; `apps/v1/statefulsets` -> /apis/apps/v1/..."""
    parts = resource.split("/")
    prefix = f"/api/{parts[0]}" if len(parts) == 2 else f"/apis/{parts[0]}/{parts[1]}"
    plural = parts[-1]
    path = prefix
    if namespace is not None and plural not in CLUSTER_SCOPED:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


class KubeRestClient:
    def __init__(self, server: str, token: str, *, user_agent: str | None = None) -> None:
        """`user_agent`: the User-Agent of every request (default: aiohttp's), so that the API server's
        write log (`mutations`) tells this client's writes from others'."""
        self.server = server.rstrip("/")
        self.token = token
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the API server's certificate is self-signed, like kubeconfig's
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.user_agent:
                headers["User-Agent"] = self.user_agent
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=20),
                                                  headers=headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._client().request(method, self.server + path, data=data, params=params,
                                          headers=headers) as response:
            text = await response.text()
            decoded = json.loads(text) if text.startswith("{") else text
            if response.status >= 300:
                raise ApiStatusError(response.status, decoded)
            return decoded

    async def ok(self, path: str) -> bool:
        async with self._client().get(self.server + path, timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status == 200

    async def create(self, resource: str, obj: Obj) -> Obj:
        namespace = obj.get("metadata", {}).get("namespace") or "default"
        return dict(await self.request("POST", resource_path(resource, namespace), obj))

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return dict(await self.request("GET", resource_path(resource, namespace, name)))
        except ApiStatusError as error:
            if error.status == 404:
                return None
            raise

    async def list_object(self, resource: str, namespace: str | None = None,
                          label_selector: str | None = None) -> Obj:
        """The List object (items and the resourceVersion to watch from)."""
        params = {"labelSelector": label_selector} if label_selector else None
        return dict(await self.request("GET", resource_path(resource, namespace), params=params))

    async def list(self, resource: str, namespace: str | None = None, label_selector: str | None = None) -> list[Obj]:
        """The items, as the embedded store's `list` answers."""
        return list((await self.list_object(resource, namespace, label_selector)).get("items") or [])

    async def patch(self, resource: str, namespace: str, name: str, patch: Obj,
                    subresource: str | None = None) -> Obj:
        return dict(await self.request("PATCH", resource_path(resource, namespace, name, subresource), patch,
                                       content_type="application/merge-patch+json"))

    async def replace(self, resource: str, obj: Obj, subresource: str | None = None) -> Obj:
        """PUT: the whole object (or its status); refused with 409 when its resourceVersion is stale."""
        meta = obj["metadata"]
        path = resource_path(resource, meta.get("namespace") or "default", meta["name"], subresource)
        return dict(await self.request("PUT", path, obj))

    async def delete(self, resource: str, namespace: str, name: str, grace_seconds: int | None = None) -> None:
        body = None if grace_seconds is None else {"gracePeriodSeconds": grace_seconds}
        try:
            await self.request("DELETE", resource_path(resource, namespace, name), body)
        except ApiStatusError as error:
            if error.status != 404:
                raise

    async def purge(self, resource: str, namespace: str, name: str) -> None:
        """What the kubelet does once a container exited: delete with grace period 0."""
        await self.delete(resource, namespace, name, grace_seconds=0)

    def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        raise EmbeddedOnly("store subscriptions (synchronous commit hooks) exist in the embedded store only")

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        raise EmbeddedOnly("the store's resource registry (used for commit hooks) is the embedded store's own")

    async def watch(self, resource: str, resource_version: str,
                    namespace: str | None = None) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) events after `resource_version` until the server ends the watch (BOOKMARK events
        included: they carry the resourceVersion to resume from). Raises WatchExpired on 410."""
        params = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "300"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._client().get(self.server + resource_path(resource, namespace), params=params,
                                      timeout=timeout) as response:
            if response.status >= 300:
                raise ApiStatusError(response.status, await response.text())
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(obj.get("message", "resourceVersion too old"))
                    raise ApiStatusError(int(obj.get("code") or 500), obj)
                yield str(event["type"]), dict(obj)
