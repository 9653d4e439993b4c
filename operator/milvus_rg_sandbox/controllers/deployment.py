"""The Deployment controller: k8s.io/kubernetes v1.37.2 `pkg/controller/deployment/` `deployment_controller.go`
`syncDeployment`, `sync.go` (`getNewReplicaSet`, `scale`, `scaleReplicaSet`, `cleanupDeployment`, `calculateStatus`),
`rolling.go`, `recreate.go`, `progress.go` `syncRolloutStatus` and `util/deployment_util.go`.

A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`; the hash is FNV-32a over the pod template,
as `controller.ComputeHash` does, but over the template's JSON (sorted keys) where Kubernetes hashes the Go struct
(`hashutil.DeepHashObject`): the same shape of name, stable per template, not the same value as a real cluster's.
ReplicaSets are not adopted or released by selector (only those the Deployment controls count), Events are not
posted, and the deprecated `spec.rollbackTo` does not exist in apps/v1.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from typing import Any

from .common import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    ControllerApi,
    Obj,
    controller_ref,
    is_terminal,
    is_terminating,
    now_rfc3339,
    object_key,
    owner_reference,
    parse_time,
    replicas_of,
    scaled_value,
    status_patch,
    uid_of,
)

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery pkg/util/rand
TEMPLATE_HASH = "pod-template-hash"  # apps.DefaultDeploymentUniqueLabelKey
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
                        DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})
MAX_REVISION_HISTORY_CHARS = 2000
MAX_NAME_LENGTH = 253  # validation.DNS1123SubdomainMaxLength


def safe_encode(text: str) -> str:
    """`rand.SafeEncodeString`."""
    return "".join(ALPHANUMS[ord(char) % len(ALPHANUMS)] for char in text)


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: Obj, collision_count: int | None) -> str:
    """`controller.ComputeHash`, over the template's JSON (see the module docstring)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode(str(fnv32a(data)))


