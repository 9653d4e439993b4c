"""Which pods a ReplicaSet deletes first: k8s.io/kubernetes v1.37.2 `pkg/controller/replicaset/replica_set.go`
`getPodsToDelete`, `getPodsRankedByRelatedPodsOnSameNode` and `pkg/controller/controller_utils.go`
`ActivePodsWithRanks.Less` (the PodDeletionCost gate is on by default)."""

from __future__ import annotations

import functools
import math
from collections import Counter
from datetime import datetime

from milvus_rg_sandbox.kube.builtin_validation import parse_deletion_cost

from .common import Obj, is_active, parse_time, phase, pod_is_ready, ready_since

PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}  # controller_utils.go podPhaseToOrdinal (others: 0)


def deletion_cost(pod: Obj) -> int:
    """`helper.GetDeletionCostFromPodAnnotations`: 0 when absent or invalid."""
    return parse_deletion_cost(pod["metadata"].get("annotations") or {}) or 0


def max_container_restarts(pod: Obj) -> tuple[int, int]:
    """`maxContainerRestarts`: (regular containers, restartable init containers: sidecars)."""
    status = pod.get("status") or {}
    regular = max((int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []), default=0)
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    sidecar = max((int(c.get("restartCount") or 0) for c in status.get("initContainerStatuses") or []
                   if c.get("name") in sidecars), default=0)
    return regular, sidecar


def _log_rank(moment: datetime, now: datetime) -> int:
    """`logarithmicRankDiff`'s rank of one time: log2 of its age in nanoseconds, -1 for no age."""
    age_ns = round((now - moment).total_seconds() * 1e9)
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _time_less(first: datetime | None, second: datetime | None, first_uid: str, second_uid: str,
               now: datetime) -> bool | None:
    """Rules 6 and 8: the later time first, on a logarithmic scale with the uid as the tie-break; a zero time
    counts as the latest (`afterOrZero`). None: the same time."""
    if first == second:
        return None
    if first is None or second is None:
        return first is None
    rank_diff = _log_rank(first, now) - _log_rank(second, now)
    if rank_diff == 0:
        return first_uid < second_uid
    return rank_diff < 0


def deletion_less(first: Obj, second: Obj, first_rank: int, second_rank: int, now: datetime) -> bool:
    """`ActivePodsWithRanks.Less`: True if `first` should be deleted before `second`."""
    node_first = (first.get("spec") or {}).get("nodeName") or ""
    node_second = (second.get("spec") or {}).get("nodeName") or ""
    if node_first != node_second and (not node_first or not node_second):  # 1. unassigned < assigned
        return not node_first
    phase_first, phase_second = PHASE_ORDINAL.get(phase(first), 0), PHASE_ORDINAL.get(phase(second), 0)
    if phase_first != phase_second:  # 2. Pending < Unknown < Running
        return phase_first < phase_second
    ready_first, ready_second = pod_is_ready(first), pod_is_ready(second)
    if ready_first != ready_second:  # 3. not ready < ready
        return not ready_first
    cost_first, cost_second = deletion_cost(first), deletion_cost(second)
    if cost_first != cost_second:  # 4. lower pod-deletion-cost first
        return cost_first < cost_second
    if first_rank != second_rank:  # 5. more pods of the same owner on its node first
        return first_rank > second_rank
    uid_first, uid_second = str(first["metadata"].get("uid")), str(second["metadata"].get("uid"))
    if ready_first and ready_second:  # 6. Ready for less time first
        by_ready = _time_less(ready_since(first), ready_since(second), uid_first, uid_second, now)
        if by_ready is not None:
            return by_ready
    restarts_first, restarts_second = max_container_restarts(first), max_container_restarts(second)
    if restarts_first != restarts_second:  # 7. more restarts first (regular containers, then sidecars)
        return restarts_first > restarts_second
    by_creation = _time_less(parse_time(first["metadata"].get("creationTimestamp")),  # 8. newer first
                             parse_time(second["metadata"].get("creationTimestamp")), uid_first, uid_second, now)
    return bool(by_creation)


def pods_to_delete(pods: list[Obj], related: list[Obj], count: int, now: datetime) -> list[Obj]:
    """`getPodsToDelete`: the first `count` of `pods` in deletion order; `related` are the active pods of every
    ReplicaSet of the same owner, counted per node for rule 5 (`getPodsRankedByRelatedPodsOnSameNode`)."""
    if count >= len(pods):
        return list(pods)
    on_node = Counter((p.get("spec") or {}).get("nodeName") or "" for p in related if is_active(p))
    rank = {id(pod): on_node[(pod.get("spec") or {}).get("nodeName") or ""] for pod in pods}

    def compare(first: Obj, second: Obj) -> int:
        if deletion_less(first, second, rank[id(first)], rank[id(second)], now):
            return -1
        return 1 if deletion_less(second, first, rank[id(second)], rank[id(first)], now) else 0

    return sorted(pods, key=functools.cmp_to_key(compare))[:count]
