"""Helpers of the tests of the sandbox's Deployment-based parts (milvus-operator's stand-in, the query-node
shapes, the HPA): what Deployments went through, seen from a watch like any client of the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from milvus_rg_sandbox.milvus_operator import DEPLOYMENTS
from milvus_rg_sandbox.realkube import KubeRestClient
from milvus_rg_sandbox.realkube.client import WatchExpired
from milvus_rg_sandbox.sandbox import Sandbox


class ReplicaHistory:
    """Every `spec.replicas` each Deployment had, in order (consecutive repeats folded), from a watch."""

    def __init__(self, api: KubeRestClient, namespace: str = "default") -> None:
        self.api = api
        self.namespace = namespace
        self.replicas: dict[str, list[int]] = {}
        self.pairs: list[tuple[int, ...]] = []
        self.events: list[tuple[str, int, int]] = []
        """(name, spec.replicas, status.availableReplicas) of every event, in the API's order."""
        self._names: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None

    def of(self, name: str) -> list[int]:
        return self.replicas.get(name, [])

    def seen_before_scale_downs(self, name: str, other: str) -> list[tuple[int, int]]:
        """For every decrease of `name`'s replicas: `other`'s (replicas, available replicas) as last seen."""
        seen: list[tuple[int, int]] = []
        latest: dict[str, tuple[int, int]] = {}
        for event_name, replicas, available in self.events:
            previous = latest.get(event_name)
            if event_name == name and previous is not None and replicas < previous[0] and other in latest:
                seen.append(latest[other])
            latest[event_name] = (replicas, available)
        return seen

    def track_pairs(self, *names: str) -> None:
        """Also record the replicas of `names` together, now and after every change of one of them."""
        self._names = names
        if all(self.replicas.get(n) for n in names):
            self.pairs.append(tuple(self.replicas[n][-1] for n in names))

    async def start(self) -> None:
        listing = await self.api.list_object(DEPLOYMENTS, self.namespace)
        for deployment in listing.get("items") or []:
            self._record(deployment)
        self._task = asyncio.create_task(self._follow(str(listing["metadata"]["resourceVersion"])))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.api.close()

    async def _follow(self, version: str) -> None:
        while True:
            with contextlib.suppress(WatchExpired):
                async for event_type, deployment in self.api.watch(DEPLOYMENTS, version, self.namespace):
                    version = str(deployment.get("metadata", {}).get("resourceVersion") or version)
                    if event_type in ("ADDED", "MODIFIED"):
                        self._record(deployment)

    def _record(self, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        self.events.append((name, int(deployment["spec"].get("replicas", 1)),
                            int((deployment.get("status") or {}).get("availableReplicas") or 0)))
        history = self.replicas.setdefault(name, [])
        replicas = int(deployment["spec"].get("replicas", 1))
        if history and history[-1] == replicas:
            return
        history.append(replicas)
        if name in self._names and all(self.replicas.get(n) for n in self._names):
            self.pairs.append(tuple(self.replicas[n][-1] for n in self._names))


@contextlib.asynccontextmanager
async def replica_history(sandbox: Sandbox, namespace: str = "default") -> AsyncIterator[ReplicaHistory]:
    history = ReplicaHistory(sandbox.api_client("test-replica-history"), namespace)
    await history.start()
    try:
        yield history
    finally:
        await history.stop()
