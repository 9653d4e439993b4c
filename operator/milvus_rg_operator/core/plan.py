"""One reconcile pass as data: every write the operator will make, in order, each with its reason.

`plan_pass` is the whole decision of a pass over what was observed; the reconcile layer only executes
the actions in order (logging each one at INFO with its reason and counting it in the metrics). The
failure paths (invalid spec, unsupported Milvus, Milvus errors, paused) produce actions of the same kinds
through `problem_actions`, so every write goes through one place.

Order matters for safety and is fixed here:
- finalizers before anything is created in Milvus (a group never exists in Milvus without one);
- Milvus configs before replicas change (scale out: configs, then pods; scale in: configs, then only pods
  Milvus no longer uses);
- drains are recorded in the pool's status before any node is suspended;
- pod labels before replicas are lowered, so a leaving pod never still says `serving`.

A group whose own spec is invalid is reported on its object and left as it is in Milvus; the others go
on. Only pool-wide problems (the pool's spec, credentials, the sum of requests above maxNodes) stop the
whole pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from milvus_rg_operator.constants import POOL_KIND as POOL_KIND  # re-exported beside GROUP_KIND
from milvus_rg_operator.constants import RESOURCE_GROUP_KIND
from milvus_rg_operator.core import conditions as cond
from milvus_rg_operator.core import configs, labels, scaling, validation
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    DrainRecord,
    GroupConfig,
    MilvusGroup,
    MilvusState,
    PodState,
    Problem,
    StatefulSetState,
)

KUBERNETES, MILVUS = "kubernetes", "milvus"
GROUP_KIND = RESOURCE_GROUP_KIND
PROGRESS_REQUEUE = 1.0  # while something is in flight, look again soon


# --- actions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddFinalizer:
    group: str  # ResourceGroup name
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "add_finalizer"

    @property
    def summary(self) -> str:
        return f"add finalizer to ResourceGroup {self.group}"


@dataclass(frozen=True)
class ReleaseGroup:
    group: str  # ResourceGroup name, deleting: its finalizer goes
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "remove_finalizer"

    @property
    def summary(self) -> str:
        return f"remove finalizer from ResourceGroup {self.group}"


@dataclass(frozen=True)
class CreateGroup:
    name: str
    config: GroupConfig
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "create_resource_group"

    @property
    def summary(self) -> str:
        return f"create_resource_group {self.name} {describe_config(self.config)}"


@dataclass(frozen=True)
class UpdateGroups:
    configs: Mapping[str, GroupConfig]
    changes: str  # e.g. "rg1 requests 2->3; rg2 transferFrom []->[__pending_nodes]"
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "update_resource_groups"

    @property
    def summary(self) -> str:
        return f"update_resource_groups {self.changes}"


@dataclass(frozen=True)
class DropGroup:
    name: str
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "drop_resource_group"

    @property
    def summary(self) -> str:
        return f"drop_resource_group {self.name}"


@dataclass(frozen=True)
class CreateStatefulSet:
    name: str
    replicas: int
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "create_statefulset"

    @property
    def summary(self) -> str:
        return f"create StatefulSet {self.name} with {self.replicas} replicas"


@dataclass(frozen=True)
class RecordDrains:
    scale_down: Mapping[str, Any]  # status.scaleDown as written
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "record_drains"

    @property
    def summary(self) -> str:
        draining = ", ".join(f"{d['pod']} (node {d['nodeId']}, {d['phase']})" for d in self.scale_down["draining"])
        return f"record drains in status.scaleDown: {draining or 'none'}"


@dataclass(frozen=True)
class SuspendNode:
    node_id: int
    pod: str
    group: str
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "suspend_node"

    @property
    def summary(self) -> str:
        return f"suspend node {self.node_id} ({self.pod}, {self.group})"


@dataclass(frozen=True)
class ResumeNode:
    node_id: int
    pod: str
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "resume_node"

    @property
    def summary(self) -> str:
        return f"resume node {self.node_id} ({self.pod})"


@dataclass(frozen=True)
class LabelPod:
    pod: str
    patch: labels.PodPatch
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "label_pod"

    @property
    def summary(self) -> str:
        changed = ", ".join(f"{k.split('/')[-1]}={v if v is not None else '-'}" for k, v in self.patch.labels.items())
        return f"label pod {self.pod} {changed or 'annotations'}"


@dataclass(frozen=True)
class ScaleStatefulSet:
    name: str
    current: int
    replicas: int
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "scale_statefulset"

    @property
    def summary(self) -> str:
        return f"scale StatefulSet {self.name} {self.current}->{self.replicas}"


@dataclass(frozen=True)
class WriteStatus:
    kind: str  # QueryNodePool | ResourceGroup
    name: str
    status: Mapping[str, Any]  # only the keys that changed
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "patch_status"

    @property
    def summary(self) -> str:
        return f"status of {self.kind} {self.name}: {', '.join(sorted(self.status))}"


@dataclass(frozen=True)
class PostEvent:
    kind: str
    name: str
    type: str  # Normal | Warning
    event_reason: str
    message: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "event"

    @property
    def reason(self) -> str:
        return self.event_reason

    @property
    def summary(self) -> str:
        return f"event {self.type} {self.event_reason} on {self.kind} {self.name}: {self.message}"


Action = (AddFinalizer | ReleaseGroup | CreateGroup | UpdateGroups | DropGroup | CreateStatefulSet | RecordDrains
          | SuspendNode | ResumeNode | LabelPod | ScaleStatefulSet | WriteStatus | PostEvent)
MILVUS_ACTIONS = (CreateGroup, UpdateGroups, DropGroup, SuspendNode, ResumeNode)


# --- inputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectState:
    """What a pass needs of one custom resource besides its spec."""

    name: str
    generation: int
    status: Mapping[str, Any] = field(default_factory=dict)
    finalized: bool = False  # carries our finalizer
    deleting: bool = False


@dataclass(frozen=True)
class GroupInput:
    obj: ObjectState
    declared: DeclaredGroup | None  # None: its spec could not be parsed (see `problems`)
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class PassInputs:
    pool: DeclaredPool
    pool_obj: ObjectState
    groups: Sequence[GroupInput]
    milvus: MilvusState  # with distribution counts for leaving nodes, hostnames resolved from pod IPs
    sts: StatefulSetState | None  # None: the StatefulSet does not exist
    can_create_statefulset: bool  # spec.template is set
    pods: Sequence[PodState]
    drains: Sequence[DrainRecord]
    now: float
    drain_unsupported: str | None = None  # why this Milvus version cannot drain, or None


@dataclass(frozen=True)
class PassPlan:
    actions: tuple[Action, ...]
    converged: bool
    requeue_after: float | None  # None: the pool's resync period
    drains: tuple[DrainRecord, ...]  # the pool's drains as this pass leaves them
    problems: tuple[Problem, ...] = ()  # what is wrong with the input (the pool's, or some groups')
    refused: bool = False  # a problem of the pool: nothing but statuses and events is written

    # What a watch-fed cache may not decide: a cache can lag behind the API server by a few events, so a
    # pass that planned on cached objects re-reads them before these writes (and plans again).
    @property
    def removes_pods(self) -> bool:
        """The pass lowers the StatefulSet's replicas: pods are about to go."""
        return any(isinstance(a, ScaleStatefulSet) and a.replicas < a.current for a in self.actions)

    @property
    def changes_group_lifecycle(self) -> bool:
        """The pass writes a ResourceGroup's finalizers (a compare-and-swap on its resourceVersion) or creates
        or drops a group in Milvus."""
        return any(isinstance(a, AddFinalizer | ReleaseGroup | CreateGroup | DropGroup) for a in self.actions)


