"""Serving-capacity invariants, checked in-process while a sandbox scenario runs.

`InvariantChecker` watches the sandbox from the inside (no RPCs to Milvus, so it sees Milvus even while its
API is made unavailable) and records four kinds of violation:

(a) capacity: a watched group serves fewer nodes than its requests for longer than `grace` (default:
    2 x the sandbox's Milvus check interval, i.e. Milvus's own recovery time). Sampled every
    `interval` seconds and right after every change to Milvus's resource manager or to a pod's
    deletion; `capacity_lost` integrates the shortfall in group-node-seconds, grace or not.
    A node *serves* a group when it is a member, Healthy, and its pod exists and is not terminating.
(b) removal: a pod whose Milvus node is in a non-pending group gets a deletionTimestamp or is removed.
    On the embedded backend, checked synchronously at the moment the kube store commits the change (a
    store subscription whose `offer` runs inside the commit), so there is no sampling race with Milvus's
    recovery loop. On the real backend, checked when the pod event arrives by the sandbox wiring's watch
    of the API server, before the wiring acts on it (stops or crashes the pod's Milvus node).
(c) labels: a pod that gets a deletionTimestamp or is removed while labelled `milvusrg.io/state=serving`
    (labels must never lie: a leaving pod's labels are written before the replicas are lowered).
(d) data: a pod that gets a deletionTimestamp or is removed while its node's process still holds sealed
    segments or channels (the simulator's truth, `held_by`, not querycoord's possibly stale distribution);
    and, at every sample, a segment of a loaded collection that no replica serves (a search would miss it
    whichever replica it went to: `segments_served_nowhere`), reported once per episode.

    async with InvariantChecker(sandbox, groups={"rg1": 2}) as checker:
        ...  # run the scenario
    checker.assert_ok()
    checker.capacity_lost  # group-node-seconds below requests

Used by tests/integration (both backends), tests/realkube/test_statefulset_drain.py and
bench/scale_in_capacity.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

PENDING = "__pending_nodes"
# ResourceManager methods that change membership, configs or node states: the checker also samples
# right after each, so dips shorter than `interval` are measured exactly (piecewise-constant integral).
RM_MUTATORS = ("recover", "add_node", "stop_node", "crash_node", "suspend_node", "resume_node",
               "update_resource_groups", "create_resource_group", "drop_resource_group", "transfer_node",
               "advance", "transfer_replica", "load_collection", "release_collection", "load_balance",
               "transfer_data", "flush")
PODS = "v1/pods"
STATE_LABEL = "milvusrg.io/state"
GROUP_LABEL = "milvusrg.io/resource-group"
HEALTHY = "Healthy"
Pod = dict[str, Any]
PodEventHandler = Callable[[str, Pod, bool], None]
"""(event type, pod, whether the pod was already terminating before this event)."""


class PodFeed(Protocol):
    """Where the checker learns of pod changes, the moment they happen, and which pods exist."""

    async def start(self, on_event: PodEventHandler) -> None: ...

    def stop(self) -> None: ...

    def pods(self) -> list[Pod]: ...


@dataclass
class StorePodFeed:
    """Embedded backend: a subscription to the kube store whose `offer` runs inside the store's commit,
    before any client hears of the change."""

    sandbox: Any
    namespace: str
    _subscription: Any = None

    async def start(self, on_event: PodEventHandler) -> None:
        store = self.sandbox.kube.store
        subscription = store.subscribe(store.resource(PODS), self.namespace, lambda _obj: True, store.revision)
        storage_key = subscription.resource.storage_key

        def offer(event: Any) -> None:
            if event.storage_key == storage_key and event.obj["metadata"].get("namespace") == self.namespace:
                terminating = event.obj if event.type == "DELETED" else (event.old or {})
                on_event(event.type, event.obj, bool(terminating.get("metadata", {}).get("deletionTimestamp")))

        subscription.offer = offer
        self._subscription = subscription

    def stop(self) -> None:
        if self._subscription is not None:
            self.sandbox.kube.store.unsubscribe(self._subscription)
            self._subscription = None

    def pods(self) -> list[Pod]:
        store = self.sandbox.kube.store
        return list(store.list_objects(store.resource(PODS), self.namespace, lambda _obj: True))


@dataclass
class WatchPodFeed:
    """Real backend: the pod events of the sandbox wiring's watch of the API server, each handed over before
    the wiring acts on it (a separate watch could see a deletion after the wiring had already stopped the
    pod's Milvus node, and miss the violation). The pods are the ones listed at the start, kept up to date
    by the events."""

    sandbox: Any
    namespace: str
    _pods: dict[str, Pod] = field(default_factory=dict)
    _deleted: set[str] = field(default_factory=set)
    _on_event: PodEventHandler | None = None

    async def start(self, on_event: PodEventHandler) -> None:
        self._on_event = on_event
        self.sandbox.wiring.listeners.append(self._observe)  # before listing: no event falls in between
        for pod in await self.sandbox.kube.store.list(PODS, self.namespace):
            name = pod["metadata"]["name"]
            if name not in self._pods and name not in self._deleted:  # events during the list are newer
                self._pods[name] = pod

    def stop(self) -> None:
        if self._observe in self.sandbox.wiring.listeners:
            self.sandbox.wiring.listeners.remove(self._observe)

    def pods(self) -> list[Pod]:
        return list(self._pods.values())

    def _observe(self, event_type: str, pod: Pod) -> None:
        if pod["metadata"].get("namespace") != self.namespace or event_type not in ("ADDED", "MODIFIED", "DELETED"):
            return
        name = pod["metadata"]["name"]
        before = self._pods.pop(name, None) if event_type == "DELETED" else self._pods.get(name)
        if event_type == "DELETED":
            self._deleted.add(name)
        else:
            self._pods[name] = pod
        known = before if before is not None else pod if event_type == "DELETED" else {}
        assert self._on_event is not None
        self._on_event(event_type, pod, bool(known.get("metadata", {}).get("deletionTimestamp")))


@dataclass(frozen=True)
class CapacityViolation:
    group: str
    since: float  # seconds after the checker started
    duration: float  # how long the group stayed below its requests (so far, if it still is)
    shortfall: int  # largest number of missing nodes in that episode

    def __str__(self) -> str:
        return (f"{self.group} below its requests for {self.duration:.3f}s from t={self.since:.3f}s "
                f"(up to {self.shortfall} node(s) short)")


@dataclass(frozen=True)
class RemovalViolation:
    pod: str
    node_id: int
    group: str
    how: str  # "deletionTimestamp" | "removed"
    at: float

    def __str__(self) -> str:
        return f"{self.pod} (node {self.node_id}) got {self.how} at t={self.at:.3f}s while serving {self.group}"


@dataclass
class _Episode:
    start: float
    shortfall: int
    reported: bool = False


@dataclass
class InvariantChecker:
    sandbox: Any
    groups: Mapping[str, int] | Iterable[str] = ()
    """Watched Milvus groups. A mapping fixes their requests; names alone read requests from Milvus."""
    pending: str = PENDING
    namespace: str = "default"
    interval: float = 0.02
    grace: float | None = None

    capacity_violations: list[CapacityViolation] = field(default_factory=list, init=False)
    removal_violations: list[RemovalViolation] = field(default_factory=list, init=False)
    label_violations: list[str] = field(default_factory=list, init=False)
    data_violations: list[str] = field(default_factory=list, init=False)
    removed: list[tuple[str, str | None]] = field(default_factory=list, init=False)
    """Every pod that got a deletionTimestamp or was removed, with the group its node served then."""
    capacity_lost: float = field(default=0.0, init=False)
    per_group_lost: dict[str, float] = field(default_factory=dict, init=False)
    samples: int = field(default=0, init=False)
    errors: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.groups, Mapping):
            self._fixed: dict[str, int] | None = dict(self.groups)
            self._names = list(self.groups)
        else:
            self._fixed = None
            self._names = list(self.groups)
        if self.grace is None:
            self.grace = 2 * float(self.sandbox.config.check_interval)
        self._episodes: dict[str, _Episode] = {}
        self._task: asyncio.Task[None] | None = None
        real = getattr(self.sandbox.config, "kubernetes", "embedded") == "real"
        self._feed: PodFeed = (WatchPodFeed if real else StorePodFeed)(self.sandbox, self.namespace)
        self._started = 0.0
        self._last_sample: tuple[float, dict[str, int]] | None = None
        self._served_nowhere: list[tuple[str, int]] = []  # the episode already reported

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> InvariantChecker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._started = time.monotonic()
        await self._feed.start(self._on_pod_event)
        rm = self.sandbox.milvus.rm
        for method in RM_MUTATORS:
            setattr(rm, method, self._sampling_after(getattr(rm, method)))
        self._sample()
        self._task = asyncio.create_task(self._run(), name="invariant-checker")

    def _sampling_after(self, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                self._safe_sample()
        return wrapper

    def _safe_sample(self) -> None:
        try:
            self._sample()
        except Exception as exc:  # never break Milvus or the API server from inside their calls
            self.errors.append(f"checker failed to sample: {exc!r}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._sample()  # account up to now
            self._close_episodes()
        rm = self.sandbox.milvus.rm
        for method in RM_MUTATORS:
            vars(rm).pop(method, None)  # back to the class's methods
        self._feed.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    # --- results --------------------------------------------------------------------------------

    @property
    def violations(self) -> list[str]:
        return ([str(v) for v in (*self.capacity_violations, *self.removal_violations)] + self.label_violations
                + self.data_violations + self.errors)

    def assert_ok(self) -> None:
        assert not self.violations, "serving-capacity invariant violated:\n  " + "\n  ".join(self.violations)

    def removed_while_serving(self) -> list[str]:
        return [v.pod for v in self.removal_violations]

    # --- (a) capacity -----------------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self._started

    def _serving_pods(self) -> dict[str, str]:
        """pod name -> uid of pods that exist and are not terminating."""
        return {p["metadata"]["name"]: p["metadata"].get("uid", "") for p in self._feed.pods()
                if not p["metadata"].get("deletionTimestamp")}

    def shortfalls(self) -> dict[str, int]:
        """Watched group -> nodes missing to reach its requests, right now."""
        pods = self._serving_pods()
        rm = self.sandbox.milvus.rm
        result: dict[str, int] = {}
        with self.sandbox.milvus.controls.lock:
            for name in self._names:
                rg = rm.groups.get(name)
                requests = self._fixed[name] if self._fixed is not None else (rg.config.req if rg else 0)
                serving = 0
                for node_id in (rg.nodes if rg is not None else ()):
                    node = rm.nodes.get(node_id)
                    if (node is not None and node.state.value == HEALTHY and rm.accept(rg, node_id)
                            and node.hostname in pods):
                        serving += 1
                result[name] = max(0, requests - serving)
        return result

    def _sample(self) -> None:
        now = self._now()
        current = self.shortfalls()
        self._check_served(now)
        self.samples += 1
        if self._last_sample is not None:
            then, previous = self._last_sample
            for name, missing in previous.items():  # the state held since the last sample
                lost = missing * (now - then)
                if lost:
                    self.capacity_lost += lost
                    self.per_group_lost[name] = self.per_group_lost.get(name, 0.0) + lost
        self._last_sample = (now, current)
        assert self.grace is not None
        for name, missing in current.items():
            episode = self._episodes.get(name)
            if missing == 0:
                if episode is not None:
                    self._end_episode(name, episode, now)
                continue
            if episode is None:
                episode = self._episodes[name] = _Episode(now, missing)
            episode.shortfall = max(episode.shortfall, missing)
            if not episode.reported and now - episode.start > self.grace:
                episode.reported = True  # reported once; its final duration is filled in when it ends
                self.capacity_violations.append(CapacityViolation(name, episode.start, now - episode.start,
                                                                  episode.shortfall))

    def _check_served(self, now: float) -> None:
        with self.sandbox.milvus.controls.lock:
            nowhere = self.sandbox.milvus.rm.segments_served_nowhere()
        if nowhere and nowhere != self._served_nowhere:
            self.data_violations.append(f"no replica serves {len(nowhere)} segment(s) at t={now:.3f}s: "
                                        + ", ".join(f"{c}/{s}" for c, s in nowhere[:5]))
        self._served_nowhere = nowhere

    def _end_episode(self, name: str, episode: _Episode, now: float) -> None:
        del self._episodes[name]
        if episode.reported:
            for i, violation in enumerate(self.capacity_violations):
                if violation.group == name and violation.since == episode.start:
                    self.capacity_violations[i] = CapacityViolation(name, episode.start, now - episode.start,
                                                                    episode.shortfall)

    def _close_episodes(self) -> None:
        now = self._now()
        for name, episode in list(self._episodes.items()):
            self._end_episode(name, episode, now)

    # --- (b) removal ------------------------------------------------------------------------------

    def _on_pod_event(self, event_type: str, obj: Pod, was_terminating: bool) -> None:
        try:  # runs inside the store's commit or the wiring's watch: never let the checker break them
            self._check_pod_event(event_type, obj, was_terminating)
        except Exception as exc:
            self.errors.append(f"checker failed on a pod event: {exc!r}")

    def _check_pod_event(self, event_type: str, obj: Pod, was_terminating: bool) -> None:
        if was_terminating:
            return  # checked when it got its deletionTimestamp
        if event_type == "MODIFIED" and obj["metadata"].get("deletionTimestamp"):
            how = "deletionTimestamp"
        elif event_type == "DELETED":
            how = "removed"
        else:
            return
        name = obj["metadata"]["name"]
        labels = obj["metadata"].get("labels") or {}
        if labels.get(STATE_LABEL) == "serving":
            self.label_violations.append(f"{name} got {how} at t={self._now():.3f}s while labelled "
                                         f"{STATE_LABEL}=serving ({labels.get(GROUP_LABEL)})")
        node_id, group = self._serving_group(name, obj["metadata"].get("uid", ""))
        if node_id is not None:
            # What the process really holds, not querycoord's distribution (empty after a coordinator restart
            # whose pulls of this node failed: exactly the answer a drain must not trust).
            channels, segments = self.sandbox.milvus.held_by(node_id)
            if channels or segments:
                self.data_violations.append(f"{name} (node {node_id}) got {how} at t={self._now():.3f}s holding "
                                            f"{len(segments)} segments, {len(channels)} channels")
        self.removed.append((name, group))
        self._safe_sample()  # the pod stops counting as serving now
        if group is not None and node_id is not None:
            self.removal_violations.append(RemovalViolation(name, node_id, group, how, self._now()))

    def _serving_group(self, pod: str, uid: str) -> tuple[int | None, str | None]:
        """The node of this pod's current process and the non-pending group it is in, if any."""
        rm = self.sandbox.milvus.rm
        with self.sandbox.milvus.controls.lock:
            node_id = self.sandbox.wiring.node_id(uid)
            candidates = [node_id] if node_id is not None else [
                n.node_id for n in rm.nodes.values() if n.hostname == pod]
            for candidate in candidates:
                group = rm.group_of(candidate)
                if group is not None and group != self.pending:
                    return candidate, group
        return (candidates[0] if candidates else None), None
