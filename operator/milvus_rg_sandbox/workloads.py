"""The controllers a real cluster runs for our workloads, and a kubelet.

`WorkloadEmulator` watches the sandbox's object store and, in the same event loop as the API server, runs:

- the Deployment, ReplicaSet and StatefulSet controllers and the disruption controller of PodDisruptionBudgets,
  each a port of kube-controller-manager's (k8s.io/kubernetes v1.37.2; `milvus_rg_sandbox.controllers`, which
  names the source of each behaviour): Deployments own ReplicaSets `<deployment>-<pod-template-hash>` and roll
  them out (RollingUpdate with maxSurge/maxUnavailable, Recreate, paused, proportional scaling); a ReplicaSet
  owns pods `<replicaset>-<5 characters>` and deletes first the pods `ActivePodsWithRanks` ranks first (not
  Ready, lower `controller.kubernetes.io/pod-deletion-cost`, Ready for less time, ...); a StatefulSet keeps pods
  `<sts>-0 .. <sts>-(n-1)` (OrderedReady or Parallel) and rolls them onto its update revision (RollingUpdate with
  partition and maxUnavailable, or OnDelete) with ControllerRevisions and a `controller-revision-hash` label;
  every status is written as the real controller writes it, and only when it changes;
- a kubelet (and, when the store has Node objects, a scheduler: `controllers.scheduler`): a new pod is `Pending`,
  after `pod_start_delay` it is `Running` and Ready with a loopback pod IP, unless scheduling gates hold it; a
  pod with a `deletionTimestamp` is stopped through the termination hooks and purged once its container exited
  (at the latest after its grace period, like SIGKILL);
- fault injection for tests (`crash_pod`, `never_ready`, `set_start_delay`, `delete_pod_now`).

It works incrementally, as real controllers do: its watches feed a cache (an informer), and each change
re-examines only the object that changed and what depends on it (a pod's controller, a ReplicaSet's Deployment,
the PodDisruptionBudgets that select a pod); a full pass over the cache (no store reads) runs when a tick passes
without changes.

It knows nothing about Milvus: the wiring registers hooks (`on_pod_ready`, `on_pod_terminating`,
`on_pod_crashed`) and turns them into Milvus node events.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from milvus_rg_sandbox.controllers.common import (
    CONTROLLER_REVISIONS,
    DEPLOYMENTS,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    WORKLOADS,
    ClusterCache,
    Obj,
    controller_ref,
    is_terminating,
    labels_of,
    now_rfc3339,
    object_key,
    phase,
    pod_is_ready,
    replicas_of,
    status_patch,
)
from milvus_rg_sandbox.controllers.deployment import DeploymentController
from milvus_rg_sandbox.controllers.disruption import DisruptionController
from milvus_rg_sandbox.controllers.replicaset import ReplicaSetController
from milvus_rg_sandbox.controllers.scheduler import choose_node
from milvus_rg_sandbox.controllers.statefulset import REVISION_LABEL, StatefulSetController
from milvus_rg_sandbox.kube.errors import ApiError
from milvus_rg_sandbox.kube.selectors import label_selector_matcher

logger = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30.0
YIELD_EVERY = 100  # objects looked at per pass before other tasks of the event loop get a turn
WATCHED = (NODES, DEPLOYMENTS, REPLICASETS, STATEFULSETS, CONTROLLER_REVISIONS, PDBS, PODS)
# The order of a pass: pods (the kubelet) first, then each controller, a Deployment before its ReplicaSets.
RECONCILED = (PODS, DEPLOYMENTS, REPLICASETS, STATEFULSETS, PDBS)
TEMPLATE_HASH = "pod-template-hash"

Key = tuple[str, str]  # (namespace, name)
PodHook = Callable[[Obj], Awaitable[None]]

__all__ = ["DEPLOYMENTS", "PDBS", "PODS", "REPLICASETS", "STATEFULSETS", "IpPool", "Obj", "WorkloadEmulator",
           "is_terminating", "now_rfc3339", "pod_is_ready"]

KNOWN_DIFFERENCES = [
    "Pod templates are not defaulted (restartPolicy, dnsPolicy, ...): a Deployment's pod-template-hash and a "
    "StatefulSet's controller-revision-hash have the real shape and are stable per template, but not the values a "
    "real cluster computes (pod-template-hash hashes the template's JSON, not the Go struct).",
    "Controllers own only what their controller reference names: pods and ReplicaSets are never adopted or released "
    "by selector. No Events are posted; creations and deletions are not batched (slowStartBatch) nor limited to "
    "500 per sync except for ReplicaSets; a failed write is retried at the next tick.",
    "StatefulSets: no PersistentVolumeClaims (volumeClaimTemplates, retention policies), no Recreate strategy (an "
    "alpha gate, off in 1.37); ControllerRevisions are not adopted.",
    "The disruption controller finds the scale of a pod's Deployment, ReplicaSet or StatefulSet only (not of a "
    "ReplicationController or a custom resource's scale subresource), posts no events and leaves a stale "
    "DisruptionTarget pod condition in place.",
    "The sandbox starts without Node objects; then pods run unbound (spec.nodeName unset, hostIP 127.0.0.1), so a "
    "ReplicaSet's scale-down never tells pods apart by node. Once Node objects exist, the kubelet binds each new "
    "pod to the least loaded node that is not cordoned, whose NoSchedule/NoExecute taints it tolerates and whose "
    "labels match its nodeSelector (kube-scheduler scores instead; required node affinity, resources and quotas "
    "are ignored), else leaves it Pending (PodScheduled=False, Unschedulable); a Node's kubelet, conditions, "
    "heartbeats and taint-based eviction are not emulated.",
    "Pod IPs are distinct loopback addresses (127.0.0.2, 127.0.0.3, ... then 127.0.1.x); no process "
    "listens on them.",
    "Readiness is decided by the emulator (or `never_ready`), not by probes; a crash restarts the "
    "container after `pod_start_delay` without CrashLoopBackOff.",
    "Termination hooks stand in for SIGTERM; a pod is purged when its hooks return or after "
    "its grace period (SIGKILL); grace period 0 is treated as a kill.",
]


class ObjectStore(Protocol):
    """The part of the kube API server's store the emulator needs."""

    async def create(self, resource: str, obj: Obj) -> Obj: ...
    async def get(self, resource: str, namespace: str, name: str) -> Obj | None: ...
    async def list(
        self, resource: str, namespace: str | None = None, label_selector: Any = None
    ) -> list[Obj]: ...
    async def patch(
        self, resource: str, namespace: str, name: str, patch: Obj, subresource: str | None = None
    ) -> Obj: ...
    async def delete(self, resource: str, namespace: str, name: str) -> None: ...
    async def purge(self, resource: str, namespace: str, name: str) -> None: ...
    def watch(self, resource: str, namespace: str | None = None, *,
              with_current: bool = False) -> AsyncIterator[tuple[str, Obj]]: ...


