"""Helpers for the workload fidelity tests, which run on both Kubernetes backends (embedded and real): manifests,
raw HTTP calls (subresources, evictions) and watch recorders against `sandbox.kube.url`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import PODS, pod_is_ready
from tests.support import wait_for

Obj = dict[str, Any]
NS = "default"
GENERATED = "[bcdfghjklmnpqrstvwxz2456789]"  # the characters of generated names and hashes
HASH = re.compile(f"{GENERATED}{{1,10}}")
MERGE = "application/merge-patch+json"


def container(image: str = "registry.example/app:1") -> Obj:
    return {"name": "app", "image": image}


def deployment(name: str, replicas: int, *, strategy: Obj | None = None, image: str = "registry.example/app:1",
               **spec: Any) -> Obj:
    labels = {"app": name}
    body: Obj = {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(image)]}}, **spec}
    if strategy is not None:
        body["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": body}


def replicaset(name: str, replicas: int) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}}}}


GATED = {"spec": {"template": {"spec": {"schedulingGates": [{"name": "example.com/hold"}]}}}}
"""A template patch: the pods made from it from now on stay Pending (never Ready) until their gate is removed."""


def statefulset(name: str, replicas: int, *, policy: str | None = None, strategy: Obj | None = None,
                image: str = "registry.example/app:1") -> Obj:
    labels = {"app": name}
    spec: Obj = {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(image)]}}}
    if policy is not None:
        spec["podManagementPolicy"] = policy
    if strategy is not None:
        spec["updateStrategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def owned_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or [])


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


async def ready_pods(sandbox: Sandbox, selector: str, count: int, timeout: float = 30) -> list[Obj]:
    """Wait until exactly `count` pods match `selector`, none terminating, all Ready; sorted by name."""
    async def probe() -> list[Obj] | None:
        pods = await sandbox.kube.store.list(PODS, NS, label_selector=selector)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if len(pods) == count and len(live) == count and all(pod_is_ready(p) for p in live):
            return sorted(live, key=name_of)
        return None

    return await wait_for(probe, timeout=timeout, message=f"{count} Ready pods {selector}")


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class RawApi:
    """HTTP against the sandbox's API server (with the real one's admin token), for what the store API lacks."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.url = sandbox.kube.url
        control_plane = getattr(sandbox.kube, "control_plane", None)
        token = getattr(control_plane, "token", None)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    @asynccontextmanager
    async def session(self) -> AsyncIterator[aiohttp.ClientSession]:
        connector = aiohttp.TCPConnector(ssl=False)  # the real API server's certificate is self-signed
        async with aiohttp.ClientSession(base_url=self.url, headers=self.headers, connector=connector) as session:
            yield session

    async def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Answer:
        async with self.session() as session:
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": content_type} if data is not None else {}
            async with session.request(method, path, data=data, headers=headers) as response:
                text = await response.text()
                decoded = json.loads(text) if text.startswith("{") else text
                return Answer(response.status, decoded, dict(response.headers))

    async def evict(self, name: str, namespace: str = NS, **delete_options: Any) -> Answer:
        body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if delete_options:
            body["deleteOptions"] = delete_options
        return await self.call("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", body)


@dataclass
class Recorder:
    """The events of a watch, as they came: (type, object)."""

    events: list[tuple[str, Obj]] = field(default_factory=list)

    def objects(self, predicate: Callable[[str, Obj], bool]) -> list[tuple[str, Obj]]:
        return [(kind, obj) for kind, obj in self.events if predicate(kind, obj)]


@asynccontextmanager
async def recording(api: RawApi, path: str) -> AsyncIterator[Recorder]:
    """Record every event of a watch on `path` (a collection) from now until the block ends."""
    recorder = Recorder()
    async with api.session() as session:
        async with session.get(path) as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        opened = asyncio.Event()

        async def follow() -> None:
            params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "300"}
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with session.get(path, params=params, timeout=timeout) as stream:
                opened.set()
                async for line in stream.content:
                    if line.strip():
                        event = json.loads(line)
                        recorder.events.append((event["type"], event["object"]))

        task = asyncio.create_task(follow())
        try:
            await wait_for(opened.is_set, timeout=10, message=f"watch on {path} open")
            yield recorder
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
