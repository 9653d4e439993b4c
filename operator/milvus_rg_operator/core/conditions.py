"""Status of pools and groups as plain dicts in the CRDs' camelCase shape.

Everything here is a pure function of observations, and `merge_conditions` keeps lastTransitionTime
when a condition's status did not change, so a steady state renders an identical status: no write.
"""

from __future__ import annotations

import collections
import datetime
import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from milvus_rg_operator.core.balance import NodeLoad
from milvus_rg_operator.core.configs import MilvusPlan
from milvus_rg_operator.core.labels import LABEL_RESOURCE_GROUP, pod_placement
from milvus_rg_operator.core.names import label_value, resolve_group_name
from milvus_rg_operator.core.replicas import STALLING_PLACEMENTS
from milvus_rg_operator.core.scaling import ScalePlan
from milvus_rg_operator.core.serving import GroupServing
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    GroupConfig,
    MilvusGroup,
    MilvusState,
    PodState,
    Problem,
)
from milvus_rg_operator.core.workloads import WorkloadState

READY, PROGRESSING, DEGRADED, PAUSED = "Ready", "Progressing", "Degraded", "Paused"
BALANCED = "Balanced"  # a ResourceGroup's: how evenly its replicas spread their data (core.balance)
# kstatus (Flux, cli-utils) reads these two: Reconciling while work is in flight, Stalled when the spec cannot be
# applied without a change by someone (Reconciling mirrors Progressing; Stalled implies Degraded).
RECONCILING, STALLED = "Reconciling", "Stalled"
DEGRADING_BLOCKS = frozenset({"ManagementAPIUnavailable", "ReplicasNeedNodes", "DrainStalled", "DrainUnsupported"})
# Blocks that wait for someone to change something (the spec, the Milvus version, a timed-out drain), not for time.
STALLING_BLOCKS = frozenset({"ReplicasNeedNodes", "DrainStalled", "DrainUnsupported", "GroupDeletionBlocked"})
# Milvus failures a retry cannot cure.
STALLING_MILVUS_FAILURES = frozenset({"UnsupportedMilvusVersion"})
MEMBER_STATES = {"serving": "Serving", "pending": "Pending", "draining": "Draining", "joining": "Joining",
                 "terminating": "Terminating"}