# --- the pass ----------------------------------------------------------------------------------------


def leaving_nodes(pool: DeclaredPool, groups: Sequence[DeclaredGroup], milvus: MilvusState,
                  pods: Sequence[PodState], drains: Sequence[DrainRecord]) -> set[int]:
    """Nodes whose data must be measured (`distribution/get`) before their pod may go: recorded drains, and
    victims' nodes that serve no group (suspended, or moved to the pending group)."""
    desired = scaling.desired_replicas(pool, groups)
    victims = {p.name for p in pods if p.ordinal >= desired}
    wanted = {d.node_id for d in drains}
    for node in milvus.nodes.values():
        group = milvus.group_of_node(node.node_id)
        if node.hostname in victims and group in (None, pool.pending_group):
            wanted.add(node.node_id)
    return wanted & set(milvus.nodes)


def plan_pass(inputs: PassInputs) -> PassPlan:
    pool = inputs.pool
    parsed = [g for g in inputs.groups if g.declared is not None]
    declared = [g.declared for g in parsed if g.declared is not None]
    problems = [p for g in inputs.groups for p in g.problems]
    problems += validation.validate(pool, pool.name, declared, inputs.milvus.groups.keys())
    if inputs.sts is None and not inputs.can_create_statefulset:
        problems.append(Problem(POOL_KIND, pool.name, "spec.statefulSetName",
                                f"StatefulSet {pool.stateful_set_name} not found and spec.template is not set"))
    if any(p.kind == POOL_KIND for p in problems):
        return PassPlan(validation_actions(inputs.pool_obj, [g.obj for g in inputs.groups], problems, inputs.now),
                        converged=False, requeue_after=None, drains=tuple(inputs.drains), problems=tuple(problems),
                        refused=True)
    invalid = {p.name for p in problems if p.kind == GROUP_KIND}
    valid = [g for g in parsed if g.obj.name not in invalid]
    while True:  # a group that refers to an invalid one not yet in Milvus is invalid too (to a fixpoint)
        remaining = [g.declared for g in valid if g.declared is not None]
        more = [p for p in validation.validate(pool, pool.name, remaining, inputs.milvus.groups.keys())
                if p.kind == GROUP_KIND and p.name not in invalid]
        if not more:
            break
        problems += more
        invalid |= {p.name for p in more}
        valid = [g for g in valid if g.obj.name not in invalid]
    groups = [g.declared for g in valid if g.declared is not None]
    frozen = [g for g in inputs.groups if g.obj.name in invalid]
    actions: list[Action] = []
    actions += [AddFinalizer(g.obj.name, "the group is managed in Milvus: its deletion must drop it there first")
                for g in valid if not g.obj.finalized and not g.obj.deleting]

    drains = tuple(inputs.drains)
    desired = configs.desired_configs(pool, groups, scaling.surge_of(drains))
    deletable = {resolve_group_name(g) for g in groups if g.deleting}
    milvus_plan = configs.plan_milvus(desired, inputs.milvus, deletable)
    actions += milvus_actions(milvus_plan, inputs.milvus, valid, pool, drains)
    by_milvus_name = {resolve_group_name(g.declared): g for g in valid if g.declared is not None}
    actions += [ReleaseGroup(by_milvus_name[name].obj.name, f"Milvus group {name} is dropped")
                for name in milvus_plan.released
                if name in by_milvus_name and by_milvus_name[name].obj.finalized and by_milvus_name[name].obj.deleting]

    # Frozen (invalid) groups keep their nodes: their Milvus requests still count towards replicas.
    frozen_groups = {found.name: found for g in frozen if (found := _milvus_group_of(g, inputs.milvus)) is not None}
    frozen_requests = sum(found.config.requests for found in frozen_groups.values())
    desired_replicas = scaling.desired_replicas(pool, groups) + frozen_requests
    if pool.max_nodes is not None:
        desired_replicas = min(desired_replicas, pool.max_nodes)
    if any(g.declared is None for g in frozen) and inputs.sts is not None:
        desired_replicas = max(desired_replicas, inputs.sts.replicas)  # a group we cannot read: never scale in

    if inputs.sts is None:  # spec.template is set (checked above): create it, with the replicas wanted
        actions.append(CreateStatefulSet(pool.stateful_set_name, desired_replicas,
                                         f"StatefulSet {pool.stateful_set_name} does not exist; spec.template is set"))
        return PassPlan(tuple(actions), converged=False, requeue_after=PROGRESS_REQUEUE, drains=drains,
                        problems=tuple(problems))
    sts = inputs.sts

    scale = scaling.plan_scale(pool, groups, desired_replicas, sts, inputs.pods, inputs.milvus, drains,
                               milvus_plan_empty=milvus_plan.empty, now=inputs.now,
                               drain_unsupported=inputs.drain_unsupported)
    draining = drain_status(scale.drains)
    scale_down = {"victims": list(scale.victims), "draining": draining,
                  "suspendedNodes": sorted({d.node_id for d in scale.drains})}
    pool_obj = inputs.pool_obj
    if tuple(scale.drains) != drains:
        # Record first, act second: a restart must find every drain it may have started.
        actions.append(RecordDrains(scale_down, _drain_change(drains, scale.drains)))
        pool_obj = replace(pool_obj, status={**pool_obj.status, "scaleDown": scale_down})
    pod_of_node = {n.node_id: n.hostname for n in inputs.milvus.nodes.values()}
    records = {d.node_id: d for d in scale.drains}
    actions += [ResumeNode(node_id, pod_of_node.get(node_id) or "?", "out of every group with no drain recorded "
                           "for it: only a recorded drain may hold a node out") for node_id in scale.resume]
    actions += [SuspendNode(node_id, records[node_id].pod if node_id in records else pod_of_node.get(node_id, "?"),
                            records[node_id].group if node_id in records else "?",
                            f"draining {records[node_id].pod if node_id in records else 'its pod'} before scale-in "
                            "(the StatefulSet removes its highest ordinals)") for node_id in scale.suspend]

    # A drain that starts surging raises its group's config now (its record is written above), and one that
    # stopped surging (its node just suspended) lowers it now: Milvus never sees the group short of its
    # surged requests, and the replacement comes one pass sooner.
    after = predicted_milvus(inputs.milvus, milvus_plan)
    surge = scaling.surge_of(scale.drains)
    if surge != scaling.surge_of(drains):
        resurge = configs.plan_milvus(configs.desired_configs(pool, groups, surge), after, deletable)
        if resurge.update:
            resurge = configs.MilvusPlan(update=resurge.update)
            actions += milvus_actions(resurge, after, valid, pool, scale.drains)
            after = predicted_milvus(after, resurge)
    label_patches = labels.plan_pod_labels(inputs.pods, inputs.milvus, pool.pending_group,
                                           {d.pod for d in scale.drains})
    actions += [LabelPod(pod, patch, "where Milvus placed the pod's node") for pod, patch in label_patches.items()]
    if scale.replicas is not None and scale.replicas != sts.replicas:
        actions.append(ScaleStatefulSet(pool.stateful_set_name, sts.replicas, scale.replicas,
                                        _scale_reason(pool.stateful_set_name, sts.replicas, scale.replicas,
                                                      desired_replicas, inputs.milvus, drains)))

    # Judged on Milvus as this pass leaves it (its config writes come before the status, and a failed write
    # ends the pass): a change that moves no node converges in the pass that writes it.
    converged = (scale.replicas in (None, sts.replicas) and not scale.drains and not scale.victims
                 and sts.ready_replicas == sts.replicas == desired_replicas and cond.groups_satisfied(groups, after))
    pool_status = cond.pool_status(
        pool, groups, desired_replicas, sts, inputs.pods, after, scale, milvus_plan,
        generation=pool_obj.generation, previous=pool_obj.status, now=inputs.now,
        scale_down=draining, converged=converged,
    )
    actions += status_write(POOL_KIND, pool_obj, pool_status, "what the pass observed and did")
    pods = cond.pod_index(inputs.pods)
    for g in valid:
        assert g.declared is not None
        status = cond.group_status(g.declared, after, pods, milvus_plan, generation=g.obj.generation,
                                   previous=g.obj.status, now=inputs.now)
        actions += status_write(GROUP_KIND, g.obj, status, "where Milvus placed the group's nodes")
    actions += frozen_group_actions(frozen, problems, inputs.now)
    actions += [PostEvent(POOL_KIND, pool.name, kind, reason, message) for kind, reason, message in scale.events]
    return PassPlan(tuple(actions), converged=converged, requeue_after=None if converged else PROGRESS_REQUEUE,
                    drains=tuple(scale.drains), problems=tuple(problems))


