"""The sandbox's `kubernetes="real"` backend: the control plane, the pod watch that wires Milvus, and the
fault injection a real cluster allows through its API (what a kubelet or a node failure would write)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path

from milvus_rg_sandbox.realkube.client import EmbeddedOnly, KubeRestClient
from milvus_rg_sandbox.realkube.control_plane import RealControlPlane, SharedControlPlane
from milvus_rg_sandbox.realkube.wiring import ApiPodNodeWiring
from milvus_rg_sandbox.wiring import MilvusNodes
from milvus_rg_sandbox.workloads import PODS, Obj, now_rfc3339

logger = logging.getLogger(__name__)


class RealWorkloads:
    """Stands where the embedded `WorkloadEmulator` does: the real StatefulSet controller, the scheduler and
    kwok run the pods; this starts the Milvus wiring and injects faults through the API."""

    def __init__(self, client: KubeRestClient, milvus: MilvusNodes, *, restart_delay: float = 0.2) -> None:
        self.client = client
        self.restart_delay = restart_delay
        self.wiring = ApiPodNodeWiring(client, milvus)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.wiring.start()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.wiring.stop()

    def crash_pod(self, namespace: str, name: str) -> None:
        """The container dies and restarts, as a kubelet reports it: not Ready with restartCount+1, then
        Ready again after `restart_delay` (kwok leaves a pod with an IP alone)."""
        self._spawn(self._crash_and_restart(namespace, name))

    def delete_pod_now(self, namespace: str, name: str) -> None:
        """Node failure: the pod is force-deleted (grace period 0), its container never stops gracefully."""
        self._spawn(self.client.delete(PODS, namespace, name, grace_seconds=0))

    def never_ready(self, namespace: str, name_or_pattern: str) -> None:
        raise EmbeddedOnly("never_ready: kwok makes every pod Ready; only the embedded sandbox can hold one back")

    def set_start_delay(self, namespace: str, name: str, seconds: float) -> None:
        raise EmbeddedOnly("set_start_delay: kwok's fast pod stages start pods at once")

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                logger.exception("fault injection failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _crash_and_restart(self, namespace: str, name: str) -> None:
        pod = await self.client.get(PODS, namespace, name)
        if pod is None:
            raise KeyError(f"no pod {namespace}/{name}")
        last_state = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now_rfc3339()}}
        await self._write_container_state(pod, ready=False, restart=True, last_state=last_state)
        await asyncio.sleep(self.restart_delay)  # the kubelet's restart back-off
        pod = await self.client.get(PODS, namespace, name)
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            await self._write_container_state(pod, ready=True, restart=False, last_state=last_state)

    async def _write_container_state(self, pod: Obj, *, ready: bool, restart: bool, last_state: Obj) -> None:
        status = pod.get("status") or {}
        flag = "True" if ready else "False"
        stamp = now_rfc3339()
        statuses = []
        for container in status.get("containerStatuses") or []:
            container = dict(container)
            container["ready"] = ready
            container["restartCount"] = int(container.get("restartCount") or 0) + (1 if restart else 0)
            container["lastState"] = last_state
            running = {"running": {"startedAt": stamp}}
            container["state"] = running if ready else {"waiting": {"reason": "CrashLoopBackOff"}}
            statuses.append(container)
        conditions = [
            {**c, "status": flag, "lastTransitionTime": stamp} if c.get("type") in ("Ready", "ContainersReady") else c
            for c in status.get("conditions") or []
        ]
        meta = pod["metadata"]
        await self.client.patch(PODS, meta["namespace"], meta["name"],
                                {"status": {"containerStatuses": statuses, "conditions": conditions}},
                                subresource="status")


def real_kubernetes(workdir: Path, host: str, port: int, milvus: MilvusNodes, restart_delay: float,
                    shared: RealControlPlane | None = None,
                    ) -> tuple[RealControlPlane | SharedControlPlane, RealWorkloads]:
    """The two parts `Sandbox` holds as `kube` and `workloads` (the wiring is `workloads.wiring`): a control
    plane of its own, or a `shared` one that is already running (reset, not stopped, with the sandbox)."""
    kube = RealControlPlane(workdir=workdir, host=host, port=port) if shared is None else SharedControlPlane(shared)
    return kube, RealWorkloads(kube.store, milvus, restart_delay=restart_delay)