@dataclass(frozen=True)
class PlannedCondition:
    """A condition as a pass decides it (`merge_conditions` turns it into the status entry)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    observed_generation: int


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def merge_conditions(old: Sequence[Mapping[str, Any]], new: Sequence[PlannedCondition],
                     now_iso: str) -> list[dict[str, Any]]:
    merged = []
    for condition in new:
        previous = find(old, condition.type)
        changed = previous is None or previous.get("status") != condition.status
        merged.append({
            "type": condition.type, "status": condition.status, "reason": condition.reason,
            "message": condition.message, "observedGeneration": condition.observed_generation,
            "lastTransitionTime": now_iso if changed or previous is None
            else previous.get("lastTransitionTime", now_iso),
        })
    return merged


Verdict = tuple[bool, str, str]  # (status, reason, message)


NOT_STALLED: Verdict = (False, "AsExpected", "no problem that needs a change")


def _standard(generation: int, *, ready: Verdict, progressing: Verdict, degraded: Verdict, paused: bool = False,
              reconciling: Verdict | None = None, stalled: Verdict = NOT_STALLED) -> list[PlannedCondition]:
    """The conditions every object carries. Reconciling is Progressing unless given (a retried failure is not
    progress, but work still in flight); Stalled says the spec cannot be applied until someone changes
    something (kstatus then reports Failed instead of waiting)."""
    def make(type_: str, value: Verdict) -> PlannedCondition:
        return PlannedCondition(type_, "True" if value[0] else "False", value[1], value[2], generation)

    return [make(READY, ready), make(PROGRESSING, progressing), make(DEGRADED, degraded),
            make(PAUSED, (paused, "Paused" if paused else "Active",
                          "milvusrg.io/paused is \"true\": no changes are made" if paused else "reconciling")),
            make(RECONCILING, progressing if reconciling is None else reconciling), make(STALLED, stalled)]


def paused_pool_conditions(generation: int) -> list[PlannedCondition]:
    return _standard(generation, ready=(False, "Paused", "reconciliation is paused"),
                     progressing=(False, "Paused", "reconciliation is paused"),
                     degraded=(False, "Paused", "reconciliation is paused"), paused=True)


def _problem_text(problems: Sequence[Problem]) -> str:
    return "; ".join(f"{p.kind} {p.name}: {p.field}: {p.message}" for p in problems)


def validation_failed_conditions(problems: Sequence[Problem], generation: int) -> list[PlannedCondition]:
    text = _problem_text(problems)
    return _standard(generation, ready=(False, "ValidationFailed", "nothing applied: " + text),
                     progressing=(False, "ValidationFailed", "nothing applied until the problem is fixed"),
                     degraded=(True, "ValidationFailed", text), stalled=(True, "ValidationFailed", text))


def group_problem_conditions(own: Sequence[Problem], all_problems: Sequence[Problem],
                             generation: int) -> list[PlannedCondition]:
    if own:
        text = "; ".join(f"{p.field}: {p.message}" for p in own)
        return _standard(generation, ready=(False, "ValidationFailed", text),
                         progressing=(False, "ValidationFailed", "nothing applied until the problem is fixed"),
                         degraded=(True, "ValidationFailed", text), stalled=(True, "ValidationFailed", text))
    text = "the pool has problems, nothing applied: " + _problem_text(all_problems)
    return _standard(generation, ready=(False, "PoolInvalid", text),
                     progressing=(False, "PoolInvalid", text), degraded=(False, "PoolInvalid", text),
                     stalled=(True, "PoolInvalid", text))


def milvus_failed_conditions(text: str, reason: str, generation: int) -> list[PlannedCondition]:
    """The pool cannot work with its Milvus (MilvusUnavailable, MilvusError, UnsupportedMilvusVersion); its
    groups show the same."""
    stalled = reason in STALLING_MILVUS_FAILURES
    return _standard(generation, ready=(False, reason, text),
                     progressing=(False, reason, "retrying with backoff; no scale-in while Milvus cannot "
                                                 "confirm where nodes are"),
                     degraded=(True, reason, text),
                     reconciling=(not stalled, reason, "waiting for a Milvus the operator can work with"
                                  if stalled else "retrying with backoff"),
                     stalled=(True, reason, text) if stalled else NOT_STALLED)


def group_satisfied(group: DeclaredGroup, milvus: MilvusState) -> bool:
    found = milvus.groups.get(resolve_group_name(group))
    return found is not None and group.requests <= len(found.node_ids) <= group.effective_limits


def groups_satisfied(groups: Sequence[DeclaredGroup], milvus: MilvusState) -> bool:
    return all(group_satisfied(g, milvus) for g in groups if not g.deleting)


MEMBERS_SHOWN = 20  # pods listed in a status (those needing attention); the rest are only counted
QUIET_STATES = frozenset({"Serving", "Pending"})  # member states that need no attention


def member_state(pod: PodState, node_id: int | None, state: str) -> str:
    """The status word for a pod's placement (`labels.pod_placement`'s state)."""
    if node_id is not None or pod.terminating:
        return MEMBER_STATES[state]
    return "Unregistered" if pod.ready else "Joining"


def pool_members(pods: Sequence[PodState], milvus: MilvusState, pending_group: str,
                 draining: Collection[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(counts per group and state, the first MEMBERS_SHOWN pods needing attention by ordinal, how many
    more need attention): the pool's status stays bounded however many pods there are."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    attention: list[tuple[tuple[bool, int, str], dict[str, Any]]] = []
    for pod in pods:
        group, node_id, state = pod_placement(pod, milvus, pending_group, draining)
        word = member_state(pod, node_id, state)
        counts[(group or "", word)] += 1
        if word in QUIET_STATES:
            continue
        member: dict[str, Any] = {"pod": pod.name, "state": word}
        if pod.ordinal is not None:
            member["ordinal"] = pod.ordinal
        if node_id is not None:
            member["nodeId"] = node_id
        if group is not None:
            member["group"] = group
        attention.append((pod.sort_key, member))
    shown = [member for _, member in heapq.nsmallest(MEMBERS_SHOWN, attention, key=lambda item: item[0])]
    count_rows = [{"group": group, "state": word, "count": n} if group else {"state": word, "count": n}
                  for (group, word), n in sorted(counts.items())]
    return count_rows, shown, len(attention) - len(shown)


def listed(names: Sequence[str], limit: int = MEMBERS_SHOWN) -> str:
    """`a, b, c` or, past `limit` names, `a, b, ... and N more`: messages stay bounded too."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def pool_status(pool: DeclaredPool, groups: Sequence[DeclaredGroup], desired_replicas: int,
                sts: WorkloadState, pods: Sequence[PodState], milvus: MilvusState, scale: ScalePlan,
                milvus_plan: MilvusPlan, *, generation: int, previous: Mapping[str, Any], now: float,
                scale_down: Mapping[str, Any], converged: bool,
                serving_wait: tuple[str, str] | None = None) -> dict[str, Any]:
    """`serving_wait`: what replica placement or data balance still waits for (core.serving)."""
    draining = {d.pod for d in scale.drains}
    if converged:
        ready = (True, "Converged", f"{desired_replicas} query nodes, every group at its requests")
        progressing = (False, "Converged", "nothing to do")
    else:
        reason, message = _progress(desired_replicas, sts, scale, milvus_plan, groups, milvus, serving_wait)
        ready = (False, reason, message)
        progressing = (True, reason, message)
    degraded = (False, "AsExpected", "no problem")
    blocked_groups = {g: why.message for g, why in milvus_plan.waiting.items() if why.reason in STALLING_BLOCKS}
    if scale.blocked_reason in DEGRADING_BLOCKS:
        degraded = (True, scale.blocked_reason or "", scale.blocked or "")
    elif blocked_groups:
        degraded = (True, "GroupDeletionBlocked",
                    "; ".join(f"cannot drop {g}: {why}" for g, why in sorted(blocked_groups.items())))
    elif stuck := stuck_pods(pool, pods, milvus, now):
        degraded = (True, "PodsNotReady",
                    f"not Ready or not registered in Milvus after {pool.pod_ready_timeout_seconds:.0f}s "
                    f"(not counted as capacity): {listed(stuck)}")
    conditions = _standard(generation, ready=ready, progressing=progressing, degraded=degraded,
                           stalled=degraded if degraded[0] and degraded[1] in STALLING_BLOCKS else NOT_STALLED)
    counts, attention, omitted = pool_members(pods, milvus, pool.pending_group, draining)
    shown_groups = {resolve_group_name(d) for d in groups} | {pool.pending_group}
    return {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous.get("conditions", []), conditions, iso(now)),
        "desiredReplicas": desired_replicas,
        "currentReplicas": sts.replicas,
        "readyReplicas": sts.ready_replicas,
        "milvusVersion": milvus.version,
        "memberCounts": counts,
        "attention": attention,
        "attentionOmitted": omitted,
        "scaleDown": dict(scale_down),
        "groups": [
            {"name": name, "requests": g.config.requests, "limits": g.config.limits, "nodes": len(g.node_ids)}
            for name, g in sorted(milvus.groups.items()) if name in shown_groups
        ],
    }


