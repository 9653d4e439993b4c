"""Pods of a real API server <-> Milvus query nodes: the rule of `milvus_rg_sandbox.wiring`, driven by a
watch instead of the embedded kubelet's callbacks.

- A query-node pod that is Ready with a pod IP -> `add_node(hostname=<its hostname>, address=<podIP>:21123)`.
- Its `deletionTimestamp` appears (graceful deletion) -> `stop_node`: the node leaves its group at once;
  kwok then removes the pod without waiting for a container (its pod-delete stage).
- Deleted with grace period 0, vanished without a graceful stop (node loss, force delete), or a restart
  (the restart count went up) -> `crash_node`: the old session expires after the session TTL; a restarted
  pod registers again as a new process once Ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from milvus_rg_sandbox.realkube.client import KubeRestClient, WatchExpired
from milvus_rg_sandbox.wiring import MilvusNodes, is_query_node, is_streaming_node, register_node
from milvus_rg_sandbox.workloads import PODS, Obj, is_terminating, pod_is_ready

logger = logging.getLogger(__name__)


@dataclass
class _Process:
    node_id: int | None
    restarts: int
    stopping: bool = False


def restart_count(pod: Obj) -> int:
    return sum(int(s.get("restartCount") or 0) for s in pod.get("status", {}).get("containerStatuses") or [])


class ApiPodNodeWiring:
    """Watches every pod of the API server and keeps the Milvus simulator's nodes in step."""

    def __init__(self, client: KubeRestClient, milvus: MilvusNodes, *, poll_interval: float = 0.02) -> None:
        self.client = client
        self.milvus = milvus
        self.poll_interval = poll_interval
        self._pods: dict[str, _Process] = {}  # pod uid -> its current container process
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch_task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()
        self.listeners: list[Callable[[str, Obj], None]] = []
        """Called with every pod event (type, pod) before the wiring acts on it (test observers)."""

    def node_id(self, pod_uid: str) -> int | None:
        process = self._pods.get(pod_uid)
        return process.node_id if process else None

    async def start(self) -> None:
        self._watch_task = asyncio.create_task(self._follow(), name="realkube-wiring")
        async with asyncio.timeout(30):
            await self.synced.wait()

    async def stop(self) -> None:
        tasks = [t for t in (self._watch_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watch_task = None

    async def _follow(self) -> None:
        while True:
            try:
                listing = await self.client.list_object(PODS)
                seen = set()
                for pod in listing.get("items") or []:
                    seen.add(pod["metadata"]["uid"])
                    self.observe("MODIFIED", pod)
                for uid in [uid for uid in self._pods if uid not in seen]:  # deleted while we were away
                    self._vanished(uid)
                self.synced.set()
                version = str(listing["metadata"]["resourceVersion"])
                while True:
                    async for event_type, pod in self.client.watch(PODS, version):
                        version = str(pod.get("metadata", {}).get("resourceVersion") or version)
                        if event_type != "BOOKMARK":
                            self.observe(event_type, pod)
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                continue
            except Exception:
                logger.exception("pod watch failed; listing again")
                await asyncio.sleep(0.5)

    def observe(self, event_type: str, pod: Obj) -> None:
        """One watch event: the Milvus call(s) a query-node process would cause."""
        for listener in self.listeners:
            listener(event_type, pod)
        if not (is_query_node(pod) or is_streaming_node(pod)):
            return
        uid = str(pod["metadata"]["uid"])
        process = self._pods.get(uid)
        if event_type == "DELETED":
            if process is not None and not process.stopping:
                self._vanished(uid)
            return
        if is_terminating(pod):
            if process is None or process.stopping:
                return
            if pod["metadata"].get("deletionGracePeriodSeconds") == 0:
                self._vanished(uid)  # no SIGTERM: a kill
            else:
                self._stop_gracefully(uid, process)
            return
        restarts = restart_count(pod)
        if process is not None and restarts > process.restarts and process.node_id is not None:
            self.milvus.crash_node(process.node_id)
            process.node_id = None
        ip = pod.get("status", {}).get("podIP")
        if pod_is_ready(pod) and ip and (process is None or process.node_id is None):
            self._pods[uid] = _Process(register_node(self.milvus, pod), restarts)
        elif process is not None:
            process.restarts = restarts

    def _vanished(self, uid: str) -> None:
        process = self._pods.pop(uid, None)
        if process is not None and process.node_id is not None and not process.stopping:
            self.milvus.crash_node(process.node_id)

    def _stop_gracefully(self, uid: str, process: _Process) -> None:
        process.stopping = True
        if process.node_id is None:
            self._pods.pop(uid, None)
            return
        node_id = process.node_id
        self.milvus.stop_node(node_id)

        async def exited() -> None:
            # Milvus offers no event for "session gone": poll, as a stopping process checks its own state.
            while not self.milvus.node_gone(node_id):  # noqa: ASYNC110
                await asyncio.sleep(self.poll_interval)
            self._pods.pop(uid, None)

        task = asyncio.create_task(exited())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

