"""The ReplicaSet controller: k8s.io/kubernetes v1.37.2 `pkg/controller/replicaset/replica_set.go` `syncReplicaSet`,
`manageReplicas`, `getPodsToDelete`, and `replica_set_utils.go` `calculateStatus`, `updateReplicaSetStatus`.

Pods are created from the template with `generateName: <rs>-` (`controller.GetPodFromTemplate`) and owned by the
ReplicaSet; on scale-down the pods `podorder.pods_to_delete` ranks first are deleted (gracefully). Pods are not
adopted or released by selector: a ReplicaSet's pods are those whose controller reference is it.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from .common import (
    PODS,
    ControllerApi,
    Obj,
    controller_ref,
    is_active,
    is_terminating,
    is_terminating_pod,
    labels_of,
    owner_reference,
    pod_is_available,
    pod_is_ready,
    replicas_of,
)
from .podorder import pods_to_delete

BURST_REPLICAS = 500  # replica_set.go BurstReplicas: creations or deletions per sync


def pod_from_template(template: Obj, owner: Obj, kind: str) -> Obj:
    """`controller.GetPodFromTemplate`: labels, annotations and finalizers of the template, a generated name."""
    meta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace") or "default",
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
        "ownerReferences": [owner_reference(owner, kind)],
    }
    if meta.get("finalizers"):
        pod_meta["finalizers"] = list(meta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def replicaset_status(rs: Obj, active: list[Obj], terminating: list[Obj], now: datetime) -> Obj:
    """`calculateStatus` (no ReplicaFailure condition: creations do not fail here) with `observedGeneration`
    (`updateReplicaSetStatus`), zero counts left out as the API's JSON leaves them out."""
    spec = rs.get("spec") or {}
    template_labels = labels_of(spec.get("template") or {})
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully_labeled = sum(1 for p in active if template_labels.items() <= labels_of(p).items())
    ready = [p for p in active if pod_is_ready(p)]
    available = sum(1 for p in ready if pod_is_available(p, min_ready, now))
    status: Obj = {"replicas": len(active)}
    for field, count in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", len(ready)),
                         ("availableReplicas", available)):
        if count:
            status[field] = count
    status["terminatingReplicas"] = len(terminating)  # DeploymentReplicaSetTerminatingReplicas (beta, on)
    status["observedGeneration"] = rs["metadata"].get("generation", 1)
    conditions = (rs.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status


class ReplicaSetController:
    def __init__(self, api: ControllerApi) -> None:
        self.api = api

    async def sync(self, rs: Obj) -> None:
        cache = self.api.cache
        pods = cache.controlled(rs, PODS)
        active = [p for p in pods if is_active(p)]
        terminating = [p for p in pods if is_terminating_pod(p)]
        if not is_terminating(rs):
            active = await self._manage_replicas(rs, active)
        await self.api.write_status("apps/v1/replicasets", rs, replicaset_status(rs, active, terminating,
                                                                                 datetime.now(UTC)))

    async def _manage_replicas(self, rs: Obj, active: list[Obj]) -> list[Obj]:
        """`manageReplicas`: create or delete pods (at most BURST_REPLICAS) until `spec.replicas` are active;
        the active pods afterwards."""
        diff = len(active) - replicas_of(rs)
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(min(-diff, BURST_REPLICAS)):
                created = await self.api.create(PODS, pod_from_template(template, rs, "ReplicaSet"))
                if created is not None:
                    active.append(created)
        elif diff > 0:
            doomed = pods_to_delete(active, self._related_pods(rs), min(diff, BURST_REPLICAS), datetime.now(UTC))
            for pod in doomed:
                await self.api.delete(PODS, pod)
            gone = {id(pod) for pod in doomed}
            active = [p for p in active if id(p) not in gone]
        return active

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """`getIndirectlyRelatedPods`: the pods of every ReplicaSet with the same controller (itself if none)."""
        cache = self.api.cache
        owner = cache.controller_of(rs)
        siblings = [rs] if owner is None or controller_ref(rs) is None else [
            other for other in cache.controlled(owner[1], "apps/v1/replicasets")]
        return [pod for sibling in siblings for pod in cache.controlled(sibling, PODS)]