def _milvus_group_of(group: GroupInput, milvus: MilvusState) -> MilvusGroup | None:
    return milvus.groups.get(resolve_group_name(group.declared)) if group.declared is not None else None


def drain_status(records: Sequence[DrainRecord]) -> list[dict[str, Any]]:
    return [{"pod": r.pod, "nodeId": r.node_id, "group": r.group, "startedAt": cond.iso(r.started_at),
             "phase": r.phase} for r in records]


def _drain_change(before: Sequence[DrainRecord], after: Sequence[DrainRecord]) -> str:
    old = {d.pod: d.phase for d in before}
    new = {d.pod: d.phase for d in after}
    parts = [f"{pod} {old.get(pod, 'new')}->{new.get(pod, 'done')}" for pod in sorted(old.keys() | new.keys())
             if old.get(pod) != new.get(pod)]
    return "drains changed: " + ", ".join(parts) if parts else "drain records refreshed"


def _scale_reason(statefulset: str, current: int, replicas: int, desired: int, milvus: MilvusState,
                  drains: Sequence[DrainRecord]) -> str:
    if replicas > current:
        return f"{desired} query nodes wanted: the groups' requests + spareNodes, within minNodes/maxNodes"
    drained = {d.pod: d for d in drains}
    details = []
    for ordinal in range(current - 1, replicas - 1, -1):
        pod = scaling.pod_name(statefulset, ordinal)
        record = drained.get(pod)
        node = milvus.nodes.get(record.node_id) if record else milvus.node_of_pod(pod)
        if node is None:
            details.append(f"{pod} not in Milvus")
            continue
        data = (f"{node.segments} segments, {node.channels} channels" if node.segments is not None
                else "data not measured")
        where = "drained" if record else (milvus.group_of_node(node.node_id) or "in no group")
        details.append(f"{pod} {where}: {data}")
    return f"desired {desired}; " + "; ".join(details)