def _semantic(value: Any) -> Any:
    """A value with empty and null members left out: `apiequality.Semantic.DeepEqual` holds empty and nil equal."""
    if isinstance(value, dict):
        kept = {key: _semantic(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def equal_ignore_hash(first: Obj, second: Obj) -> bool:
    """`EqualIgnoreHash`: two pod templates equal but for the pod-template-hash label."""
    def without_hash(template: Obj) -> Any:
        template = copy.deepcopy(template)
        (template.get("metadata") or {}).get("labels", {}).pop(TEMPLATE_HASH, None)
        return _semantic(template)
    return bool(without_hash(first) == without_hash(second))


def round_half_away(value: float) -> int:
    """`integer.RoundToInt32` (math.Round)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _annotation_int(obj: Obj, key: str) -> int | None:
    value = (obj["metadata"].get("annotations") or {}).get(key)
    return int(value) if value is not None and value.isdigit() and int(value) <= 2**31 - 1 else None


def revision_of(rs: Obj) -> int:
    """`deploymentutil.Revision` (0 when absent or not a number)."""
    value = (rs["metadata"].get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _spec_replicas(rs: Obj | None) -> int:
    return 0 if rs is None else replicas_of(rs)


def _status_count(rs: Obj | None, field: str) -> int:
    return 0 if rs is None else int((rs.get("status") or {}).get(field) or 0)


def _by_creation(rs: Obj) -> tuple[str, str]:
    """`ReplicaSetsByCreationTimestamp` (RFC 3339 in UTC sorts as time; then by name)."""
    return str(rs["metadata"].get("creationTimestamp") or ""), rs["metadata"]["name"]


def is_rolling_update(d: Obj) -> bool:
    return bool(((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate")


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """`ResolveFenceposts`: surge rounded up, unavailable rounded down; never both 0."""
    surge = scaled_value(0 if max_surge is None else max_surge, desired, True)
    unavailable = scaled_value(0 if max_unavailable is None else max_unavailable, desired, False)
    return surge, (1 if surge == 0 and unavailable == 0 else unavailable)


def _rolling(d: Obj) -> Obj:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(_rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas_of(d))[0]


def max_unavailable(d: Obj) -> int:
    replicas = replicas_of(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(_rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas)[1],
               replicas)


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """`NewRSNewReplicas`: how far the new ReplicaSet may grow now (surge for RollingUpdate, all for Recreate)."""
    replicas = replicas_of(d)
    if not is_rolling_update(d):
        return replicas
    surge = scaled_value(_rolling(d).get("maxSurge"), replicas, True)
    current = sum(_spec_replicas(rs) for rs in all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return _spec_replicas(new_rs)
    return _spec_replicas(new_rs) + min(max_total - current, replicas - _spec_replicas(new_rs))


def condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def new_condition(kind: str, state: str, reason: str, message: str) -> Obj:
    stamp = now_rfc3339()
    return {"type": kind, "status": state, "lastUpdateTime": stamp, "lastTransitionTime": stamp, "reason": reason,
            "message": message}


def set_condition(status: Obj, wanted: Obj) -> None:
    """`SetDeploymentCondition`: unchanged if status and reason are the same; transition time kept if the status is."""
    current = condition(status, wanted["type"])
    if current is not None and current["status"] == wanted["status"] and current.get("reason") == wanted["reason"]:
        return
    if current is not None and current["status"] == wanted["status"]:
        wanted = {**wanted, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, wanted["type"])
    status["conditions"] = [*(status.get("conditions") or []), wanted]


def remove_condition(status: Obj, kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Obj) -> bool:
    deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and deadline != 2**31 - 1


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}

    def count(of: Obj, field: str) -> int:
        return int(of.get(field) or 0)

    return (count(status, "updatedReplicas") > count(old, "updatedReplicas")
            or count(status, "replicas") - count(status, "updatedReplicas")
            < count(old, "replicas") - count(old, "updatedReplicas")
            or count(status, "readyReplicas") > count(old, "readyReplicas")
            or count(status, "availableReplicas") > count(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: Obj) -> bool:
    if not has_progress_deadline(d):
        return False
    progressing = condition(status, "Progressing")
    if progressing is None or progressing.get("reason") == "NewReplicaSetAvailable":
        return False
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(progressing.get("lastUpdateTime"))
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    return since is not None and since.timestamp() + deadline < datetime.now(UTC).timestamp()


def terminating_replicas(all_rss: list[Obj | None]) -> int | None:
    """`GetTerminatingReplicaCountForReplicaSets`."""
    total = 0
    for rs in all_rss:
        if rs is None:
            continue
        status = rs.get("status") or {}
        if "terminatingReplicas" not in status:
            if not status.get("observedGeneration"):
                continue
            return None
        total += int(status["terminatingReplicas"])
    return total


def calculate_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> Obj:
    """`calculateStatus` (sync.go), zero counts left out as the API's JSON leaves them out."""
    available = sum(_status_count(rs, "availableReplicas") for rs in all_rss)
    total = sum(_spec_replicas(rs) for rs in all_rss)
    old = d.get("status") or {}
    status: Obj = {"observedGeneration": d["metadata"].get("generation", 1)}
    for field, count in (("replicas", sum(_status_count(rs, "replicas") for rs in all_rss)),
                         ("updatedReplicas", _status_count(new_rs, "replicas")),
                         ("readyReplicas", sum(_status_count(rs, "readyReplicas") for rs in all_rss)),
                         ("availableReplicas", available), ("unavailableReplicas", max(total - available, 0))):
        if count:
            status[field] = count
    terminating = terminating_replicas(all_rss)
    if terminating is not None:
        status["terminatingReplicas"] = terminating
    if "collisionCount" in old:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", "MinimumReplicasAvailable",
                                            "Deployment has minimum availability."))
    else:
        set_condition(status, new_condition("Available", "False", "MinimumReplicasUnavailable",
                                            "Deployment does not have minimum availability."))
    return status


def _active(rss: list[Obj | None]) -> list[Obj]:
    """`FilterActiveReplicaSets`."""
    return [rs for rs in rss if rs is not None and _spec_replicas(rs) > 0]


