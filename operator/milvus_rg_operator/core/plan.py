"""One reconcile pass as data: every write the operator will make, in order, each with its reason.

`plan_pass` is the whole decision of a pass over what was observed: whether the pool is paused, whether its
input is valid, whether its Milvus can be worked with, and then every write. The reconcile layer only
observes and executes the actions in order (logging each one at INFO with its reason and counting it in the
metrics); `milvus-rg-operator plan` prints the same actions without executing them.

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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from milvus_rg_operator.constants import POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core import conditions as cond
from milvus_rg_operator.core import configs, labels, observed, replicas, reporting, scaling, serving, validation
from milvus_rg_operator.core.actions import (
    Action,
    AddFinalizer,
    CreateGroup,
    CreateStatefulSet,
    DropGroup,
    LabelPod,
    LoadCollection,
    PostEvent,
    RecordDrains,
    ReleaseGroup,
    ResumeNode,
    ScaleWorkload,
    SuspendNode,
    TransferReplica,
    UpdateGroups,
    describe_config,
)
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    DrainRecord,
    GroupConfig,
    GroupInput,
    MilvusGroup,
    MilvusState,
    ObjectState,
    PodState,
    Problem,
    Removal,
)
from milvus_rg_operator.core.versions import MilvusSupport
from milvus_rg_operator.core.workloads import STATEFULSET, WorkloadState

PROGRESS_REQUEUE = 1.0  # while something is in flight, look again soon


@dataclass(frozen=True)
class PassInputs:
    """What a pass observed. Observation stops early when the rest cannot matter (a paused pool, a pool whose
    input is refused, a Milvus too old to work with): the fields after that stay at their defaults."""

    pool_obj: ObjectState
    groups: Sequence[GroupInput]
    now: float
    pool: DeclaredPool | None = None  # None: the pool's spec could not be parsed (`problems` says why)
    problems: tuple[Problem, ...] = ()  # found while observing: the pool's spec, its Secret, the credentials
    paused: bool = False
    support: MilvusSupport | None = None  # what this Milvus's version allows; None: not asked
    milvus: MilvusState | None = None  # with distribution counts for leaving nodes, hostnames from pod IPs
    workload: WorkloadState | None = None  # None: the pool's workload does not exist
    can_create_statefulset: bool = False  # spec.template is set: the operator creates (and owns) a StatefulSet
    pods: Sequence[PodState] = ()
    drains: Sequence[DrainRecord] = ()
    removal: Removal | None = None  # the last scale-in made, as recorded in status.scaleDown.removing


@dataclass(frozen=True)
class PassPlan:
    actions: tuple[Action, ...]
    result: str  # paused | invalid (the input, or the Milvus version) | converged | progressing
    requeue_after: float | None = None  # None: the pool's resync period
    drains: tuple[DrainRecord, ...] = ()  # the pool's drains as this pass leaves them
    problems: tuple[Problem, ...] = ()  # what is wrong with the input (the pool's, or some groups')
    desired_replicas: int | None = None  # query nodes wanted; None when the pass did not get that far
    unexpected_removals: tuple[str, ...] = ()  # pods that were to go by the last scale-in and still run

    @property
    def converged(self) -> bool:
        return self.result == "converged"

    # What a watch-fed cache may not decide: a cache can lag behind the API server by a few events, so a
    # pass that planned on cached objects re-reads them before these writes (and plans again).
    @property
    def removes_pods(self) -> bool:
        """The pass lowers the workload's replicas: pods are about to go."""
        return any(isinstance(a, ScaleWorkload) and a.replicas < a.current for a in self.actions)

    @property
    def changes_group_lifecycle(self) -> bool:
        """The pass writes a ResourceGroup's finalizers (a compare-and-swap on its resourceVersion), creates or
        drops a group in Milvus, or moves or loads replicas as the groups' specs declare."""
        return any(isinstance(a, AddFinalizer | ReleaseGroup | CreateGroup | DropGroup | TransferReplica
                              | LoadCollection) for a in self.actions)