def stuck_pods(pool: DeclaredPool, pods: Sequence[PodState], milvus: MilvusState, now: float) -> list[str]:
    """Pods that should have joined Milvus by now: never Ready, or Ready without a Milvus node."""
    return [p.name for p in sorted(pods, key=lambda p: p.sort_key)
            if not p.terminating and now - p.created_at > pool.pod_ready_timeout_seconds
            and (not p.ready or milvus.node_of_pod(p.name) is None)]


def _progress(desired: int, sts: WorkloadState, scale: ScalePlan, plan: MilvusPlan,
              groups: Sequence[DeclaredGroup], milvus: MilvusState,
              serving_wait: tuple[str, str] | None = None) -> tuple[str, str]:
    if not plan.empty:
        return "ApplyingConfigs", "writing resource-group configs to Milvus"
    if desired > sts.replicas or (scale.replicas or 0) > sts.replicas:
        return "ScalingOut", f"scaling query nodes {sts.replicas} -> {desired}"
    if scale.blocked:
        return scale.blocked_reason or "ScalingIn", scale.blocked
    if desired < sts.replicas:
        return "ScalingIn", f"scaling query nodes {sts.replicas} -> {desired}"
    if sts.ready_replicas < sts.replicas:
        return "WaitingForPods", f"{sts.ready_replicas}/{sts.replicas} query-node pods ready"
    short = [f"{resolve_group_name(g)} ({len(milvus.groups[resolve_group_name(g)].node_ids)}/{g.requests})"
             for g in groups if not g.deleting and resolve_group_name(g) in milvus.groups
             and not group_satisfied(g, milvus)]
    if short:
        return "WaitingForMilvus", "waiting for Milvus to place nodes: " + listed(short)
    if plan.waiting:
        return "DeletingGroups", "; ".join(f"{g}: {why.message}" for g, why in sorted(plan.waiting.items()))
    if serving_wait is not None:
        return serving_wait
    return "WaitingForMilvus", "waiting for Milvus to converge"