def describe_config(config: GroupConfig) -> str:
    parts = [f"requests={config.requests}", f"limits={config.limits}"]
    if config.transfer_from:
        parts.append(f"transferFrom={list(config.transfer_from)}")
    if config.transfer_to:
        parts.append(f"transferTo={list(config.transfer_to)}")
    if config.node_labels:
        parts.append(f"nodeLabels={dict(config.node_labels)}")
    return " ".join(parts)


def config_changes(name: str, old: GroupConfig | None, new: GroupConfig) -> str:
    if old is None:
        return f"{name} {describe_config(new)}"
    parts = []
    for label, before, after in (("requests", old.requests, new.requests), ("limits", old.limits, new.limits),
                                 ("transferFrom", list(old.transfer_from), list(new.transfer_from)),
                                 ("transferTo", list(old.transfer_to), list(new.transfer_to)),
                                 ("nodeLabels", dict(old.node_labels), dict(new.node_labels))):
        if before != after:
            parts.append(f"{label} {before}->{after}")
    return f"{name} {' '.join(parts) or 'unchanged'}"


def milvus_actions(plan: configs.MilvusPlan, observed: MilvusState, groups: Sequence[GroupInput],
                   pool: DeclaredPool, drains: Sequence[DrainRecord]) -> list[Action]:
    owner = {resolve_group_name(g.declared): g for g in groups if g.declared is not None}
    surging = scaling.surge_of(drains)

    def why(name: str) -> str:
        if name == pool.pending_group:
            return f"pending group of QueryNodePool {pool.name}"
        found = owner.get(name)
        if found is None:
            return f"group of QueryNodePool {pool.name}"
        text = f"ResourceGroup {found.obj.name} generation {found.obj.generation}"
        if found.obj.deleting:
            text += ", being deleted"
        if name in surging:
            text += f"; +{surging[name]} while a replacement joins before a drain"
        return text

    created = {name: config for name, config in plan.create}
    actions: list[Action] = [CreateGroup(name, config, why(name)) for name, config in plan.create]
    if plan.update:
        def before(name: str) -> GroupConfig | None:
            found = observed.groups.get(name)
            return created.get(name) or (found.config.normalized() if found else None)

        changes = "; ".join(config_changes(name, before(name), config) for name, config in sorted(plan.update.items()))
        reasons = "; ".join(dict.fromkeys(why(name) for name in sorted(plan.update)))
        actions.append(UpdateGroups(dict(plan.update), changes, reasons))
    actions += [DropGroup(name, why(name)) for name in plan.drop]
    return actions


