"""What the emulated controllers share: the informer cache, the writes they make, and pod predicates as
k8s.io/kubernetes v1.37.2 defines them (`pkg/api/v1/pod/util.go`, `pkg/controller/controller_utils.go`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

PODS = "v1/pods"
STATEFULSETS = "apps/v1/statefulsets"
DEPLOYMENTS = "apps/v1/deployments"
REPLICASETS = "apps/v1/replicasets"
CONTROLLER_REVISIONS = "apps/v1/controllerrevisions"
PDBS = "policy/v1/poddisruptionbudgets"
NODES = "v1/nodes"
WORKLOADS = (STATEFULSETS, DEPLOYMENTS, REPLICASETS)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: Any) -> datetime | None:
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def object_key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace") or "default", meta["name"]


def uid_of(obj: Obj) -> str:
    return str(obj["metadata"].get("uid") or "")


def controller_ref(obj: Obj) -> Obj | None:
    """The owner reference with `controller: true` (`metav1.GetControllerOf`)."""
    return next((ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("controller")), None)


def owner_reference(owner: Obj, kind: str) -> Obj:
    """`metav1.NewControllerRef`."""
    meta = owner["metadata"]
    return {"apiVersion": "apps/v1", "kind": kind, "name": meta["name"], "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def is_terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """`controller.IsPodActive`: not terminal, not terminating."""
    return not is_terminal(pod) and not is_terminating(pod)


def is_terminating_pod(pod: Obj) -> bool:
    """`controller.IsPodTerminating`: terminating and not terminal."""
    return not is_terminal(pod) and is_terminating(pod)


def ready_condition(pod: Obj) -> Obj | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


def pod_is_ready(pod: Obj) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When a Ready pod became Ready (`podReadyTime`); None if not Ready."""
    condition = ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_time(condition.get("lastTransitionTime"))


def pod_is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """`podutil.IsPodAvailable`: Ready for at least minReadySeconds."""
    if not pod_is_ready(pod):
        return False
    if min_ready_seconds == 0:
        return True
    since = ready_since(pod)
    return since is not None and since.timestamp() + min_ready_seconds <= now.timestamp()


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """k8s.io/apimachinery `intstr.GetScaledValueFromIntOrPercent`: an int as it is, "N%" of total (rounded up or
    down); anything else is an error."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].lstrip("-").isdigit():
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def replicas_of(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def status_patch(old: Any, new: Any) -> Any:
    """A JSON merge patch that turns `old` into `new` (removed keys as null), for a whole-status write."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: Obj = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = status_patch(old[key], value)
    return patch


class ClusterCache:
    """The controllers' informers: every watched object by resource and key (read-only: never changed, never
    handed out), dependents by owner uid, and workload objects by uid."""

    def __init__(self, resources: Iterable[str]) -> None:
        self.objects: dict[str, dict[Key, Obj]] = {resource: {} for resource in resources}
        self._dependents: dict[str, dict[str, set[Key]]] = {}  # owner uid -> resource -> keys
        self.workload_by_uid: dict[str, tuple[str, Key]] = {}
        self.pdbs_by_namespace: dict[str, set[Key]] = {}

    def get(self, resource: str, key: Key) -> Obj | None:
        return self.objects[resource].get(key)

    def remember(self, resource: str, obj: Obj) -> None:
        key = object_key(obj)
        self.objects[resource][key] = obj
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("uid"):
                self._dependents.setdefault(str(ref["uid"]), {}).setdefault(resource, set()).add(key)
        if resource in WORKLOADS and uid_of(obj):
            self.workload_by_uid[uid_of(obj)] = (resource, key)
        elif resource == PDBS:
            self.pdbs_by_namespace.setdefault(key[0], set()).add(key)

    def forget(self, resource: str, key: Key) -> Obj | None:
        obj = self.objects[resource].pop(key, None)
        if obj is None:
            return None
        for ref in obj["metadata"].get("ownerReferences") or []:
            by_resource = self._dependents.get(str(ref.get("uid")), {})
            by_resource.get(resource, set()).discard(key)
        if resource in WORKLOADS:
            self.workload_by_uid.pop(uid_of(obj), None)
        elif resource == PDBS:
            self.pdbs_by_namespace.get(key[0], set()).discard(key)
        return obj

    def controlled(self, owner: Obj, resource: str) -> list[Obj]:
        """The objects of `resource` whose controller reference is `owner` (`FilterPodsByOwner` et al.)."""
        uid = uid_of(owner)
        namespace = object_key(owner)[0]
        bucket = self.objects[resource]
        found = []
        for key in self._dependents.get(uid, {}).get(resource, ()):
            obj = bucket.get(key)
            if obj is not None and key[0] == namespace and (controller_ref(obj) or {}).get("uid") == uid:
                found.append(obj)
        return found

    def controller_of(self, obj: Obj) -> tuple[str, Obj] | None:
        """The cached workload object that controls `obj`."""
        ref = controller_ref(obj)
        located = self.workload_by_uid.get(str((ref or {}).get("uid")))
        if located is None:
            return None
        owner = self.objects[located[0]].get(located[1])
        return None if owner is None else (located[0], owner)


class ControllerApi(Protocol):
    """What a controller may do: read the cache, write through the API (each write is taken into the cache)."""

    cache: ClusterCache

    async def create(self, resource: str, obj: Obj) -> Obj | None: ...
    async def patch(self, resource: str, obj: Obj, patch: Obj, subresource: str | None = None) -> Obj | None: ...
    async def write_status(self, resource: str, obj: Obj, status: Obj) -> Obj: ...
    async def delete(self, resource: str, obj: Obj) -> None: ...