class DeploymentController:
    def __init__(self, api: ControllerApi) -> None:
        self.api = api
        self._live: Obj = {}  # the Deployment being synced as last read or written (to patch from)

    async def sync(self, cached: Obj) -> None:
        """`syncDeployment`."""
        d = copy.deepcopy(cached)
        self._live = cached
        spec = d.get("spec") or {}
        if spec.get("selector") == {}:  # selects all pods: refused, as the real controller does (no event here)
            if int((d.get("status") or {}).get("observedGeneration") or 0) < d["metadata"].get("generation", 1):
                d.setdefault("status", {})["observedGeneration"] = d["metadata"].get("generation", 1)
                await self._update_status(d)
            return
        rs_list = self.api.cache.controlled(d, REPLICASETS)
        if is_terminating(d):
            new_rs, old_rss = await self._all_replicasets(d, rs_list, create=False)
            await self._sync_status(d, [*old_rss, new_rs], new_rs)
            return
        await self._check_paused_conditions(d)
        if spec.get("paused") or await self._is_scaling_event(d, rs_list):
            await self._sync_scale(d, rs_list)
        elif is_rolling_update(d):
            await self._rollout_rolling(d, rs_list)
        else:
            await self._rollout_recreate(d, rs_list)

    # -- writes ------------------------------------------------------------------------------------

    async def _update_status(self, d: Obj) -> None:
        """`UpdateStatus` of the Deployment: its status and annotations (the revision)."""
        live = self._live
        patch: Obj = {}
        if d.get("status") != live.get("status"):
            patch["status"] = status_patch(live.get("status") or {}, d.get("status") or {})
        annotations, live_annotations = d["metadata"].get("annotations"), live["metadata"].get("annotations")
        if annotations != live_annotations:
            patch["metadata"] = {"annotations": status_patch(live_annotations or {}, annotations or {})}
        if patch:
            written = await self.api.patch(DEPLOYMENTS, live, patch, subresource="status")
            if written is not None:
                self._live = written

    async def _scale_rs(self, rs: Obj, new_scale: int, d: Obj, force: bool = False) -> tuple[bool, Obj]:
        """`scaleReplicaSet`: the size and the desired/max replicas annotations; (scaled, the ReplicaSet)."""
        if not force and _spec_replicas(rs) == new_scale:
            return False, rs
        size_changes = _spec_replicas(rs) != new_scale
        annotations = {DESIRED_REPLICAS: str(replicas_of(d)), MAX_REPLICAS: str(replicas_of(d) + max_surge(d))}
        current = rs["metadata"].get("annotations") or {}
        if not size_changes and all(current.get(k) == v for k, v in annotations.items()):
            return False, rs
        written = await self.api.patch(REPLICASETS, rs, {"metadata": {"annotations": annotations},
                                                         "spec": {"replicas": new_scale}})
        return size_changes, written if written is not None else rs

    # -- revisions and the new ReplicaSet ----------------------------------------------------------

    def _find_new(self, d: Obj, rs_list: list[Obj]) -> Obj | None:
        template = (d.get("spec") or {}).get("template") or {}
        for rs in sorted(rs_list, key=_by_creation):
            if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
                return rs
        return None

    async def _all_replicasets(self, d: Obj, rs_list: list[Obj], *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """`getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created if asked) and all old ones."""
        new_rs = self._find_new(d, rs_list)
        old_rss = [rs for rs in rs_list if new_rs is None or uid_of(rs) != uid_of(new_rs)]
        new_revision = str(max((revision_of(rs) for rs in old_rss), default=0) + 1)
        if new_rs is not None:
            return await self._sync_new_rs(d, new_rs, new_revision), old_rss
        if not create:
            return None, old_rss
        return await self._create_new_rs(d, old_rss, new_revision), old_rss

    def _new_rs_annotations(self, d: Obj, rs: Obj, new_revision: str, exists: bool) -> bool:
        """`SetNewReplicaSetAnnotations` on `rs` (in place); True if they changed."""
        annotations = rs["metadata"].setdefault("annotations", {})
        changed = False
        for key, value in (d["metadata"].get("annotations") or {}).items():
            if key not in NOT_COPIED and annotations.get(key) != value:
                annotations[key] = value
                changed = True
        old_revision = annotations.get(REVISION)
        if old_revision is not None and not old_revision.lstrip("-").isdigit():
            return False
        old = int(old_revision) if old_revision is not None else 0
        if old < int(new_revision):
            annotations[REVISION] = new_revision
            changed = True
            if old_revision is not None:
                history = annotations.get(REVISION_HISTORY, "")
                revisions = history.split(",") if history else []
                while revisions and len(",".join([*revisions, old_revision])) > MAX_REVISION_HISTORY_CHARS:
                    revisions.pop(0)
                annotations[REVISION_HISTORY] = ",".join([*revisions, old_revision])
        if not exists:
            for key, value in ((DESIRED_REPLICAS, str(replicas_of(d))),
                               (MAX_REPLICAS, str(replicas_of(d) + max_surge(d)))):
                if annotations.get(key) != value:
                    annotations[key] = value
                    changed = True
        return changed

    async def _sync_new_rs(self, d: Obj, new_rs: Obj, new_revision: str) -> Obj:
        rs = copy.deepcopy(new_rs)
        min_ready = (d.get("spec") or {}).get("minReadySeconds", 0)
        if self._new_rs_annotations(d, rs, new_revision, exists=True) or \
                (rs.get("spec") or {}).get("minReadySeconds", 0) != min_ready:
            written = await self.api.patch(REPLICASETS, new_rs, {
                "metadata": {"annotations": rs["metadata"]["annotations"]}, "spec": {"minReadySeconds": min_ready}})
            return written if written is not None else rs
        needs_update = self._set_revision(d, (rs["metadata"].get("annotations") or {}).get(REVISION, ""))
        status = d.setdefault("status", {})
        if has_progress_deadline(d) and condition(status, "Progressing") is None:
            set_condition(status, new_condition("Progressing", "True", "FoundNewReplicaSet",
                                                f'Found new replica set "{rs["metadata"]["name"]}"'))
            needs_update = True
        if needs_update:
            await self._update_status(d)
        return rs

    def _set_revision(self, d: Obj, revision: str) -> bool:
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(REVISION) == revision:
            return False
        annotations[REVISION] = revision
        return True

    async def _create_new_rs(self, d: Obj, old_rss: list[Obj], new_revision: str) -> Obj | None:
        spec = d.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        status = d.setdefault("status", {})
        pod_hash = template_hash(template, status.get("collisionCount"))
        template.setdefault("metadata", {})["labels"] = {**(template["metadata"].get("labels") or {}),
                                                         TEMPLATE_HASH: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), TEMPLATE_HASH: pod_hash}
        name = d["metadata"]["name"]
        if len(name) > MAX_NAME_LENGTH - 1 - len(pod_hash):  # generateReplicaSetName
            name = name[:MAX_NAME_LENGTH - 1 - len(pod_hash)]
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-{pod_hash}", "namespace": object_key(d)[0],
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [owner_reference(d, "Deployment")]},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template},
        }
        new_rs["spec"]["replicas"] = new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        self._new_rs_annotations(d, new_rs, new_revision, exists=False)
        created = await self.api.create(REPLICASETS, new_rs)
        already_existed = created is None
        if created is None:  # 409: a ReplicaSet of that name exists
            existing = self.api.cache.get(REPLICASETS, object_key(new_rs))
            if existing is not None and (controller_ref(existing) or {}).get("uid") == uid_of(d) and \
                    equal_ignore_hash((existing.get("spec") or {}).get("template") or {}, spec.get("template") or {}):
                created = existing
            else:  # a hash collision: the next sync tries another name
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                await self._update_status(d)
                return None
        needs_update = self._set_revision(d, new_revision)
        if not already_existed and has_progress_deadline(d):
            set_condition(status, new_condition("Progressing", "True", "NewReplicaSetCreated",
                                                f'Created new replica set "{created["metadata"]["name"]}"'))
            needs_update = True
        if needs_update:
            await self._update_status(d)
        return created

    # -- sync: scaling events and paused Deployments ----------------------------------------------

    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self._all_replicasets(d, rs_list, create=False)
        for rs in _active([*old_rss, new_rs]):
            desired = _annotation_int(rs, DESIRED_REPLICAS)
            if desired is not None and desired != replicas_of(d):
                return True
        return False

    async def _sync_scale(self, d: Obj, rs_list: list[Obj]) -> None:
        """`sync`: proportional scaling; a paused Deployment's old ReplicaSets cleaned up."""
        new_rs, old_rss = await self._all_replicasets(d, rs_list, create=False)
        await self._scale(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(old_rss, d)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)

    async def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """`scale`: one active ReplicaSet takes all replicas; a saturated new one leaves the old ones none;
        otherwise (RollingUpdate) the difference is shared in proportion to their sizes."""
        replicas = replicas_of(d)
        active_or_latest = self._active_or_latest(new_rs, old_rss)
        if active_or_latest is not None:
            if _spec_replicas(active_or_latest) != replicas:
                await self._scale_rs(active_or_latest, replicas, d)
            return
        if new_rs is not None and self._is_saturated(d, new_rs):
            for old in _active(list(old_rss)):
                await self._scale_rs(old, 0, d)
            return
        if not is_rolling_update(d):
            return
        all_rss = _active([*old_rss, new_rs])
        allowed = replicas + max_surge(d) if replicas > 0 else 0
        to_add = allowed - sum(_spec_replicas(rs) for rs in all_rss)
        if to_add > 0:  # ReplicaSetsBySizeNewer: larger first, then newer
            all_rss.sort(key=_by_creation, reverse=True)
            all_rss.sort(key=_spec_replicas, reverse=True)
        elif to_add < 0:  # ReplicaSetsBySizeOlder: larger first, then older
            all_rss.sort(key=_by_creation)
            all_rss.sort(key=_spec_replicas, reverse=True)
        added = 0
        sizes: dict[str, int] = {}
        for rs in all_rss:
            if to_add != 0:
                proportion = self._proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = _spec_replicas(rs) + proportion
                added += proportion
            else:
                sizes[rs["metadata"]["name"]] = _spec_replicas(rs)
        for index, rs in enumerate(all_rss):
            name = rs["metadata"]["name"]
            if index == 0 and to_add != 0:  # leftovers to the largest
                sizes[name] = max(sizes[name] + to_add - added, 0)
            await self._scale_rs(rs, sizes[name], d, force=True)

    def _active_or_latest(self, new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
        """`FindActiveOrLatest`."""
        if new_rs is None and not old_rss:
            return None
        newest_first = sorted(old_rss, key=_by_creation, reverse=True)
        active = _active([*newest_first, new_rs])
        if not active:
            return new_rs if new_rs is not None else newest_first[0]
        return active[0] if len(active) == 1 else None

    def _is_saturated(self, d: Obj, rs: Obj) -> bool:
        replicas = replicas_of(d)
        return (_spec_replicas(rs) == replicas and _annotation_int(rs, DESIRED_REPLICAS) == replicas
                and _status_count(rs, "availableReplicas") == replicas)

    def _proportion(self, rs: Obj, d: Obj, to_add: int, added: int) -> int:
        """`GetReplicaSetProportion` with `getReplicaSetFraction`."""
        if _spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        if replicas_of(d) == 0:
            fraction = -_spec_replicas(rs)
        else:
            before = _annotation_int(rs, MAX_REPLICAS) or int((d.get("status") or {}).get("replicas") or 0)
            if before == 0:
                fraction = 0
            else:
                size = _spec_replicas(rs) * (replicas_of(d) + max_surge(d)) / before
                fraction = round_half_away(size) - _spec_replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    async def _cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """`cleanupDeployment`: delete the oldest empty ReplicaSets beyond `revisionHistoryLimit`."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None or limit == 2**31 - 1:
            return
        cleanable = sorted((rs for rs in old_rss if not is_terminating(rs)),
                           key=lambda rs: (revision_of(rs), *_by_creation(rs)))
        for rs in cleanable[:max(len(cleanable) - int(limit), 0)]:
            status = rs.get("status") or {}
            if int(status.get("replicas") or 0) != 0 or _spec_replicas(rs) != 0 or \
                    int(rs["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0):
                continue
            await self.api.delete(REPLICASETS, rs)

    async def _sync_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """`syncDeploymentStatus`."""
        status = calculate_status(all_rss, new_rs, d)
        if status != d.get("status"):
            d["status"] = status
            await self._update_status(d)

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        progressing = condition(status, "Progressing")
        if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
            return
        paused = bool((d.get("spec") or {}).get("paused"))
        paused_shown = progressing is not None and progressing.get("reason") == "DeploymentPaused"
        if paused and not paused_shown:
            set_condition(status, new_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"))
        elif not paused and paused_shown:
            set_condition(status, new_condition("Progressing", "Unknown", "DeploymentResumed",
                                                "Deployment is resumed"))
        else:
            return
        await self._update_status(d)

    # -- rollouts ----------------------------------------------------------------------------------

    async def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """`syncRolloutStatus`: the status with the Progressing condition of the rollout."""
        status = calculate_status(all_rss, new_rs, d)
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = condition(d.get("status") or {}, "Progressing")
        complete = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                    and current is not None and current.get("reason") == "NewReplicaSetAvailable")
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None else \
            f'Deployment "{d["metadata"]["name"]}"'
        if has_progress_deadline(d) and not complete:
            if deployment_complete(d, status):
                set_condition(status, new_condition("Progressing", "True", "NewReplicaSetAvailable",
                                                    f"{subject} has successfully progressed."))
            elif deployment_progressing(d, status):
                wanted = new_condition("Progressing", "True", "ReplicaSetUpdated", f"{subject} is progressing.")
                if current is not None:
                    if current["status"] == "True":
                        wanted["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, wanted)
            elif deployment_timed_out(d, status):
                set_condition(status, new_condition("Progressing", "False", "ProgressDeadlineExceeded",
                                                    f"{subject} has timed out progressing."))
        remove_condition(status, "ReplicaFailure")
        if status != d.get("status"):
            d["status"] = status
            await self._update_status(d)

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        """`rolloutRolling`: scale the new ReplicaSet up within maxSurge, then the old ones down within
        maxUnavailable; once complete, clean up old revisions."""
        new_rs, old_rss = await self._all_replicasets(d, rs_list, create=True)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        if new_rs is None:
            return
        scaled_up, new_rs = await self._reconcile_new_rs(all_rss, new_rs, d)
        if scaled_up:
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if await self._reconcile_old_rss(all_rss, _active(list(old_rss)), new_rs, d):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(d, all_rss, new_rs)

    async def _reconcile_new_rs(self, all_rss: list[Obj | None], new_rs: Obj, d: Obj) -> tuple[bool, Obj]:
        replicas = replicas_of(d)
        if _spec_replicas(new_rs) == replicas:
            return False, new_rs
        if _spec_replicas(new_rs) > replicas:
            return await self._scale_rs(new_rs, replicas, d)
        return await self._scale_rs(new_rs, new_rs_new_replicas(d, [rs for rs in all_rss if rs], new_rs), d)

    async def _reconcile_old_rss(self, all_rss: list[Obj | None], old_rss: list[Obj], new_rs: Obj, d: Obj) -> bool:
        """`reconcileOldReplicaSets`: unhealthy old replicas first, then old ones down to minAvailable."""
        if sum(_spec_replicas(rs) for rs in old_rss) == 0:
            return False
        all_pods = sum(_spec_replicas(rs) for rs in all_rss)
        min_available = replicas_of(d) - max_unavailable(d)
        new_unavailable = _spec_replicas(new_rs) - _status_count(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old_rss, cleaned = await self._cleanup_unhealthy(old_rss, d, max_scaled_down)
        scaled_down = await self._scale_down_old_for_rolling([*old_rss, new_rs], old_rss, d)
        return cleaned + scaled_down > 0

    async def _cleanup_unhealthy(self, old_rss: list[Obj], d: Obj, max_cleanup: int) -> tuple[list[Obj], int]:
        """`cleanupUnhealthyReplicas`: old ReplicaSets lose their unavailable replicas first, oldest first."""
        old_rss = sorted(old_rss, key=_by_creation)
        total = 0
        for index, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            available = _status_count(rs, "availableReplicas")
            if _spec_replicas(rs) == 0 or _spec_replicas(rs) == available:
                continue
            count = min(max_cleanup - total, _spec_replicas(rs) - available)
            _, old_rss[index] = await self._scale_rs(rs, _spec_replicas(rs) - count, d)
            total += count
        return old_rss, total

    async def _scale_down_old_for_rolling(self, all_rss: list[Obj], old_rss: list[Obj], d: Obj) -> int:
        """`scaleDownOldReplicaSetsForRollingUpdate`: as many old replicas as the available ones above
        minAvailable, oldest ReplicaSet first."""
        min_available = replicas_of(d) - max_unavailable(d)
        available = sum(_status_count(rs, "availableReplicas") for rs in all_rss)
        if available <= min_available:
            return 0
        target = available - min_available
        total = 0
        for rs in sorted(old_rss, key=_by_creation):
            if total >= target:
                break
            if _spec_replicas(rs) == 0:
                continue
            count = min(_spec_replicas(rs), target - total)
            await self._scale_rs(rs, _spec_replicas(rs) - count, d)
            total += count
        return total

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> None:
        """`rolloutRecreate`: old ReplicaSets to 0, wait until none of their pods runs, then the new one up."""
        new_rs, old_rss = await self._all_replicasets(d, rs_list, create=False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled_down = False
        for rs in _active(list(old_rss)):
            scaled, _ = await self._scale_rs(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down or self._old_pods_running(new_rs, old_rss):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._all_replicasets(d, rs_list, create=True)
            all_rss = [*old_rss, new_rs]
        if new_rs is not None:
            await self._scale_rs(new_rs, replicas_of(d), d)
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(d, all_rss, new_rs)

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        """`oldPodsRunning`: an old ReplicaSet counts pods, or a pod of one is not Succeeded/Failed."""
        if sum(_status_count(rs, "replicas") for rs in old_rss) > 0:
            return True
        return any(not is_terminal(pod) for rs in old_rss if new_rs is None or uid_of(rs) != uid_of(new_rs)
                   for pod in self.api.cache.controlled(rs, PODS))