def milvus_config_status(config: GroupConfig) -> dict[str, Any]:
    return {"requests": {"nodeNum": config.requests}, "limits": {"nodeNum": config.limits},
            "transferFrom": list(config.transfer_from), "transferTo": list(config.transfer_to),
            "nodeLabels": dict(config.node_labels)}


PodIndex = Mapping[str, PodState]  # pod name -> pod


def pod_index(pods: Sequence[PodState] | PodIndex) -> PodIndex:
    """Pods by name; build it once per pass and hand it to every `group_status`."""
    return pods if isinstance(pods, Mapping) else {pod.name: pod for pod in pods}


def group_members(name: str, milvus: MilvusState, pods: PodIndex,
                  loads: Mapping[int, NodeLoad] | None = None) -> tuple[list[dict[str, Any]], int]:
    """(the first MEMBERS_SHOWN pods of the group by ordinal, how many more): nodes of the group whose pod
    is in `pods` and runs that node (its newest process), with the data each holds when `loads` is given.
    Costs the group's size, not the pool's."""
    found = milvus.groups.get(name)
    members: list[tuple[tuple[bool, int, str], dict[str, Any]]] = []
    for node_id in found.node_ids if found else ():
        node = milvus.nodes.get(node_id)
        pod = pods.get(node.hostname) if node is not None else None
        newest = milvus.node_of_pod(pod.name) if pod is not None else None
        if pod is not None and newest is not None and newest.node_id == node_id:
            member: dict[str, Any] = {"pod": pod.name, "nodeId": node_id}
            if loads is not None:
                load = loads.get(node_id, NodeLoad())
                member |= {"segments": load.segments, "rows": load.rows, "memoryBytes": load.memory_bytes,
                           "channels": load.channels}
            members.append((pod.sort_key, member))
    shown = [member for _, member in heapq.nsmallest(MEMBERS_SHOWN, members, key=lambda item: item[0])]
    return shown, len(members) - len(shown)


