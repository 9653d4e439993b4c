"""The controllers a real cluster runs for our workloads: a StatefulSet controller and a kubelet.

`WorkloadEmulator` watches StatefulSets and Pods in the sandbox's object store and, in the same event
loop as the API server:

- keeps pods `<sts>-0 .. <sts>-(n-1)` for every StatefulSet with `spec.replicas = n` (Parallel pod
  management: all missing pods are created at once, all surplus pods are deleted at once, highest ordinal
  first), recreates missing pods and writes a truthful `/status` only when it changes;
- plays the kubelet: a new pod is `Pending`, after `pod_start_delay` it is `Running` and Ready with a
  loopback pod IP; a pod with a `deletionTimestamp` is stopped through the termination hooks and purged
  once its container exited (at the latest after its grace period, like SIGKILL);
- offers fault injection for tests (`crash_pod`, `never_ready`, `set_start_delay`, `delete_pod_now`).

It works incrementally, as real controllers do: its watches feed a cache of pods and StatefulSets (an
informer), and each change re-examines only the pod that changed and its StatefulSet; a full pass over
the cache (no store reads) runs when a tick passes without changes.

It knows nothing about Milvus: the wiring registers hooks (`on_pod_ready`, `on_pod_terminating`,
`on_pod_crashed`) and turns them into Milvus node events.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from milvus_rg_sandbox.kube.errors import ApiError

logger = logging.getLogger(__name__)

PODS = "v1/pods"
STATEFULSETS = "apps/v1/statefulsets"
DEFAULT_GRACE_SECONDS = 30.0
YIELD_EVERY = 100  # pods looked at per pass before other tasks of the event loop get a turn

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
PodHook = Callable[[Obj], Awaitable[None]]

KNOWN_DIFFERENCES = [
    "StatefulSets use Parallel pod management: missing pods are created together and surplus pods are "
    "deleted together (highest ordinal first); OrderedReady, updateStrategy/rollouts, revisions, "
    "minReadySeconds, PVC templates and persistentVolumeClaimRetentionPolicy are not emulated.",
    "There is no scheduler and there are no nodes: every pod starts after `pod_start_delay`, hostIP is "
    "127.0.0.1 and spec.nodeName stays unset; resources, affinity, taints and quotas are ignored.",
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


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_is_ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def pod_key(pod: Obj) -> Key:
    meta = pod["metadata"]
    return meta.get("namespace") or "default", meta["name"]


def _revision(obj: Obj) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


def _owner_uids(obj: Obj) -> list[str]:
    return [str(ref["uid"]) for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid")]


def _set_facts(pod: Obj) -> tuple[bool, bool, tuple[str, ...]]:
    """What the StatefulSet controller reads of a pod: terminating, Ready, owners."""
    return is_terminating(pod), pod_is_ready(pod), tuple(_owner_uids(pod))


def _pod_uid(pod: Obj) -> str:
    return str(pod["metadata"].get("uid") or "/".join(pod_key(pod)))


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
    restart_count: int = 0
    container_ready: bool = False
    terminating: bool = False
    task: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _ready_status(ip: str, ready: bool, restart_count: int, containers: list[Obj],
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
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
        ],
        "containerStatuses": statuses,
    }


class WorkloadEmulator:
    """StatefulSet controller + kubelet over an `ObjectStore` (see the module docstring)."""

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
        # The watches' view of the store (read-only: never mutated, never handed out).
        self._pods: dict[Key, Obj] = {}
        self._sets: dict[Key, Obj] = {}
        self._pods_of_owner: dict[str, set[Key]] = {}  # owner uid -> keys of its pods
        self._set_of_uid: dict[str, Key] = {}  # StatefulSet uid -> its key
        self._dirty_pods: set[Key] = set()
        self._dirty_sets: set[Key] = set()
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
        self._tasks = [
            asyncio.create_task(self._follow(STATEFULSETS), name="workloads-watch-sts"),
            asyncio.create_task(self._follow(PODS), name="workloads-watch-pods"),
            asyncio.create_task(self._control_loop(), name="workloads-control"),
        ]

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
                cache = self._pods if resource == PODS else self._sets
                for key in list(cache):
                    self._forget_object(resource, key)
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
        key = pod_key(obj)
        cache = self._pods if resource == PODS else self._sets
        known = cache.get(key)
        if known is not None and _revision(known) >= _revision(obj):
            return  # our own write, already taken in
        if known is not None:
            self._forget_object(resource, key, owner_changed=deleted or _set_facts(known) != _set_facts(obj))
        if not deleted:
            cache[key] = obj
            if resource == PODS:
                for uid in _owner_uids(obj):
                    self._pods_of_owner.setdefault(uid, set()).add(key)
            elif obj["metadata"].get("uid"):
                self._set_of_uid[str(obj["metadata"]["uid"])] = key
        self._mark(resource, obj, owner_changed=known is None or deleted or _set_facts(known) != _set_facts(obj))

    def _forget_object(self, resource: str, key: Key, *, owner_changed: bool = True) -> None:
        cache = self._pods if resource == PODS else self._sets
        old = cache.pop(key, None)
        if old is None:
            return
        self._mark(resource, old, owner_changed=owner_changed)
        if resource == PODS:
            for uid in _owner_uids(old):
                self._pods_of_owner.get(uid, set()).discard(key)
        else:
            self._set_of_uid.pop(str(old["metadata"].get("uid")), None)

    def _mark(self, resource: str, obj: Obj, *, owner_changed: bool = True) -> None:
        """The object is looked at again; for a pod, its StatefulSet too if what the controller counts
        changed (a label patch does not wake it)."""
        if resource == STATEFULSETS:
            self._dirty_sets.add(pod_key(obj))
            return
        self._dirty_pods.add(pod_key(obj))
        if not owner_changed:
            return
        for uid in _owner_uids(obj):
            owner = self._set_of_uid.get(uid)
            if owner is not None:
                self._dirty_sets.add(owner)

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
        self._dirty_pods |= self._pods.keys() | self._runtime_uids.keys()
        self._dirty_sets |= self._sets.keys()

    async def reconcile_once(self) -> None:
        """One pass of both controllers over every cached object."""
        self._mark_all()
        await self._reconcile_marked()

    async def _reconcile_marked(self) -> None:
        """The kubelet for each changed pod, then the controller for each StatefulSet whose pods changed."""
        async with self._lock:
            pods, self._dirty_pods = self._dirty_pods, set()
            sets, self._dirty_sets = self._dirty_sets, set()
            for count, key in enumerate(sorted(pods), 1):
                await self._kubelet(key)
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the API server answer in between
            for key in sorted(sets):
                sts = self._sets.get(key)
                if sts is not None:
                    await self._reconcile_statefulset(sts)

    # -- internals: StatefulSet controller ---------------------------------------------------------

    async def _reconcile_statefulset(self, sts: Obj) -> None:
        meta = sts["metadata"]
        namespace = meta.get("namespace") or "default"
        name = meta["name"]
        if is_terminating(sts):
            return
        owned = {
            key[1]: self._pods[key]
            for key in self._pods_of_owner.get(str(meta.get("uid")), set())
            if key[0] == namespace and key in self._pods
        }
        replicas = int(sts.get("spec", {}).get("replicas", 1))
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            if pod_name not in owned:
                try:
                    created = await self.store.create(PODS, self._pod_from_template(sts, ordinal))
                except ApiError as error:
                    if error.code != 409:
                        raise
                    continue  # created by an earlier pass; the watch has not delivered it yet
                self._observe(PODS, created)
                owned[pod_name] = created
                await asyncio.sleep(0)  # a burst of creations lets the API server answer in between
        surplus = sorted(
            (p for p in owned.values() if _ordinal(name, p["metadata"]["name"]) >= replicas),
            key=lambda p: _ordinal(name, p["metadata"]["name"]),
            reverse=True,
        )
        for pod in surplus:
            if not is_terminating(pod):
                await self.store.delete(PODS, namespace, pod["metadata"]["name"])
                deleting = await self.store.get(PODS, namespace, pod["metadata"]["name"])
                if deleting is not None:
                    self._observe(PODS, deleting)
                    owned[pod["metadata"]["name"]] = deleting
                else:
                    owned.pop(pod["metadata"]["name"])
        await self._write_status(sts, list(owned.values()))

    async def _write_status(self, sts: Obj, pods: list[Obj]) -> None:
        alive = [p for p in pods if not is_terminating(p)]
        ready = sum(1 for p in alive if pod_is_ready(p))
        desired = {
            "replicas": len(alive),
            "readyReplicas": ready,
            "currentReplicas": len(alive),
            "updatedReplicas": len(alive),
            "availableReplicas": ready,
            "observedGeneration": sts["metadata"].get("generation", 1),
        }
        current = sts.get("status") or {}
        if any(current.get(k, 0 if k != "observedGeneration" else None) != v for k, v in desired.items()):
            meta = sts["metadata"]
            written = await self.store.patch(STATEFULSETS, meta.get("namespace") or "default", meta["name"],
                                             {"status": desired}, subresource="status")
            self._observe(STATEFULSETS, written)

    def _pod_from_template(self, sts: Obj, ordinal: int) -> Obj:
        meta = sts["metadata"]
        spec = sts.get("spec", {})
        template = copy.deepcopy(spec.get("template", {}))
        pod_name = f"{meta['name']}-{ordinal}"
        template_meta = template.get("metadata", {})
        labels = dict(template_meta.get("labels") or {})
        labels["statefulset.kubernetes.io/pod-name"] = pod_name
        labels["apps.kubernetes.io/pod-index"] = str(ordinal)
        pod_spec = template.get("spec", {})
        pod_spec["hostname"] = pod_name
        if spec.get("serviceName"):
            pod_spec["subdomain"] = spec["serviceName"]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": meta.get("namespace") or "default",
                "labels": labels,
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "name": meta["name"],
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }],
            },
            "spec": pod_spec,
        }

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
            runtime = PodRuntime(namespace=key[0], name=key[1], uid=uid)
            self._runtimes[uid] = runtime
            self._runtime_uids.setdefault(key, set()).add(uid)
            self._spawn(runtime, self._start_pod(runtime, pod))
        elif is_terminating(pod) and not runtime.terminating:
            runtime.terminating = True
            self._spawn(runtime, self._terminate(runtime, pod))

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
        await self._patch_status(runtime, {"phase": "Pending", "hostIP": "127.0.0.1",
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
            runtime, _ready_status(runtime.ip, ready, runtime.restart_count, containers, last_state))
        runtime.container_ready = ready
        if ready and updated is not None:
            await self._run_hooks(self._ready_hooks, updated)

    async def _set_unready(self, runtime: PodRuntime) -> None:
        pod = await self.store.get(PODS, runtime.namespace, runtime.name)
        if pod is None or runtime.ip is None:
            return
        containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
        runtime.container_ready = False
        await self._patch_status(runtime, _ready_status(runtime.ip, False, runtime.restart_count, containers))

    async def _crash_and_restart(self, runtime: PodRuntime) -> None:
        pod = await self.store.get(PODS, runtime.namespace, runtime.name)
        if pod is None or runtime.ip is None or runtime.terminating:
            return
        runtime.restart_count += 1
        runtime.container_ready = False
        containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
        last_state = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now_rfc3339()}}
        crashed = await self._patch_status(
            runtime, _ready_status(runtime.ip, False, runtime.restart_count, containers, last_state))
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


def _ordinal(sts_name: str, pod_name: str) -> int:
    suffix = pod_name.removeprefix(f"{sts_name}-")
    return int(suffix) if suffix.isdigit() else -1


def _grace_seconds(pod: Obj) -> float:
    meta_grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if meta_grace is not None:
        return float(meta_grace)
    return float(pod.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))


def _stub_pod(runtime: PodRuntime) -> Obj:
    """What hooks get when the pod object is already gone from the store."""
    return {"metadata": {"name": runtime.name, "namespace": runtime.namespace, "uid": runtime.uid},
            "status": {"podIP": runtime.ip}}
