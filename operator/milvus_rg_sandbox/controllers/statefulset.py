"""The StatefulSet controller: k8s.io/kubernetes v1.37.2 `pkg/controller/statefulset/stateful_set_control.go`
(`UpdateStatefulSet`, `getStatefulSetRevisions`, `updateStatefulSet`, `processReplica`, `processCondemned`,
`updateStatefulSetAfterInvariantEstablished`: the MaxUnavailableStatefulSet gate is on by default in 1.37,
`truncateHistory`, `updateStatefulSetStatus`) and `stateful_set_utils.go`.

Both pod management policies (OrderedReady: one pod at a time, each Running and Ready before the next; Parallel)
and both update strategies (RollingUpdate with `partition` and `maxUnavailable`, highest ordinal first; OnDelete)
work as there. Revisions are ControllerRevision objects named `<set>-<hash>`: the hash is the real algorithm
(FNV-32 of the revision's data, `history.HashControllerRevision`) over the template as stored here, which lacks
the real API server's pod defaults, so its value differs from a real cluster's. No PersistentVolumeClaims, no
`spec.ordinals` other than `start`, no Recreate strategy (an alpha gate, off in 1.37).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime

from .common import (
    CONTROLLER_REVISIONS,
    PODS,
    STATEFULSETS,
    ControllerApi,
    Obj,
    is_terminal,
    is_terminating,
    labels_of,
    object_key,
    owner_reference,
    phase,
    pod_is_available,
    pod_is_ready,
    replicas_of,
    scaled_value,
)
from .deployment import safe_encode

REVISION_LABEL = "controller-revision-hash"  # apps.StatefulSetRevisionLabel: a pod's revision (its name)
HASH_LABEL = "controller.kubernetes.io/hash"  # history.ControllerRevisionHashLabel: a revision's hash
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
POD_NAME = re.compile(r"(.*)-([0-9]+)$")  # statefulPodRegex


def fnv32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value * 0x01000193) & 0xFFFFFFFF) ^ byte
    return value


def ordinal_of(pod: Obj) -> tuple[str, int]:
    """`getParentNameAndOrdinal`: (parent name, ordinal), ("", -1) if the name has no ordinal."""
    match = POD_NAME.match(pod["metadata"]["name"])
    if match is None or int(match.group(2)) > 2**31 - 1:
        return "", -1
    return match.group(1), int(match.group(2))


def revision_data(sts: Obj) -> Obj:
    """`getPatch`: the template as a strategic merge patch that replaces it."""
    template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(data: Obj, collision_count: int | None) -> str:
    """`history.HashControllerRevision` over the data's JSON (sorted keys, as Go's json.Marshal of a map)."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32(raw)))


