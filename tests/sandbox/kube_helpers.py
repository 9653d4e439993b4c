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


async def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s")
        await asyncio.sleep(0.01)


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer(port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http(kube: KubeApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=kube.url) as session:
        yield session


def api_client(server: KubeApiServer) -> client.ApiClient:
    """A real kubernetes client for the server (its calls block: run them with asyncio.to_thread)."""
    configuration = client.Configuration(host=server.url)
    return client.ApiClient(configuration)


class WatchStream:
    """An open `?watch=true` HTTP stream, read event by event."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next_event(self, seconds: float = 5.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.response.content.readline(), seconds)
        if not line:
            raise EOFError("the watch stream ended")
        event: dict[str, Any] = json.loads(line)
        return event

    async def events(self, count: int, seconds: float = 5.0) -> list[tuple[str, str]]:
        """The next `count` events as (type, name)."""
        result = []
        for _ in range(count):
            event = await self.next_event(seconds)
            result.append((event["type"], event["object"]["metadata"]["name"]))
        return result

    async def ended(self, seconds: float = 5.0) -> bool:
        return await asyncio.wait_for(self.response.content.readline(), seconds) == b""


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