@dataclass(frozen=True)
class GroupSplit:
    """The pool's groups after validation: the valid ones are planned, the frozen ones are left as they are
    in Milvus (and reported on their objects)."""

    valid: tuple[GroupInput, ...]
    frozen: tuple[GroupInput, ...]
    problems: tuple[Problem, ...]  # every problem found: groups' and the pool's (e.g. requests above maxNodes)

    @property
    def declared(self) -> list[DeclaredGroup]:
        return [g.declared for g in self.valid if g.declared is not None]


def split_groups(pool: DeclaredPool, groups: Sequence[GroupInput], milvus: MilvusState) -> GroupSplit:
    parsed = [g for g in groups if g.declared is not None]
    problems = [p for g in groups for p in g.problems]
    problems += validation.validate(pool, pool.name, [g.declared for g in parsed if g.declared is not None],
                                    milvus.groups.keys())
    problems += replicas.problems([g.declared for g in parsed if g.declared is not None], milvus)
    invalid = {p.name for p in problems if p.kind == RESOURCE_GROUP_KIND}
    valid = [g for g in parsed if g.obj.name not in invalid]
    while True:  # a group that refers to an invalid one not yet in Milvus is invalid too (to a fixpoint)
        remaining = [g.declared for g in valid if g.declared is not None]
        more = [p for p in validation.validate(pool, pool.name, remaining, milvus.groups.keys())
                if p.kind == RESOURCE_GROUP_KIND and p.name not in invalid]
        if not more:
            break
        problems += more
        invalid |= {p.name for p in more}
        valid = [g for g in valid if g.obj.name not in invalid]
    return GroupSplit(tuple(valid), tuple(g for g in groups if g.obj.name in invalid), tuple(problems))


def replica_target(pool: DeclaredPool, split: GroupSplit, milvus: MilvusState, current: int | None) -> int:
    """The query nodes the pool wants (`scaling.desired_replicas`), counting what frozen groups hold: an
    invalid group keeps the requests it has in Milvus, and a group that cannot even be read forbids any
    scale-in (`current`: the workload's replicas, None when it does not exist)."""
    declared = split.declared
    owned = {resolve_group_name(g) for g in declared}
    held = {found.name: found.config.requests for g in split.frozen
            if (found := _milvus_group_of(g, milvus)) is not None and found.name not in owned}
    desired = scaling.desired_replicas(pool, declared, held=sum(held.values()))
    if current is not None and any(g.declared is None for g in split.frozen):
        desired = max(desired, current)
    return desired


def leaving_nodes(inputs: PassInputs) -> set[int]:
    """Nodes whose data must be measured (`distribution/get`) before their pod may go: recorded drains, and
    victims' nodes that serve no group (suspended, or moved to the pending group)."""
    pool, milvus, workload = inputs.pool, inputs.milvus, inputs.workload
    if pool is None or milvus is None or workload is None:
        return set()
    desired = replica_target(pool, split_groups(pool, inputs.groups, milvus), milvus, workload.replicas)
    # Whoever may go: for a ReplicaSet, what it removes now or once the deletion costs are set.
    victims = set(scaling.victims(workload, inputs.pods, desired))
    if workload.ref.ranks_pods:
        costs = scaling.deletion_costs(inputs.pods, milvus, pool.pending_group, inputs.drains)
        victims |= set(scaling.victims(workload, inputs.pods, desired, costs))
    wanted = {d.node_id for d in inputs.drains}
    for node in milvus.nodes.values():
        if node.hostname in victims and milvus.group_of_node(node.node_id) in (None, pool.pending_group):
            wanted.add(node.node_id)
    return wanted & set(milvus.nodes)