def revision_template(revision: Obj) -> Obj:
    """`ApplyRevision`: the pod template a revision holds."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def pod_revision(pod: Obj) -> str:
    return labels_of(pod).get(REVISION_LABEL, "")


def is_created(pod: Obj) -> bool:
    return phase(pod) != ""


def running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and pod_is_ready(pod)


def _by_revision(revision: Obj) -> tuple[int, str, str]:
    """`history.SortControllerRevisions`: by revision number, then creation, then name."""
    meta = revision["metadata"]
    return int(revision.get("revision") or 0), str(meta.get("creationTimestamp") or ""), meta["name"]


class StatefulSetController:
    def __init__(self, api: ControllerApi) -> None:
        self.api = api

    async def sync(self, sts: Obj) -> None:
        """`UpdateStatefulSet`: revisions, pods, status, then the revision history."""
        cache = self.api.cache
        name = sts["metadata"]["name"]
        pods = [p for p in cache.controlled(sts, PODS) if ordinal_of(p)[0] == name]  # isMemberOf
        revisions = sorted(cache.controlled(sts, CONTROLLER_REVISIONS), key=_by_revision)
        current, update, collision_count = await self._revisions(sts, revisions)
        status = await self._update(sts, current, update, collision_count, pods, datetime.now(UTC))
        self._complete_update(sts, status)
        await self.api.write_status(STATEFULSETS, sts, self._rendered(status))
        await self._truncate_history(sts, pods, revisions, current, update)

    # -- revisions ---------------------------------------------------------------------------------

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """`getStatefulSetRevisions`: (current, update, collisionCount); creates the update revision if new, or
        renumbers an equal older one (a rollback)."""
        collision_count = int((sts.get("status") or {}).get("collisionCount") or 0)
        data = revision_data(sts)
        next_number = int(revisions[-1].get("revision") or 0) + 1 if revisions else 1
        equal = [r for r in revisions if r.get("data") == data]
        if equal and equal[-1] is revisions[-1]:
            update = revisions[-1]
        elif equal:
            patched = await self.api.patch(CONTROLLER_REVISIONS, equal[-1], {"revision": next_number})
            update = patched if patched is not None else equal[-1]
        else:
            update, collision_count = await self._create_revision(sts, data, next_number, collision_count)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), update)
        return current, update, collision_count

    async def _create_revision(self, sts: Obj, data: Obj, number: int, collision_count: int) -> tuple[Obj, int]:
        """`history.NewControllerRevision` + `CreateControllerRevision`: a name taken by other data is a hash
        collision, retried with the next collision count."""
        meta = sts["metadata"]
        template_labels = labels_of((sts.get("spec") or {}).get("template") or {})
        label_hash = revision_hash(data, collision_count)
        while True:
            revision = {
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": f"{meta['name'][:223]}-{revision_hash(data, collision_count)}",
                             "namespace": object_key(sts)[0],
                             "labels": {**template_labels, HASH_LABEL: label_hash},
                             "annotations": dict(meta.get("annotations") or {}),
                             "ownerReferences": [owner_reference(sts, "StatefulSet")]},
                "data": data, "revision": number,
            }
            created = await self.api.create(CONTROLLER_REVISIONS, revision)
            if created is not None:
                return created, collision_count
            existing = self.api.cache.get(CONTROLLER_REVISIONS, object_key(revision))
            if existing is not None and existing.get("data") == data:
                return existing, collision_count
            collision_count += 1

    async def _truncate_history(self, sts: Obj, pods: list[Obj], revisions: list[Obj], current: Obj,
                                update: Obj) -> None:
        live = {current["metadata"]["name"], update["metadata"]["name"], *(pod_revision(p) for p in pods)}
        history = [r for r in revisions if r["metadata"]["name"] not in live]
        limit = int((sts.get("spec") or {}).get("revisionHistoryLimit", 10))
        if limit < 0 or len(history) <= limit:
            return
        for revision in history[:len(history) - limit]:
            await self.api.delete(CONTROLLER_REVISIONS, revision)

    # -- pods --------------------------------------------------------------------------------------

    def _new_pod(self, sts: Obj, template: Obj, revision: str, ordinal: int) -> Obj:
        """`newVersionedStatefulSetPod`: the template's pod with the set's identity and the revision label."""
        meta = sts["metadata"]
        template_meta = template.get("metadata") or {}
        name = f"{meta['name']}-{ordinal}"
        spec = copy.deepcopy(template.get("spec") or {})
        spec["hostname"] = name
        if (sts.get("spec") or {}).get("serviceName"):
            spec["subdomain"] = sts["spec"]["serviceName"]
        pod_meta: Obj = {
            "name": name, "generateName": f"{meta['name']}-", "namespace": object_key(sts)[0],
            "labels": {**(template_meta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                       REVISION_LABEL: revision},
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(sts, "StatefulSet")],
        }
        if template_meta.get("finalizers"):
            pod_meta["finalizers"] = list(template_meta["finalizers"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}

    async def _update(self, sts: Obj, current: Obj, update: Obj, collision_count: int, pods: list[Obj],
                      now: datetime) -> Obj:
        """`updateStatefulSet`: create missing pods, delete condemned ones (above the replica range), then roll
        pods onto the update revision as the strategy allows; the new status."""
        spec = sts.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("rollingUpdate") if strategy.get("type", "RollingUpdate") == "RollingUpdate" else None
        min_ready = int(spec.get("minReadySeconds") or 0)
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        count = replicas_of(sts)
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        status: Obj = {"observedGeneration": sts["metadata"].get("generation", 1), "currentRevision": current_name,
                       "updateRevision": update_name, "collisionCount": collision_count}
        if (sts.get("status") or {}).get("conditions"):
            status["conditions"] = sts["status"]["conditions"]

        replicas: list[Obj | None] = [None] * count
        condemned: list[Obj] = []
        for pod in pods:
            ordinal = ordinal_of(pod)[1]
            if start <= ordinal < start + count:
                replicas[ordinal - start] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        partition = int((rolling or {}).get("partition") or 0)
        current_replicas = int((sts.get("status") or {}).get("currentReplicas") or 0)
        for index, slot in enumerate(replicas):
            if slot is None:
                ordinal = start + index
                # newVersionedStatefulSetPod (its operator precedence kept: OnDelete pods get the update revision)
                use_current = (strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling is None
                               and ordinal < start + current_replicas) or (rolling is not None and ordinal < start
                                                                           + partition)
                revision = current if use_current else update
                replicas[index] = self._new_pod(sts, revision_template(revision), revision["metadata"]["name"],
                                                ordinal)
        slots: list[Obj] = [pod for pod in replicas if pod is not None]
        condemned.sort(key=lambda pod: ordinal_of(pod)[1], reverse=True)

        def unavailable(pod: Obj) -> bool:
            return not pod_is_available(pod, min_ready, now) or is_terminating(pod)

        first_unavailable = next((p for p in slots if unavailable(p)), None) or next(
            (p for p in reversed(condemned) if unavailable(p)), None)

        def finish() -> Obj:
            status.update(self._counts([*slots, *condemned], min_ready, current_name, update_name, now))
            return status

        if is_terminating(sts):
            return finish()
        for index in range(len(slots)):
            if await self._process_replica(slots, index, monotonic, min_ready, now) and monotonic:
                return finish()
        for index in range(len(condemned)):
            if await self._process_condemned(condemned, index, first_unavailable, monotonic, min_ready, now) \
                    and monotonic:
                return finish()
        finish()
        if strategy.get("type", "RollingUpdate") == "OnDelete":
            return status
        await self._roll(sts, slots, update_name, partition, rolling, monotonic, min_ready, now, status)
        return status

    async def _process_replica(self, slots: list[Obj], index: int, monotonic: bool, min_ready: int,
                               now: datetime) -> bool:
        """`processReplica`: True when a monotonic (OrderedReady) set must stop here for now."""
        pod = slots[index]
        if is_terminal(pod):
            if not is_terminating(pod):
                await self.api.delete(PODS, pod)
            return True
        if not is_created(pod):
            created = await self.api.create(PODS, pod)
            if created is not None:
                slots[index] = created
            if monotonic:
                return True
        return monotonic and (is_terminating(pod) or not running_and_ready(pod)
                              or not pod_is_available(pod, min_ready, now))

    async def _process_condemned(self, condemned: list[Obj], index: int, first_unavailable: Obj | None,
                                 monotonic: bool, min_ready: int, now: datetime) -> bool:
        """`processCondemned`: delete a pod above the replica range (monotonic: one at a time, each after its
        predecessors are Running, Ready and available)."""
        pod = condemned[index]
        if is_terminating(pod):
            return monotonic
        if monotonic and pod is not first_unavailable and (
                not running_and_ready(pod) or not pod_is_available(pod, min_ready, now)):
            return True
        await self.api.delete(PODS, pod)
        return True

    async def _roll(self, sts: Obj, slots: list[Obj], update_name: str, partition: int, rolling: Obj | None,
                    monotonic: bool, min_ready: int, now: datetime, status: Obj) -> None:
        """`updateStatefulSetAfterInvariantEstablished`: delete pods of an old revision from the highest ordinal
        down to `partition`, at most `maxUnavailable` unavailable at once (their replacements come from the
        update revision); Parallel first deletes old pods that are unavailable anyway."""
        max_unavailable = max(scaled_value((rolling or {}).get("maxUnavailable", 1), replicas_of(sts), False), 1)

        def unavailable(pod: Obj) -> bool:
            return not pod_is_available(pod, min_ready, now) or is_terminating(pod)

        unavailable_pods = sum(1 for pod in slots if unavailable(pod))
        needing_update = sum(1 for pod in slots if unavailable(pod) and not monotonic
                             and pod_revision(pod) != update_name and not is_terminating(pod))
        if unavailable_pods >= max_unavailable and needing_update == 0:
            return
        targets = list(reversed(slots[partition:])) if partition < len(slots) else []

        async def delete(pod: Obj) -> None:
            await self.api.delete(PODS, pod)
            status["currentReplicas"] = status.get("currentReplicas", 0) - 1

        if not monotonic:
            for pod in targets:
                if pod_revision(pod) != update_name and not pod_is_available(pod, min_ready, now) \
                        and not is_terminating(pod):
                    await delete(pod)
            budget = max_unavailable - unavailable_pods
            for pod in targets:
                if budget <= 0:
                    break
                if pod_revision(pod) != update_name and not unavailable(pod):
                    await delete(pod)
                    budget -= 1
            return
        budget = max_unavailable - unavailable_pods
        for pod in targets:
            if budget <= 0:
                break
            if pod_revision(pod) != update_name and not is_terminating(pod):
                await delete(pod)
                budget -= 1

    # -- status ------------------------------------------------------------------------------------

    def _counts(self, pods: list[Obj], min_ready: int, current: str, update: str, now: datetime) -> Obj:
        """`computeReplicaStatus`: created pods (terminating ones too), Ready, available, and the live pods of
        each revision."""
        created = [p for p in pods if is_created(p)]
        ready = [p for p in created if running_and_ready(p)]
        live = [p for p in created if not is_terminating(p)]
        return {"replicas": len(created), "readyReplicas": len(ready),
                "availableReplicas": sum(1 for p in ready if pod_is_available(p, min_ready, now)),
                "currentReplicas": sum(1 for p in live if pod_revision(p) == current),
                "updatedReplicas": sum(1 for p in live if pod_revision(p) == update)}

    def _complete_update(self, sts: Obj, status: Obj) -> None:
        """`completeUpdate`: once every replica is updated and Ready, the update revision is the current one."""
        replicas = replicas_of(sts)
        if status["updatedReplicas"] == replicas and status["readyReplicas"] == replicas and \
                status["replicas"] == replicas:
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]

    def _rendered(self, status: Obj) -> Obj:
        """The status as the API's JSON shows it: zero counts with `omitempty` left out."""
        return {key: value for key, value in status.items()
                if not (key in ("readyReplicas", "currentReplicas", "updatedReplicas", "observedGeneration")
                        and value == 0)}

