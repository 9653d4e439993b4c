"""Fixtures and helpers shared by the sandbox Kubernetes API server tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from milvus_rg_sandbox.kube import KubeApiServer
from milvus_rg_sandbox.realkube import SharedControlPlane


async def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s")
        await asyncio.sleep(0.01)


@pytest.fixture(params=["embedded", "real"])
async def kube(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The API server under test, once per backend: the embedded `KubeApiServer`, and the session's real
    kube-apiserver (`SharedControlPlane`: `.url` = kube-apiserver behind the fault proxy, `.store` = a client
    addressed like the store, reset with its CRDs after the test). A test that needs the embedded internals is
    marked `embedded_only`."""
    if request.param == "real":
        if request.node.get_closest_marker("embedded_only"):
            pytest.skip(f"embedded sandbox only: {request.node.get_closest_marker('embedded_only').args[0]}")
        shared = SharedControlPlane(request.getfixturevalue("real_control_plane"), drop_crds_on_stop=True)
        await shared.start()
        try:
            yield shared
        finally:
            await shared.stop()
        return
    server = KubeApiServer(port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def is_real(server: Any) -> bool:
    return isinstance(server, SharedControlPlane)


def _token(server: Any) -> str | None:
    return server.control_plane.token if is_real(server) else None


@pytest.fixture
async def http(kube: Any) -> AsyncIterator[aiohttp.ClientSession]:
    token = _token(kube)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    connector = aiohttp.TCPConnector(ssl=False)  # the real API server's certificate is self-signed
    async with aiohttp.ClientSession(base_url=kube.url, headers=headers, connector=connector) as session:
        yield session


def api_client(server: Any) -> client.ApiClient:
    """A real kubernetes client for the server (its calls block: run them with asyncio.to_thread)."""
    configuration = client.Configuration(host=server.url)
    token = _token(server)
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
        configuration.verify_ssl = False
    return client.ApiClient(configuration)


# What a real cluster has from the start (kube-controller-manager publishes kube-root-ca.crt in every
# namespace): left out where a test compares everything it lists or watches.
SYSTEM_NAMES = frozenset({"kube-root-ca.crt", "kube-system", "kube-public", "kube-node-lease",
                          "extension-apiserver-authentication", "kube-apiserver-legacy-service-account-token-tracking"})


def ours(names: list[str]) -> list[str]:
    return [name for name in names if name not in SYSTEM_NAMES]


async def current_version(http: aiohttp.ClientSession, path: str) -> str:
    """The resourceVersion of a list of `path` now (to watch from)."""
    async with http.get(path) as response:
        return str((await response.json())["metadata"]["resourceVersion"])


async def wait_established(http: aiohttp.ClientSession, name: str) -> None:
    """A real API server establishes (and serves) a new CRD a moment after creating it; the embedded one at
    once (docs/sandbox.md, known differences). Served means in discovery too: a real server's discovery of
    the group version follows the Established condition by another moment (seen once in CI as a 404)."""
    async def established() -> bool:
        async with http.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") as response:
            crd = await response.json()
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
        plural, group = crd["spec"]["names"]["plural"], crd["spec"]["group"]
        for version in (v["name"] for v in crd["spec"]["versions"] if v.get("served")):
            async with http.get(f"/apis/{group}/{version}") as response:
                if response.status != 200 or plural not in {r["name"] for r in (await response.json())["resources"]}:
                    return False
        return True

    deadline = time.monotonic() + 30
    while not await established():
        if time.monotonic() > deadline:
            raise AssertionError(f"CRD {name} not Established")
        await asyncio.sleep(0.05)


class WatchStream:
    """An open `?watch=true` HTTP stream, read event by event."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next_event(self, seconds: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            line = await self.response.content.readline()
        if not line:
            raise EOFError("the watch stream ended")
        event: dict[str, Any] = json.loads(line)
        return event

    async def events(self, count: int, seconds: float = 5.0) -> list[tuple[str, str]]:
        """The next `count` events as (type, name), leaving out a real cluster's own objects."""
        result: list[tuple[str, str]] = []
        while len(result) < count:
            event = await self.next_event(seconds)
            if event["object"]["metadata"]["name"] not in SYSTEM_NAMES:
                result.append((event["type"], event["object"]["metadata"]["name"]))
        return result

    async def ended(self, seconds: float = 5.0) -> bool:
        async with asyncio.timeout(seconds):
            return await self.response.content.readline() == b""


async def open_watch(http: aiohttp.ClientSession, path: str, **params: str) -> WatchStream:
    response = await http.get(path, params={"watch": "true", **params})
    assert response.status == 200
    return WatchStream(response)


def crd_manifest(
    schema: dict[str, Any],
    *,
    group: str = "example.io",
    kind: str = "Widget",
    plural: str = "widgets",
    short_names: tuple[str, ...] = ("wdg",),
    categories: tuple[str, ...] = ("examples",),
    scale: bool = True,
) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
                "shortNames": list(short_names),
                "categories": list(categories),
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                }
            ],
        },
    }


WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "selector": {"type": "string"},
            },
        },
    },
}