def predicted_milvus(observed: MilvusState, plan: configs.MilvusPlan) -> MilvusState:
    """Milvus as it will be once the plan's config writes succeed (placement follows asynchronously), so the
    statuses written by this pass already show the new configs instead of being corrected one pass later."""
    if plan.empty:
        return observed
    groups = dict(observed.groups)
    for name, config in (*plan.create, *plan.update.items()):
        found = groups.get(name)
        groups[name] = replace(found, config=config) if found else MilvusGroup(name, config, ())
    for name in plan.drop:
        groups.pop(name, None)
    return replace(observed, groups=groups)


# --- writes common to every path ---------------------------------------------------------------------


def status_write(kind: str, obj: ObjectState, status: Mapping[str, Any], reason: str) -> list[Action]:
    """A status patch of only the keys that differ from what the object has: a steady state writes nothing."""
    changed = {k: v for k, v in status.items() if obj.status.get(k) != v}
    return [WriteStatus(kind, obj.name, changed, reason)] if changed else []


def conditions_status(obj: ObjectState, conditions: Sequence[cond.Condition], now: float,
                      extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"observedGeneration": obj.generation,
            "conditions": cond.merge_conditions(obj.status.get("conditions", []), conditions, cond.iso(now)),
            **(extra or {})}


def degraded_transition(obj: ObjectState, conditions: Sequence[cond.Condition]) -> str | None:
    """The new Degraded message when it differs from what the object shows (events fire once per transition)."""
    new = next((c for c in conditions if c.type == cond.DEGRADED), None)
    if new is None or new.status != "True":
        return None
    old = cond.find(obj.status.get("conditions", []), cond.DEGRADED) or {}
    if old.get("status") == "True" and old.get("message") == new.message:
        return None
    return new.message