def group_status(group: DeclaredGroup, milvus: MilvusState, pods: Sequence[PodState] | PodIndex, plan: MilvusPlan,
                 *, generation: int, previous: Mapping[str, Any], now: float,
                 serving: GroupServing | None = None) -> dict[str, Any]:
    """`pods` may be the pass's `pod_index(pods)`: then a group's status costs its own size only. `serving`: its
    replica placement and data balance (core.serving)."""
    name = resolve_group_name(group)
    found = milvus.groups.get(name)
    members, omitted = group_members(name, milvus, pod_index(pods), serving.loads if serving else None)
    count = len(found.node_ids) if found else 0
    degraded = (False, "AsExpected", "no problem")
    stalled: Verdict = NOT_STALLED
    if group.deleting:
        blocker = plan.waiting.get(name)
        why = blocker.message if blocker else "dropping"
        ready = (False, "Deleting", why)
        progressing = (True, "Deleting", why)
        if blocker is not None and blocker.reason in STALLING_BLOCKS:
            degraded = (True, blocker.reason, why)
    elif found is None:
        ready = (False, "Creating", f"creating resource group {name} in Milvus")
        progressing = (True, "Creating", ready[2])
    elif group_satisfied(group, milvus):
        ready = (True, "Converged", f"{count} node(s) in {name}")
        progressing = (False, "Converged", "nothing to do")
        placement = serving.placement if serving else None
        if placement is not None and not placement[0]:
            ready = (False, placement[1], placement[2])
            if placement[1] in STALLING_PLACEMENTS:
                progressing = (False, placement[1], "nothing to do until spec.collections changes")
                stalled = (True, placement[1], placement[2])
            else:
                progressing = (True, placement[1], placement[2])
        elif placement is not None:
            ready = (True, "Converged", f"{count} node(s) in {name}; {placement[2]}")
    else:
        text = f"{count} node(s) in {name}, requests {group.requests}, limits {group.effective_limits}"
        ready = (False, "WaitingForNodes", text)
        progressing = (True, "WaitingForNodes", text)
    conditions = _standard(generation, ready=ready, progressing=progressing, degraded=degraded,
                           stalled=degraded if degraded[0] else stalled)
    if serving is not None:
        ok, reason, message = serving.balance.verdict
        conditions.append(PlannedCondition(BALANCED, "True" if ok else "False", reason, message, generation))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous.get("conditions", []), conditions, iso(now)),
        "groupName": name,
        "nodes": count,
        "selector": f"{LABEL_RESOURCE_GROUP}={label_value(name)}",
        "members": members,
        "membersOmitted": omitted,
    }
    if found is not None:
        status["milvusConfig"] = milvus_config_status(found.config)
        status["collections"], status["collectionsOmitted"] = collection_replicas(
            found, serving.declared if serving else {})
    if serving is not None:
        status["balance"] = {"idleNodes": serving.balance.idle_nodes}
        if serving.balance.spread_percent is not None:
            status["balance"]["memorySpreadPercent"] = serving.balance.spread_percent
        if serving.balance_request is not None:
            status["balanceRequest"] = dict(serving.balance_request)
    return status


def collection_replicas(group: MilvusGroup, declared: Mapping[str, int] | None = None
                        ) -> tuple[list[dict[str, Any]], int]:
    """(per collection: replicas declared here (spec.collections) and loaded in the group, nodes moving out and in,
    by name, at most MEMBERS_SHOWN; how many more collections)."""
    declared = declared or {}
    names = sorted(group.loaded_replicas.keys() | group.incoming.keys() | group.outgoing.keys() | declared.keys())
    rows: list[dict[str, Any]] = []
    for name in names[:MEMBERS_SHOWN]:
        row: dict[str, Any] = {"collection": name}
        if name in declared:
            row["declaredReplicas"] = declared[name]
        rows.append(row | {"loadedReplicas": group.loaded_replicas.get(name, 0),
                           "outgoingNodes": group.outgoing.get(name, 0), "incomingNodes": group.incoming.get(name, 0)})
    return rows, len(names) - len(rows)
