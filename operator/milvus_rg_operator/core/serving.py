"""What a pass decides about the data the groups serve: replica placement (`core.replicas`), the balance it sees and
the balance it was asked for (`core.balance`). `plan_pass` calls `plan_serving` once, after the scale plan (a
requested balance must know which nodes are leaving)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from milvus_rg_operator.core import balance, replicas
from milvus_rg_operator.core.actions import Action, PostEvent
from milvus_rg_operator.core.balance import GroupBalance, NodeLoad
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.scaling import STOPPING_STATES, ScalePlan
from milvus_rg_operator.core.types import DeclaredPool, GroupInput, MilvusState, PodState

LEAVING_STATES = STOPPING_STATES | {"Suspend"}


@dataclass(frozen=True)
class GroupServing:
    """What a group's status shows of its data."""

    declared: Mapping[str, int]  # collection -> replicas spec.collections declares
    placement: replicas.Verdict | None  # None: nothing declared
    balance: GroupBalance
    loads: Mapping[int, NodeLoad] | None  # per node; None: collections were not read
    balance_request: Mapping[str, Any] | None


@dataclass(frozen=True)
class ServingPlan:
    actions: tuple[Action, ...] = ()
    events: tuple[PostEvent, ...] = ()
    groups: Mapping[str, GroupServing] = field(default_factory=dict)  # by Milvus group name
    waiting: tuple[str, str] | None = None  # (reason, message) while placement or data is still on its way

    @property
    def settled(self) -> bool:
        return self.waiting is None


def leaving_nodes(milvus: MilvusState, scale: ScalePlan) -> set[int]:
    """Nodes no data may move onto: drained, on a pod chosen for removal, stopping or suspended."""
    leaving = {d.node_id for d in scale.drains}
    for pod in scale.victims:
        node = milvus.node_of_pod(pod)
        if node is not None:
            leaving.add(node.node_id)
    return leaving | {n.node_id for n in milvus.nodes.values() if n.state in LEAVING_STATES}


def plan_serving(pool: DeclaredPool, groups: Sequence[GroupInput], milvus: MilvusState, pods: Sequence[PodState],
                 scale: ScalePlan, now: float, now_iso: str) -> ServingPlan:
    declared_groups = [g.declared for g in groups if g.declared is not None]
    placement = replicas.plan(declared_groups, milvus)
    loads = balance.node_loads(milvus) if milvus.collections is not None else None
    pod_index = {p.name: p for p in pods}
    leaving = leaving_nodes(milvus, scale)
    actions: list[Action] = list(placement.actions)
    events: list[PostEvent] = []
    served: dict[str, GroupServing] = {}
    for g in groups:
        if g.declared is None or g.declared.deleting:
            continue
        name = resolve_group_name(g.declared)
        requested = balance.plan_requested(g.obj.name, name, g.declared.balance_token,
                                           g.obj.status.get("balanceRequest"), milvus, leaving, pool.balance,
                                           now_iso)
        actions += requested.actions
        events += requested.events
        served[name] = GroupServing(placement.declared.get(name, {}), placement.verdicts.get(name),
                                    balance.judge(name, milvus, pod_index, pool.balance, now), loads,
                                    requested.status)
    waiting = placement.waiting()
    if waiting is None and any(s.balance_request and s.balance_request.get("phase") == balance.RUNNING
                               for s in served.values()):
        waiting = ("Balancing", "a requested balance is moving segments")
    if waiting is None and pool.balance.scale_out_waits_for_data:
        idle = balance.waiting_for_data(served, milvus)
        if idle:
            waiting = ("WaitingForData", "new nodes hold no data yet (spec.balance.scaleOutWaitsForData): "
                       + ", ".join(idle[:5]) + (f" and {len(idle) - 5} more" if len(idle) > 5 else ""))
    return ServingPlan(tuple(actions), tuple(events), served, waiting)