def problem_actions(inputs_pool: ObjectState, groups: Sequence[ObjectState],
                    pool_conditions: Sequence[cond.Condition], group_conditions: Mapping[str, Sequence[cond.Condition]],
                    event_reason: str, now: float) -> list[Action]:
    """Status (and one Warning event per transition) on the pool and every group for a problem that stops
    the pass: every object of the pool says why nothing happens."""
    actions = status_write(POOL_KIND, inputs_pool, conditions_status(inputs_pool, pool_conditions, now),
                           f"{event_reason}: nothing applied")
    message = degraded_transition(inputs_pool, pool_conditions)
    if message:
        actions.append(PostEvent(POOL_KIND, inputs_pool.name, "Warning", event_reason, message))
    for obj in groups:
        conditions = group_conditions[obj.name]
        actions += status_write(GROUP_KIND, obj, conditions_status(obj, conditions, now),
                                f"{event_reason} in its pool: nothing applied")
        own = degraded_transition(obj, conditions)
        if own:
            actions.append(PostEvent(GROUP_KIND, obj.name, "Warning", event_reason, own))
    return actions


def validation_actions(pool_obj: ObjectState, groups: Sequence[ObjectState], problems: Sequence[Problem],
                       now: float) -> tuple[Action, ...]:
    """Bad input: Degraded and a Warning event naming each field on the pool, each group its own problems or
    the pool's; nothing else is written."""
    pool_conditions = cond.validation_failed_conditions(problems, pool_obj.generation)
    group_conditions = {
        obj.name: cond.group_problem_conditions(
            [p for p in problems if p.kind == GROUP_KIND and p.name == obj.name], problems, obj.generation)
        for obj in groups}
    return tuple(problem_actions(pool_obj, groups, pool_conditions, group_conditions, "ValidationFailed", now))


def frozen_group_actions(frozen: Sequence[GroupInput], problems: Sequence[Problem], now: float) -> list[Action]:
    """Invalid groups: reported on their own object (status + one Warning event per transition); Milvus keeps
    their last applied config and the rest of the pool goes on."""
    actions: list[Action] = []
    for g in frozen:
        own = [p for p in problems if p.kind == GROUP_KIND and p.name == g.obj.name]
        conditions = cond.group_problem_conditions(own, own, g.obj.generation)
        actions += status_write(GROUP_KIND, g.obj, conditions_status(g.obj, conditions, now),
                                "its spec is invalid: left as it is in Milvus")
        message = degraded_transition(g.obj, conditions)
        if message:
            actions.append(PostEvent(GROUP_KIND, g.obj.name, "Warning", "ValidationFailed", message))
    return actions