def plan_pass(inputs: PassInputs) -> PassPlan:
    groups = [g.obj for g in inputs.groups]
    if inputs.paused:
        return PassPlan(tuple(reporting.paused_actions(inputs.pool_obj, inputs.now)), "paused")
    pool = inputs.pool
    if pool is None or inputs.problems:
        return _refused(inputs, inputs.problems)
    if inputs.support is not None and not inputs.support.supported:
        return PassPlan(tuple(reporting.milvus_failure_actions(inputs.pool_obj, groups, inputs.support.message,
                                                               "UnsupportedMilvusVersion", inputs.now)),
                        "invalid")
    assert inputs.milvus is not None, "Milvus is observed once the pool is valid and its version supported"
    split = split_groups(pool, inputs.groups, inputs.milvus)
    problems = split.problems
    if inputs.workload is None and not inputs.can_create_statefulset:
        problems += (Problem(POOL_KIND, pool.name, pool.workload_field,
                             f"{pool.workload} not found" + (" and spec.template is not set"
                                                             if pool.workload.kind == STATEFULSET else "")),)
    problems += workload_problems(pool, inputs.workload, inputs.pods, inputs.milvus, inputs.now)
    if any(p.kind == POOL_KIND for p in problems):
        return _refused(inputs, problems)
    return _Planner(inputs, pool, inputs.milvus, split, problems).plan()


def workload_problems(pool: DeclaredPool, workload: WorkloadState | None, pods: Sequence[PodState],
                      milvus: MilvusState, now: float) -> tuple[Problem, ...]:
    """A workload the operator cannot scale: a `Milvus` whose query-node replicas an HPA owns (-1), or one whose
    pods are not query nodes of this Milvus (Ready for longer than podReadyTimeoutSeconds, none registered)."""
    if workload is None:
        return ()
    if workload.replicas < 0:
        return (Problem(POOL_KIND, pool.name, pool.workload_field,
                        f"{workload.ref} has spec.components.queryNode.replicas {workload.replicas}: an HPA owns "
                        "them, the operator cannot scale them (set them to a number)"),)
    settled = [p for p in pods if p.ready and not p.terminating and now - p.created_at > pool.pod_ready_timeout_seconds]
    if settled and not any(milvus.node_of_pod(p.name) for p in pods):
        return (Problem(POOL_KIND, pool.name, pool.workload_field,
                        f"none of the {len(settled)} Ready pods of {workload.ref} is a query node of this Milvus "
                        f"(no node registered with their names or addresses): is it the right workload?"),)
    return ()


def _refused(inputs: PassInputs, problems: Sequence[Problem]) -> PassPlan:
    """A problem of the pool: every object says why; nothing but statuses and events is written."""
    return PassPlan(tuple(reporting.validation_actions(inputs.pool_obj, [g.obj for g in inputs.groups], problems,
                                                       inputs.now)),
                    "invalid", drains=tuple(inputs.drains), problems=tuple(problems))


