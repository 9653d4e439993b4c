"""Pods <-> Milvus query nodes: what a query-node container does to Milvus when it starts and stops.

Rule (documented in docs/sandbox.md): a pod is a *query node* if any container's `command` or `args`
contains the token `querynode` (as Milvus images run `milvus run querynode`), or if it carries the label
`app.kubernetes.io/component=querynode` or `component=querynode`.

- Ready -> `add_node(hostname=<pod hostname>, address=<podIP>:21123, env=<container env>)`: a new session
  (Milvus takes a fresh node id on every process start). The hostname is the kubelet's: `spec.hostnameOverride`,
  else `spec.hostname` (a StatefulSet sets it to the pod name), else the pod name (a Deployment's pods), cut to
  63 characters.
- Graceful termination -> `stop_node` (the node leaves its group at once); the container "exits" once
  Milvus reports the node gone, bounded by the pod's grace period (enforced by the kubelet).
- Crash, kill or node loss -> `crash_node`: the old session expires after the session TTL.

A pod is a *streaming node* (Milvus 2.6+) by the same rule with the token `streamingnode`: it registers through
`add_streaming_node` (hostname, `<podIP>:22222`, env) as a streaming node with its embedded query node (nothing
before 2.6), and stops or crashes like a query node.

Other pods never register.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from milvus_rg_sandbox.workloads import Obj, WorkloadEmulator

QUERY_NODE_TOKEN = "querynode"
QUERY_NODE_PORT = 21123
STREAMING_NODE_TOKEN = "streamingnode"
STREAMING_NODE_PORT = 22222
COMPONENT_LABELS = ("app.kubernetes.io/component", "component")
HOSTNAME_MAX_LENGTH = 63


class MilvusNodes(Protocol):
    """The node-lifecycle part of the Milvus simulator."""

    def add_node(self, hostname: str, address: str, env: dict[str, str] | None = None) -> int: ...
    def add_streaming_node(self, hostname: str, address: str, env: dict[str, str] | None = None) -> int | None: ...
    def stop_node(self, node_id: int) -> None: ...
    def crash_node(self, node_id: int) -> None: ...
    def node_gone(self, node_id: int) -> bool: ...


def _runs(pod: Obj, token: str) -> bool:
    """The pod's component label is `token`, or a container's command or args hold it as a word."""
    labels = pod.get("metadata", {}).get("labels") or {}
    if any(labels.get(key) == token for key in COMPONENT_LABELS):
        return True
    for container in pod.get("spec", {}).get("containers") or []:
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        if any(token in str(word).split() for word in words):
            return True
    return False


def pod_hostname(pod: Obj) -> str:
    """The hostname the kubelet gives a pod's containers: k8s.io/kubernetes v1.37.2 `pkg/kubelet/kubelet_pods.go`
    `GeneratePodHostNameAndDomain` and `truncatePodHostnameIfNeeded` (at most 63 characters, no trailing - or .)."""
    spec = pod.get("spec") or {}
    hostname = str(spec.get("hostnameOverride") or spec.get("hostname") or pod["metadata"]["name"])
    return hostname if len(hostname) <= HOSTNAME_MAX_LENGTH else hostname[:HOSTNAME_MAX_LENGTH].rstrip("-.")


def is_query_node(pod: Obj) -> bool:
    return _runs(pod, QUERY_NODE_TOKEN)


def is_streaming_node(pod: Obj) -> bool:
    return _runs(pod, STREAMING_NODE_TOKEN)


def register_node(milvus: MilvusNodes, pod: Obj) -> int | None:
    """The Milvus session a Ready query-node or streaming-node pod's process opens (None: none)."""
    ip = pod["status"]["podIP"]
    name = pod_hostname(pod)
    if is_query_node(pod):
        return milvus.add_node(name, f"{ip}:{QUERY_NODE_PORT}", container_env(pod))
    if is_streaming_node(pod):
        return milvus.add_streaming_node(name, f"{ip}:{STREAMING_NODE_PORT}", container_env(pod))
    return None


def container_env(pod: Obj) -> dict[str, str]:
    """Literal env values of all containers (valueFrom is not resolved: no Secrets/ConfigMaps here)."""
    env: dict[str, str] = {}
    for container in pod.get("spec", {}).get("containers") or []:
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
    return env


class PodNodeWiring:
    """Turns the workload emulator's pod events into Milvus node lifecycle calls."""

    def __init__(
        self, workloads: WorkloadEmulator, milvus: MilvusNodes, *, poll_interval: float = 0.02
    ) -> None:
        self.milvus = milvus
        self.poll_interval = poll_interval
        self.node_of_pod: dict[str, int] = {}  # pod uid -> node id of its current process
        workloads.on_pod_ready(self._registered)
        workloads.on_pod_terminating(self._stopped_gracefully)
        workloads.on_pod_crashed(self._crashed)

    def node_id(self, pod_uid: str) -> int | None:
        return self.node_of_pod.get(pod_uid)

    async def _registered(self, pod: Obj) -> None:
        if not (is_query_node(pod) or is_streaming_node(pod)):
            return
        uid = _uid(pod)
        previous = self.node_of_pod.pop(uid, None)
        if previous is not None:  # a restart we were not told about: the old session just expires
            self.milvus.crash_node(previous)
        node_id = register_node(self.milvus, pod)
        if node_id is not None:
            self.node_of_pod[uid] = node_id

    async def _stopped_gracefully(self, pod: Obj) -> None:
        node_id = self.node_of_pod.get(_uid(pod))
        if node_id is None:
            return
        self.milvus.stop_node(node_id)
        # Milvus offers no event for "session gone": poll, as a stopping process checks its own state.
        while not self.milvus.node_gone(node_id):  # noqa: ASYNC110
            await asyncio.sleep(self.poll_interval)
        self.node_of_pod.pop(_uid(pod), None)

    async def _crashed(self, pod: Obj) -> None:
        node_id = self.node_of_pod.pop(_uid(pod), None)
        if node_id is not None:
            self.milvus.crash_node(node_id)


def _uid(pod: Obj) -> str:
    meta: dict[str, Any] = pod["metadata"]
    return str(meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta['name']}")