def _revision(obj: Obj) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


def _owner_uids(obj: Obj) -> tuple[str, ...]:
    return tuple(str(ref["uid"]) for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid"))


def _controller_facts(pod: Obj) -> tuple[object, ...]:
    """What the controllers read of a pod when it changes (an operator's label patch does not wake them; a
    quiet tick's full pass catches anything else, such as a template label removed by hand)."""
    labels = pod["metadata"].get("labels") or {}
    return (is_terminating(pod), pod_is_ready(pod), phase(pod), _owner_uids(pod), labels.get(REVISION_LABEL),
            labels.get(TEMPLATE_HASH))


def _pod_uid(pod: Obj) -> str:
    return str(pod["metadata"].get("uid") or "/".join(object_key(pod)))


class IpPool:
    """Distinct loopback addresses from 127.0.0.2 upwards; an address is reused only once released."""

    def __init__(self) -> None:
        self._in_use: set[int] = set()
        self._next = 2

    def allocate(self) -> str:
        # 127.0.0.1 is the host; skip .0/.255 of each /24 and wrap around within 127.0.0.0/16.
        for _ in range(0xFFFE):
            candidate = self._next
            self._next = self._next + 1 if self._next < 0xFFFE else 2
            if candidate % 256 not in (0, 255) and candidate not in self._in_use:
                self._in_use.add(candidate)
                return f"127.0.{candidate // 256}.{candidate % 256}"
        raise RuntimeError("no free loopback pod IP left in 127.0.0.0/16")

    def release(self, ip: str) -> None:
        _, _, high, low = ip.split(".")
        self._in_use.discard(int(high) * 256 + int(low))


@dataclass
class PodRuntime:
    """What the kubelet knows about one pod (one per pod uid)."""

    namespace: str
    name: str
    uid: str
    ip: str | None = None
    host_ip: str = "127.0.0.1"
    restart_count: int = 0
    container_ready: bool = False
    terminating: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _ready_status(ip: str, host_ip: str, ready: bool, restart_count: int, containers: list[Obj],
                  last_state: Obj | None = None) -> Obj:
    flag = "True" if ready else "False"
    stamp = now_rfc3339()
    statuses = [
        {
            "name": c.get("name", "main"),
            "image": c.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": True,
            "restartCount": restart_count,
            "state": {"running": {"startedAt": stamp}},
            "lastState": last_state or {},
        }
        for c in containers
    ]
    return {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
        ],
        "containerStatuses": statuses,
    }