class _Planner:
    """The pass of a valid pool, step by step; each step appends its writes in the safe order."""

    def __init__(self, inputs: PassInputs, pool: DeclaredPool, milvus: MilvusState, split: GroupSplit,
                 problems: tuple[Problem, ...]) -> None:
        self.inputs, self.pool, self.milvus, self.split, self.problems = inputs, pool, milvus, split, problems
        self.groups = split.declared
        self.drains = tuple(inputs.drains)
        self.actions: list[Action] = []
        self.deletable = {resolve_group_name(g) for g in self.groups if g.deleting}
        self.desired = replica_target(pool, split, milvus, inputs.workload.replicas if inputs.workload else None)

    def plan(self) -> PassPlan:
        self.actions += [AddFinalizer(g.obj.name, "the group is managed in Milvus: its deletion must drop it "
                                                  "there first")
                         for g in self.split.valid if not g.obj.finalized and not g.obj.deleting]
        milvus_plan = self.group_configs()
        sts = self.inputs.workload
        if sts is None:  # spec.template is set (checked before): create it, with the replicas wanted
            self.actions.append(CreateStatefulSet(
                self.pool.workload.name, self.desired,
                f"StatefulSet {self.pool.workload.name} does not exist; spec.template is set"))
            return PassPlan(tuple(self.actions), "progressing", PROGRESS_REQUEUE, self.drains, self.problems,
                            self.desired)
        scale, after = self.scale_writes(sts, milvus_plan)
        served = serving.plan_serving(self.pool, self.split.valid, self.milvus, self.inputs.pods, scale,
                                      self.inputs.now, cond.iso(self.inputs.now))
        self.actions += served.actions
        # Judged on Milvus as this pass leaves it (its config writes come before the status, and a failed write
        # ends the pass): a change that moves no node converges in the pass that writes it.
        converged = (scale.replicas in (None, sts.replicas) and not scale.drains and not scale.victims
                     and sts.ready_replicas == sts.replicas == self.desired
                     and cond.groups_satisfied(self.groups, after) and served.settled and not served.actions)
        self.statuses(sts, scale, milvus_plan, after, converged, served)
        self.actions += [PostEvent(POOL_KIND, self.pool.name, kind, reason, message)
                         for kind, reason, message in scale.events]
        self.actions += served.events
        return PassPlan(tuple(self.actions), "converged" if converged else "progressing",
                        None if converged else PROGRESS_REQUEUE, tuple(scale.drains), self.problems, self.desired,
                        scale.unexpected)

    def group_configs(self) -> configs.MilvusPlan:
        """Create, update (one batch) and drop groups in Milvus; release deleted groups once dropped."""
        desired = configs.desired_configs(self.pool, self.groups, scaling.surge_of(self.drains))
        milvus_plan = configs.plan_milvus(desired, self.milvus, self.deletable,
                                          observed.label_holders(self.inputs.pods, self.milvus))
        self.actions += milvus_actions(milvus_plan, self.milvus, self.split.valid, self.pool, self.drains)
        by_milvus_name = {resolve_group_name(g.declared): g for g in self.split.valid if g.declared is not None}
        self.actions += [ReleaseGroup(by_milvus_name[name].obj.name, f"Milvus group {name} is dropped")
                         for name in milvus_plan.released if name in by_milvus_name
                         and by_milvus_name[name].obj.finalized and by_milvus_name[name].obj.deleting]
        return milvus_plan

    def scale_writes(self, sts: WorkloadState,
                milvus_plan: configs.MilvusPlan) -> tuple[scaling.ScalePlan, MilvusState]:
        """Drains, pod labels and the replica change; returns the scale plan and Milvus as this pass leaves it."""
        pool, inputs, drains = self.pool, self.inputs, self.drains
        support = inputs.support
        scale = scaling.plan_scale(pool, self.groups, self.desired, sts, inputs.pods, self.milvus, drains,
                                   milvus_plan_empty=milvus_plan.empty, now=inputs.now,
                                   drain_unsupported=support.message if support and not support.drains_possible
                                   else None, removal=inputs.removal)
        if self.records_change(scale):
            # Record first, act second: a restart must find every drain it may have started, and the scale-in it
            # made (to check which pods went).
            self.actions.append(RecordDrains(scale_down_status(scale), _drain_change(drains, scale.drains)))
        pod_of_node = {n.node_id: n.hostname for n in self.milvus.nodes.values()}
        records = {d.node_id: d for d in scale.drains}
        self.actions += [ResumeNode(node_id, pod_of_node.get(node_id) or "?", "out of every group with no drain "
                                    "recorded for it: only a recorded drain may hold a node out")
                         for node_id in scale.resume]
        self.actions += [SuspendNode(node_id,
                                     records[node_id].pod if node_id in records else pod_of_node.get(node_id, "?"),
                                     records[node_id].group if node_id in records else "?",
                                     f"draining {records[node_id].pod if node_id in records else 'its pod'} before "
                                     f"scale-in ({'its rank makes it the pod' if sts.ref.ranks_pods else 'the pod'} "
                                     f"{sts.ref} removes)")
                         for node_id in scale.suspend]
        # A drain that starts surging raises its group's config now (its record is written above), and one that
        # stopped surging (its node just suspended) lowers it now: Milvus never sees the group short of its
        # surged requests, and the replacement comes one pass sooner.
        after = predicted_milvus(self.milvus, milvus_plan)
        surge = scaling.surge_of(scale.drains)
        if surge != scaling.surge_of(drains):
            resurge = configs.plan_milvus(configs.desired_configs(pool, self.groups, surge), after, self.deletable)
            if resurge.update:
                resurge = configs.MilvusPlan(update=resurge.update)
                self.actions += milvus_actions(resurge, after, self.split.valid, pool, scale.drains)
                after = predicted_milvus(after, resurge)
        label_patches = labels.plan_pod_labels(inputs.pods, self.milvus, pool.pending_group,
                                               {d.pod for d in scale.drains}, scale.costs)
        self.actions += [LabelPod(pod, patch, "where Milvus placed the pod's node")
                         for pod, patch in label_patches.items()]
        if scale.replicas is not None and scale.replicas != sts.replicas:
            self.actions.append(ScaleWorkload(
                sts.ref, sts.replicas, scale.replicas,
                _scale_reason(sts, scale, self.desired, self.milvus, drains)))
        return scale, after

    def records_change(self, scale: scaling.ScalePlan) -> bool:
        return tuple(scale.drains) != self.drains or scale.removal != self.inputs.removal

    def statuses(self, sts: WorkloadState, scale: scaling.ScalePlan, milvus_plan: configs.MilvusPlan,
                 after: MilvusState, converged: bool, served: serving.ServingPlan) -> None:
        inputs, pool_obj = self.inputs, self.inputs.pool_obj
        if self.records_change(scale):  # RecordDrains wrote it already
            pool_obj = replace(pool_obj, status={**pool_obj.status, "scaleDown": scale_down_status(scale)})
        pool_status = cond.pool_status(
            self.pool, self.groups, self.desired, sts, inputs.pods, after, scale, milvus_plan,
            generation=pool_obj.generation, previous=pool_obj.status, now=inputs.now,
            scale_down=scale_down_status(scale), converged=converged, serving_wait=served.waiting,
        )
        undeclared = observed.observed_groups(self.pool, inputs.groups, self.milvus)
        pool_status |= observed.status_fields(undeclared)
        self.actions += reporting.status_write(POOL_KIND, pool_obj, pool_status, "what the pass observed and did")
        self.actions += observed.observed_events(self.pool, inputs.pool_obj.status, undeclared, inputs.groups,
                                                 self.milvus, observed.label_holders(inputs.pods, self.milvus))
        pods = cond.pod_index(inputs.pods)
        for g in self.split.valid:
            assert g.declared is not None
            status = cond.group_status(g.declared, after, pods, milvus_plan, generation=g.obj.generation,
                                       previous=g.obj.status, now=inputs.now,
                                       serving=served.groups.get(resolve_group_name(g.declared)))
            self.actions += reporting.status_write(RESOURCE_GROUP_KIND, g.obj, status,
                                                   "where Milvus placed the group's nodes")
        self.actions += reporting.frozen_group_actions(self.split.frozen, self.problems, inputs.now)


