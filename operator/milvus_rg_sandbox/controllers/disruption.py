"""The disruption controller: the status of each PodDisruptionBudget, as k8s.io/kubernetes v1.37.2
`pkg/controller/disruption/disruption.go` `trySync`, `getExpectedPodCount`, `getExpectedScale`,
`buildDisruptedPodMap`, `countHealthyPods`, `updatePdbStatus` and `failSafe` keep it. The eviction subresource
(`milvus_rg_sandbox.kube.eviction`) reads it.

Controllers found for a pod: a ReplicaSet's Deployment, a ReplicaSet, a StatefulSet (ReplicationControllers and
custom resources with a scale subresource are not looked up: their pods make the sync fail, as for a pod whose
controller is gone). No events are posted and the stale DisruptionTarget condition of a pod is not removed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from milvus_rg_sandbox.kube.eviction import disruption_allowed_conditions
from milvus_rg_sandbox.kube.selectors import label_selector_matcher

from .common import (
    DEPLOYMENTS,
    PDBS,
    PODS,
    REPLICASETS,
    ControllerApi,
    Obj,
    controller_ref,
    is_terminating,
    labels_of,
    now_rfc3339,
    object_key,
    parse_time,
    pod_is_ready,
    replicas_of,
    scaled_value,
    uid_of,
)

DELETION_TIMEOUT_SECONDS = 120  # disruption.go DeletionTimeout


class NoController(Exception):
    """A selected pod's controller is not one the controller knows (`found no controllers for pod`)."""


class DisruptionController:
    def __init__(self, api: ControllerApi) -> None:
        self.api = api

    def selected_pods(self, pdb: Obj) -> list[Obj]:
        """`getPodsForPdb`: the pods of its namespace its selector matches."""
        matches = label_selector_matcher((pdb.get("spec") or {}).get("selector"))
        namespace = object_key(pdb)[0]
        return [pod for key, pod in self.api.cache.objects[PODS].items()
                if key[0] == namespace and matches(labels_of(pod))]

    async def sync(self, pdb: Obj) -> None:
        pods = self.selected_pods(pdb)
        try:
            expected, desired = self._expected_pod_count(pdb, pods)
        except (NoController, ValueError) as error:
            await self._fail_safe(pdb, str(error))
            return
        now = datetime.now(UTC)
        disrupted = self._disrupted_pods(pdb, pods, now)
        healthy = sum(1 for pod in pods if not is_terminating(pod) and pod["metadata"]["name"] not in disrupted
                      and pod_is_ready(pod))
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        status: Obj = {"observedGeneration": pdb["metadata"].get("generation", 1)}
        if disrupted:
            status["disruptedPods"] = disrupted
        status.update(disruptionsAllowed=allowed, currentHealthy=healthy, desiredHealthy=desired,
                      expectedPods=expected)
        old = pdb.get("status") or {}
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        status["conditions"] = disruption_allowed_conditions(status, allowed, now_rfc3339())
        await self.api.write_status(PDBS, pdb, status)

    def _expected_pod_count(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int]:
        """`getExpectedPodCount`: (expectedPods, desiredHealthy)."""
        spec = pdb.get("spec") or {}
        if spec.get("maxUnavailable") is not None:
            expected = self._expected_scale(pods)
            return expected, max(expected - scaled_value(spec["maxUnavailable"], expected, True), 0)
        min_available = spec.get("minAvailable")
        if isinstance(min_available, int) and not isinstance(min_available, bool):
            return len(pods), min_available
        if min_available is not None:
            expected = self._expected_scale(pods)
            return expected, scaled_value(min_available, expected, True)
        return 0, 0

    def _expected_scale(self, pods: list[Obj]) -> int:
        """`getExpectedScale`: the sum of the scale of every controller of the pods (pods without a controller
        do not count); a ReplicaSet's Deployment stands for it."""
        scale_by_uid: dict[str, int] = {}
        cache = self.api.cache
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                continue
            located = cache.workload_by_uid.get(str(ref.get("uid")))
            owner = None if located is None else cache.get(*located)
            if located is not None and owner is not None and located[0] == REPLICASETS \
                    and (controller_ref(owner) or {}).get("kind") == "Deployment":
                parent = cache.controller_of(owner)
                owner = parent[1] if parent is not None and parent[0] == DEPLOYMENTS else None
            if owner is None:
                raise NoController(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scale_by_uid[uid_of(owner)] = replicas_of(owner)
        return sum(scale_by_uid.values())

    def _disrupted_pods(self, pdb: Obj, pods: list[Obj], now: datetime) -> dict[str, str]:
        """`buildDisruptedPodMap`: evictions granted less than DeletionTimeout ago whose pod is not yet deleting."""
        granted = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            if is_terminating(pod) or name not in granted:
                continue
            since = parse_time(granted[name])
            if since is not None and since.timestamp() + DELETION_TIMEOUT_SECONDS >= now.timestamp():
                kept[name] = granted[name]
        return kept

    async def _fail_safe(self, pdb: Obj, message: str) -> None:
        """`failSafe`: no disruption allowed, and a DisruptionAllowed=False SyncFailed condition."""
        status = dict(pdb.get("status") or {})
        status["disruptionsAllowed"] = 0
        for field in ("currentHealthy", "desiredHealthy", "expectedPods"):
            status.setdefault(field, 0)
        wanted: Obj = {"type": "DisruptionAllowed", "status": "False"}
        if status.get("observedGeneration"):
            wanted["observedGeneration"] = status["observedGeneration"]
        wanted.update(reason="SyncFailed", message=message)
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
        previous = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
        stamp = previous.get("lastTransitionTime") if previous and previous.get("status") == "False" else now_rfc3339()
        status["conditions"] = [*conditions, {**wanted, "lastTransitionTime": stamp}]
        await self.api.write_status(PDBS, pdb, status)