class WorkloadEmulator:
    """The controllers + kubelet over an `ObjectStore` (see the module docstring)."""

    def __init__(
        self, store: ObjectStore, *, pod_start_delay: float = 0.2, tick_interval: float = 1.0
    ) -> None:
        self.store = store
        self.pod_start_delay = pod_start_delay
        self.tick_interval = tick_interval
        self._ready_hooks: list[PodHook] = []
        self._terminating_hooks: list[PodHook] = []
        self._crashed_hooks: list[PodHook] = []
        self._runtimes: dict[str, PodRuntime] = {}  # pod uid -> runtime
        self._runtime_uids: dict[Key, set[str]] = {}  # pod key -> uids of its runtimes
        self.cache = ClusterCache(WATCHED)  # the watches' view of the store (read-only, never handed out)
        self._pods = self.cache.objects[PODS]
        self._dirty: dict[str, set[Key]] = {resource: set() for resource in RECONCILED}
        self._controllers: dict[str, Any] = {
            DEPLOYMENTS: DeploymentController(self), REPLICASETS: ReplicaSetController(self),
            STATEFULSETS: StatefulSetController(self), PDBS: DisruptionController(self),
        }
        self._unscheduled: set[Key] = set()  # pods no node could take (looked at again when nodes change)
        self._pods_on_node: dict[str, int] = {}  # node name -> pods bound to it, not terminating
        self._start_delays: dict[tuple[str, str], float] = {}
        self._never_ready: list[tuple[str, str]] = []  # (namespace, name glob)
        self._ips = IpPool()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    # -- hooks -------------------------------------------------------------------------------------

    def on_pod_ready(self, hook: PodHook) -> None:
        """`hook(pod)` runs when a pod's container (re)starts and becomes Ready."""
        self._ready_hooks.append(hook)

    def on_pod_terminating(self, hook: PodHook) -> None:
        """`hook(pod)` runs on graceful deletion and returns when the container has exited."""
        self._terminating_hooks.append(hook)

    def on_pod_crashed(self, hook: PodHook) -> None:
        """`hook(pod)` runs when a container dies without a graceful stop (crash, kill, node loss)."""
        self._crashed_hooks.append(hook)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow(resource), name=f"workloads-watch-{resource}")
                       for resource in WATCHED]
        self._tasks.append(asyncio.create_task(self._control_loop(), name="workloads-control"))

    async def stop(self) -> None:
        tasks = self._tasks + [t for rt in self._runtimes.values() for t in rt.tasks]
        self._tasks = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runtimes.clear()
        self._runtime_uids.clear()

    # -- fault injection (sync: callable from tests without awaiting) ------------------------------

    def crash_pod(self, namespace: str, name: str) -> None:
        """The container dies: not Ready, restartCount+1, back as a new process after the start delay."""
        runtime = self._runtime_by_name(namespace, name)
        self._spawn(runtime, self._crash_and_restart(runtime))

    def never_ready(self, namespace: str, name_or_pattern: str) -> None:
        """Matching pods (glob, now and later) stay Running but never become Ready."""
        self._never_ready.append((namespace, name_or_pattern))
        for runtime in list(self._runtimes.values()):
            if self._is_never_ready(runtime.namespace, runtime.name) and runtime.container_ready:
                self._spawn(runtime, self._set_unready(runtime))

    def set_start_delay(self, namespace: str, name: str, seconds: float) -> None:
        """Start delay for the pod of that name (also for its restarts and recreations)."""
        self._start_delays[(namespace, name)] = seconds

    def delete_pod_now(self, namespace: str, name: str) -> None:
        """Node failure: the pod vanishes at once, its container is never stopped gracefully."""
        runtime = self._runtime_by_name(namespace, name)
        runtime.terminating = True
        self._spawn(runtime, self._vanish(runtime))

    # -- the controllers' API (controllers.common.ControllerApi): writes taken into the cache at once --

    async def create(self, resource: str, obj: Obj) -> Obj | None:
        """Create; None if the name is taken (409: an earlier write the watch has not delivered yet)."""
        try:
            created = await self.store.create(resource, obj)
        except ApiError as error:
            if error.code != 409:
                raise
            return None
        self._observe(resource, created)
        await asyncio.sleep(0)  # a burst of creations lets the API server answer in between
        return created

    async def patch(self, resource: str, obj: Obj, patch: Obj, subresource: str | None = None) -> Obj | None:
        """A merge patch; None if the object is gone."""
        namespace, name = object_key(obj)
        try:
            written = await self.store.patch(resource, namespace, name, patch, subresource=subresource)
        except ApiError as error:
            if error.code != 404:
                raise
            return None
        self._observe(resource, written)
        return written

    async def write_status(self, resource: str, obj: Obj, status: Obj) -> Obj:
        """Replace the status (one merge patch of the difference), if it changed."""
        if status == obj.get("status"):
            return obj
        written = await self.patch(resource, obj, {"status": status_patch(obj.get("status") or {}, status)},
                                   subresource="status")
        return written if written is not None else obj

    async def delete(self, resource: str, obj: Obj) -> None:
        """A graceful delete (a pod is marked terminating; others go, their dependents collected)."""
        namespace, name = object_key(obj)
        await self.store.delete(resource, namespace, name)
        after = await self.store.get(resource, namespace, name)
        if after is not None:
            self._observe(resource, after)
        else:
            self._changed(resource, self.cache.forget(resource, (namespace, name)), None)

    # -- internals: event plumbing -----------------------------------------------------------------

    def _runtime_by_name(self, namespace: str, name: str) -> PodRuntime:
        for uid in self._runtime_uids.get((namespace, name), ()):
            return self._runtimes[uid]
        raise KeyError(f"no running pod {namespace}/{name}")

    def _spawn(self, runtime: PodRuntime, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("kubelet work for pod %s/%s failed", runtime.namespace, runtime.name)

        task = asyncio.create_task(guarded())
        runtime.tasks.add(task)
        task.add_done_callback(runtime.tasks.discard)

    async def _follow(self, resource: str) -> None:
        """Feed the cache. A (re)started watch first delivers every current object, all of them before the
        control loop can run (the queue holds them already, so the iteration never suspends in between)."""
        while True:
            try:
                for key in list(self.cache.objects[resource]):
                    self._changed(resource, self.cache.forget(resource, key), None)
                async for event, obj in self.store.watch(resource, with_current=True):
                    self._observe(resource, obj, deleted=event == "DELETED")
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("watch on %s failed; restarting", resource)
                await asyncio.sleep(self.tick_interval)

    def _observe(self, resource: str, obj: Obj, *, deleted: bool = False) -> None:
        """Take a watched (or just written) object into the cache, unless the cache already holds a newer
        one, and mark what must be looked at again."""
        key = object_key(obj)
        known = self.cache.get(resource, key)
        if known is not None and _revision(known) >= _revision(obj):
            return  # our own write, already taken in
        if known is not None:
            self.cache.forget(resource, key)
        if not deleted:
            self.cache.remember(resource, obj)
        self._changed(resource, known, None if deleted else obj)

    def _changed(self, resource: str, old: Obj | None, new: Obj | None) -> None:
        """Mark what a change of one object may concern: the object, its controller (for a pod, only if what
        the controllers read changed), and the PodDisruptionBudgets that select it or count its scale."""
        obj = new if new is not None else old
        if obj is None:
            return
        key = object_key(obj)
        if resource == CONTROLLER_REVISIONS:
            self._mark_controllers(old, new)
            return
        if resource == NODES:
            self._dirty[PODS] |= self._unscheduled
            return
        self._dirty[resource].add(key)
        if resource == PODS:
            for pod, step in ((old, -1), (new, 1)):
                node = ((pod or {}).get("spec") or {}).get("nodeName")
                if node and not is_terminating(pod or {}):
                    self._pods_on_node[node] = self._pods_on_node.get(node, 0) + step
            facts_changed = old is None or new is None or _controller_facts(old) != _controller_facts(new)
            if facts_changed:
                self._mark_controllers(old, new)
            if self.cache.pdbs_by_namespace.get(key[0]) and (
                    facts_changed or labels_of(old or {"metadata": {}}) != labels_of(new or {"metadata": {}})):
                self._mark_pdbs(key[0], [labels_of(o) for o in (old, new) if o is not None])
        elif resource in WORKLOADS:
            if resource == REPLICASETS:
                self._mark_controllers(old, new)
            if old is None or new is None or replicas_of(old) != replicas_of(new):
                self._mark_pdbs(key[0], None)

    def _mark_controllers(self, *objs: Obj | None) -> None:
        for obj in objs:
            if obj is None:
                continue
            located = self.cache.workload_by_uid.get(str((controller_ref(obj) or {}).get("uid")))
            if located is not None:
                self._dirty[located[0]].add(located[1])

    def _mark_pdbs(self, namespace: str, label_sets: list[dict[str, str]] | None) -> None:
        """The PodDisruptionBudgets of a namespace (None: all of them; else those selecting one of the labels)."""
        for key in self.cache.pdbs_by_namespace.get(namespace, ()):
            pdb = self.cache.get(PDBS, key)
            if pdb is None:
                continue
            matches = label_selector_matcher((pdb.get("spec") or {}).get("selector"))
            if label_sets is None or any(matches(labels) for labels in label_sets):
                self._dirty[PDBS].add(key)

    async def _control_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._reconcile_marked()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("workload reconcile failed")
            try:
                async with asyncio.timeout(self.tick_interval):
                    await self._wake.wait()
            except TimeoutError:
                self._mark_all()  # level-triggered: a quiet tick looks at everything once (cache only)

    def _mark_all(self) -> None:
        for resource in RECONCILED:
            self._dirty[resource] |= self.cache.objects[resource].keys()
        self._dirty[PODS] |= self._runtime_uids.keys()

    async def reconcile_once(self) -> None:
        """One pass of the kubelet and every controller over every cached object."""
        self._mark_all()
        await self._reconcile_marked()

    async def _reconcile_marked(self) -> None:
        """The kubelet for each changed pod, then each controller for the objects marked for it."""
        async with self._lock:
            for resource in RECONCILED:
                keys, self._dirty[resource] = self._dirty[resource], set()
                for count, key in enumerate(sorted(keys), 1):
                    if resource == PODS:
                        await self._kubelet(key)
                    else:
                        await self._sync(resource, key)
                    if count % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let the API server answer in between

    async def _sync(self, resource: str, key: Key) -> None:
        obj = self.cache.get(resource, key)
        if obj is None:
            return
        try:
            await self._controllers[resource].sync(obj)
        except asyncio.CancelledError:
            raise
        except Exception:  # one object's failure (a write refused) does not hold up the others; the tick retries
            logger.exception("sync of %s %s/%s failed", resource, *key)

    # -- internals: kubelet ------------------------------------------------------------------------

    async def _kubelet(self, key: Key) -> None:
        pod = self._pods.get(key)
        uid = _pod_uid(pod) if pod is not None else None
        for other in list(self._runtime_uids.get(key, ())):
            if other != uid:
                # Removed behind the kubelet's back (purged by someone else): the container is simply gone.
                await self._forget(self._runtimes[other], crashed=True)
        if pod is None or uid is None:
            return
        runtime = self._runtimes.get(uid)
        if runtime is None:
            if is_terminating(pod):
                # Never started by us: nothing to stop.
                await self.store.purge(PODS, *key)
                return
            if (pod.get("spec") or {}).get("schedulingGates"):
                return  # not scheduled until its gates are removed (the API server marked it SchedulingGated)
            host_ip = await self._schedule(key, pod)
            if host_ip is None:
                return
            runtime = PodRuntime(namespace=key[0], name=key[1], uid=uid, host_ip=host_ip)
            self._runtimes[uid] = runtime
            self._runtime_uids.setdefault(key, set()).add(uid)
            self._spawn(runtime, self._start_pod(runtime, pod))
        elif is_terminating(pod) and not runtime.terminating:
            runtime.terminating = True
            self._spawn(runtime, self._terminate(runtime, pod))

    async def _schedule(self, key: Key, pod: Obj) -> str | None:
        """With Node objects, bind the pod to one that may take it (`controllers.scheduler`); its host IP, or
        None while no node can run it (it stays Pending). Without nodes, pods run unbound on 127.0.0.1."""
        nodes = self.cache.objects[NODES]
        if not nodes:
            return "127.0.0.1"
        name = (pod.get("spec") or {}).get("nodeName")
        if not name:
            node, reason = choose_node(pod, nodes.values(), self._pods_on_node)
            if node is None:
                self._unscheduled.add(key)
                await self._set_unschedulable(pod, reason)
                return None
            name = node["metadata"]["name"]
            if await self.patch(PODS, pod, {"spec": {"nodeName": name}}) is None:
                return None
        self._unscheduled.discard(key)
        node = nodes.get(("default", name))
        if node is None:
            return None  # bound to a node that does not exist: no kubelet will ever run it
        addresses = (node.get("status") or {}).get("addresses") or []
        return next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "127.0.0.1")

    async def _set_unschedulable(self, pod: Obj, reason: str) -> None:
        """kube-scheduler's PodScheduled=False condition of a pod no node can take."""
        conditions = (pod.get("status") or {}).get("conditions") or []
        current: Obj = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        if (current.get("status"), current.get("reason"), current.get("message")) != ("False", "Unschedulable",
                                                                                       reason):
            await self.write_status(PODS, pod, {**(pod.get("status") or {}), "conditions": [
                {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                 "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable", "message": reason}]})

    def _start_delay(self, runtime: PodRuntime) -> float:
        return self._start_delays.get((runtime.namespace, runtime.name), self.pod_start_delay)

    def _is_never_ready(self, namespace: str, name: str) -> bool:
        return any(
            ns == namespace and fnmatch.fnmatchcase(name, pattern) for ns, pattern in self._never_ready
        )

    async def _patch_status(self, runtime: PodRuntime, status: Obj) -> Obj | None:
        try:
            patched = await self.store.patch(PODS, runtime.namespace, runtime.name, {"status": status},
                                             subresource="status")
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        self._observe(PODS, patched)
        return patched

    async def _start_pod(self, runtime: PodRuntime, pod: Obj) -> None:
        await self._patch_status(runtime, {"phase": "Pending", "hostIP": runtime.host_ip,
                                           "conditions": [{"type": "PodScheduled", "status": "True"}]})
        runtime.ip = self._ips.allocate()
        await self._run_container(runtime)

    async def _run_container(self, runtime: PodRuntime, last_state: Obj | None = None) -> None:
        """A (re)started container process: Running after the start delay, then Ready unless faulted."""
        await asyncio.sleep(self._start_delay(runtime))
        if runtime.terminating or runtime.ip is None:
            return
        ready = not self._is_never_ready(runtime.namespace, runtime.name)
        pod = self._pods.get((runtime.namespace, runtime.name))
        if pod is None:
            return
        containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
        updated = await self._patch_status(
            runtime, _ready_status(runtime.ip, runtime.host_ip, ready, runtime.restart_count, containers, last_state))
        runtime.container_ready = ready
        if ready and updated is not None:
            await self._run_hooks(self._ready_hooks, updated)

    async def _set_unready(self, runtime: PodRuntime) -> None:
        pod = await self.store.get(PODS, runtime.namespace, runtime.name)
        if pod is None or runtime.ip is None:
            return
        containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
        runtime.container_ready = False
        await self._patch_status(runtime, _ready_status(runtime.ip, runtime.host_ip, False, runtime.restart_count,
                                                        containers))

    async def _crash_and_restart(self, runtime: PodRuntime) -> None:
        pod = await self.store.get(PODS, runtime.namespace, runtime.name)
        if pod is None or runtime.ip is None or runtime.terminating:
            return
        runtime.restart_count += 1
        runtime.container_ready = False
        containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
        last_state = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now_rfc3339()}}
        crashed = await self._patch_status(
            runtime, _ready_status(runtime.ip, runtime.host_ip, False, runtime.restart_count, containers, last_state))
        await self._run_hooks(self._crashed_hooks, crashed or pod)
        await self._run_container(runtime, last_state)

    async def _terminate(self, runtime: PodRuntime, pod: Obj) -> None:
        grace = _grace_seconds(pod)
        if runtime.container_ready and grace > 0:
            try:
                async with asyncio.timeout(grace):
                    await self._run_hooks(self._terminating_hooks, pod)
            except TimeoutError:
                # SIGKILL after the grace period.
                await self._run_hooks(self._crashed_hooks, pod)
        elif runtime.container_ready:
            await self._run_hooks(self._crashed_hooks, pod)
        # Under the lock, so that a reconcile pass never sees the pod without its runtime.
        async with self._lock:
            await self._forget(runtime, crashed=False)
            await self._purge_if_present(runtime)

    async def _vanish(self, runtime: PodRuntime) -> None:
        async with self._lock:
            await self._forget(runtime, crashed=True)
            await self._purge_if_present(runtime)

    async def _purge_if_present(self, runtime: PodRuntime) -> None:
        if await self.store.get(PODS, runtime.namespace, runtime.name) is not None:
            await self.store.purge(PODS, runtime.namespace, runtime.name)

    async def _forget(self, runtime: PodRuntime, *, crashed: bool) -> None:
        """Drop the runtime; a container still up when its pod disappears counts as crashed."""
        if self._runtimes.pop(runtime.uid, None) is None:
            return
        uids = self._runtime_uids.get((runtime.namespace, runtime.name), set())
        uids.discard(runtime.uid)
        if not uids:
            self._runtime_uids.pop((runtime.namespace, runtime.name), None)
        was_ready = runtime.container_ready
        runtime.container_ready = False
        runtime.terminating = True
        if runtime.ip is not None:
            self._ips.release(runtime.ip)
        if crashed and was_ready:
            await self._run_hooks(self._crashed_hooks, _stub_pod(runtime))
        current = asyncio.current_task()
        for task in list(runtime.tasks):
            if task is not current:
                task.cancel()
        self._wake.set()

    async def _run_hooks(self, hooks: list[PodHook], pod: Obj) -> None:
        if hooks:
            await asyncio.gather(*(hook(pod) for hook in hooks))


def _grace_seconds(pod: Obj) -> float:
    meta_grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if meta_grace is not None:
        return float(meta_grace)
    return float(pod.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))


def _stub_pod(runtime: PodRuntime) -> Obj:
    """What hooks get when the pod object is already gone from the store."""
    return {"metadata": {"name": runtime.name, "namespace": runtime.namespace, "uid": runtime.uid},
            "status": {"podIP": runtime.ip}}