def scale_down_status(scale: scaling.ScalePlan) -> dict[str, Any]:
    """status.scaleDown: the drains, and the scale-in to check (`removing`: null once checked)."""
    removal = scale.removal
    return {"victims": list(scale.victims), "draining": drain_status(scale.drains),
            "suspendedNodes": sorted({d.node_id for d in scale.drains}),
            "removing": {"replicas": removal.replicas, "pods": list(removal.pods)} if removal else None}


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


def _scale_reason(workload: WorkloadState, scale: scaling.ScalePlan, desired: int, milvus: MilvusState,
                  drains: Sequence[DrainRecord]) -> str:
    if (scale.replicas or 0) > workload.replicas:
        return f"{desired} query nodes wanted: the groups' requests + spareNodes, within minNodes/maxNodes"
    drained = {d.pod: d for d in drains}
    details = []
    for pod in scale.removing:
        record = drained.get(pod)
        node = milvus.nodes.get(record.node_id) if record else milvus.node_of_pod(pod)
        if node is None:
            details.append(f"{pod} not in Milvus")
            continue
        data = (milvus.support.data_held(node.segments, node.channels or 0) if node.segments is not None
                else "data not measured")
        where = "drained" if record else (milvus.group_of_node(node.node_id) or "in no group")
        details.append(f"{pod} {where}: {data}")
    return f"desired {desired}; " + "; ".join(details)


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


