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
    GROUP_NODE_LABEL,
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
from milvus_rg_operator.core.workloads import STATEFULSET, WorkloadRef, WorkloadState

PROGRESS_REQUEUE = 1.0  # while something is in flight, look again soon


@dataclass(frozen=True)
class GroupWorkload:
    """A group's own query-node workload, as observed."""

    group: str  # the ResourceGroup (metadata.name)
    ref: WorkloadRef
    state: WorkloadState | None  # None: it does not exist
    pods: tuple[PodState, ...] = ()


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
    removals: tuple[Removal, ...] = ()  # the last scale-in of each workload, as recorded in status.scaleDown
    group_workloads: tuple[GroupWorkload, ...] = ()  # the groups' own workloads

    @property
    def all_pods(self) -> list[PodState]:
        """The pods of the pool's workload and of its groups' own workloads."""
        return [*self.pods, *(pod for own in self.group_workloads for pod in own.pods)]


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


def split_groups(pool: DeclaredPool, groups: Sequence[GroupInput], milvus: MilvusState,
                 refused: Sequence[Problem] = ()) -> GroupSplit:
    """`refused`: problems found besides the groups' specs (their own workloads: `group_workload_problems`)."""
    parsed = [g for g in groups if g.declared is not None]
    problems = [p for g in groups for p in g.problems] + list(refused)
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
            if (found := _milvus_group_of(g, milvus)) is not None and found.name not in owned
            and g.declared is not None and g.declared.workload is None}
    shared = [g for g in declared if g.workload is None]  # a group with its own workload has its own pods
    desired = scaling.desired_replicas(pool, shared, held=sum(held.values()))
    if current is not None and any(g.declared is None for g in split.frozen):
        desired = max(desired, current)
    return desired


def leaving_nodes(inputs: PassInputs) -> set[int]:
    """Nodes whose data must be measured (`distribution/get`) before their pod may go: recorded drains, and
    victims' nodes that serve no group (suspended, or moved to the pending group)."""
    pool, milvus = inputs.pool, inputs.milvus
    if pool is None or milvus is None:
        return set()
    split = split_groups(pool, inputs.groups, milvus, group_workload_problems(pool, inputs))
    victims: set[str] = set()
    for unit in scale_units(pool, inputs, split, milvus):
        # Whoever may go: for a ReplicaSet, what it removes now or once the deletion costs are set.
        victims |= set(scaling.victims(unit.state, unit.pods, unit.desired))
        if unit.state.ref.ranks_pods:
            costs = scaling.deletion_costs(unit.pods, milvus, pool.pending_group, inputs.drains)
            victims |= set(scaling.victims(unit.state, unit.pods, unit.desired, costs))
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
    split = split_groups(pool, inputs.groups, inputs.milvus, group_workload_problems(pool, inputs))
    problems = split.problems
    if inputs.workload is None and not inputs.can_create_statefulset:
        problems += (Problem(POOL_KIND, pool.name, pool.workload_field,
                             f"{pool.workload} not found" + (" and spec.template is not set"
                                                             if pool.workload.kind == STATEFULSET else "")),)
    problems += workload_problems(pool, inputs.workload, inputs.pods, inputs.milvus, inputs.now)
    if any(p.kind == POOL_KIND for p in problems):
        return _refused(inputs, problems)
    return _Planner(inputs, pool, inputs.milvus, split, problems).plan()


@dataclass(frozen=True)
class ScaleUnit:
    """One workload the pass scales: the pool's (its groups' requests and spares) or a group's own (that
    group's requests)."""

    state: WorkloadState
    pods: Sequence[PodState]
    desired: int
    group: DeclaredGroup | None = None  # the group whose own workload this is


def scale_units(pool: DeclaredPool, inputs: PassInputs, split: GroupSplit, milvus: MilvusState) -> list[ScaleUnit]:
    """The pool's workload first (when it exists), then each valid group's own workload (when it exists)."""
    units = []
    if inputs.workload is not None:
        units.append(ScaleUnit(inputs.workload, inputs.pods,
                               replica_target(pool, split, milvus, inputs.workload.replicas)))
    own = {w.group: w for w in inputs.group_workloads}
    for group in split.declared:
        found = own.get(group.cr_name)
        if group.workload is not None and found is not None and found.state is not None:
            units.append(ScaleUnit(found.state, found.pods, 0 if group.deleting else group.requests, group))
    return units


def group_workload_problems(pool: DeclaredPool, inputs: PassInputs) -> list[Problem]:
    """Groups whose own workload cannot be used: not found (and not owned), named twice (the older claim wins,
    the pool's own workload first), a Milvus without node filters (< 2.4.17), or pods that do not carry the
    group's label."""
    problems: list[Problem] = []
    claimed: dict[WorkloadRef, str] = {pool.workload: f"QueryNodePool {pool.name}"}
    observed_own = {w.group: w for w in inputs.group_workloads}
    declared = sorted((g.declared for g in inputs.groups if g.declared is not None and g.declared.workload),
                      key=lambda g: (g.created_at, g.cr_name))
    support = inputs.support
    for group in declared:
        assert group.workload is not None
        field = "spec.template" if group.owns_workload else "spec.scaleTargetRef"
        name = resolve_group_name(group)
        if group.workload in claimed:
            problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, field,
                                    f"{group.workload} already runs the query nodes of {claimed[group.workload]}"))
            continue
        claimed[group.workload] = f"ResourceGroup {group.cr_name}"
        if support is not None and not support.node_filters:
            problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, field,
                                    f"a group's own workload needs resource-group node filters: Milvus "
                                    f"{support.reported} is older than 2.4.17"))
            continue
        found = observed_own.get(group.cr_name)
        if found is None or found.state is None:
            if not group.owns_workload:
                problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, field, f"{group.workload} not found"))
            continue
        unlabelled = [p.name for p in found.pods if p.milvus_labels.get(GROUP_NODE_LABEL) != name]
        if unlabelled and not group.node_labels:
            problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, field,
                                    f"pods of {group.workload} do not carry MILVUS_SERVER_LABEL_RESOURCE_GROUP={name}"
                                    f" (Milvus would not keep them in {name}): {cond.listed(sorted(unlabelled))}"))
    return problems


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
        created = self.create_owned_workloads()
        sts = self.inputs.workload
        if sts is None:
            return PassPlan(tuple(self.actions), "progressing", PROGRESS_REQUEUE, self.drains, self.problems,
                            self.desired)
        scale, plans, after = self.scale_writes(milvus_plan)
        served = serving.plan_serving(self.pool, self.split.valid, self.milvus, self.inputs.all_pods, scale,
                                      self.inputs.now, cond.iso(self.inputs.now))
        self.actions += served.actions
        # Judged on Milvus as this pass leaves it (its config writes come before the status, and a failed write
        # ends the pass): a change that moves no node converges in the pass that writes it.
        converged = (not created and not scale.drains and not scale.victims
                     and all(plan.replicas in (None, unit.state.replicas)
                             and unit.state.ready_replicas == unit.state.replicas == unit.desired
                             for unit, plan in plans)
                     and cond.groups_satisfied(self.groups, after) and served.settled and not served.actions)
        self.statuses(sts, scale, plans, milvus_plan, after, converged, served)
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

    def create_owned_workloads(self) -> bool:
        """The StatefulSets the operator owns that do not exist yet: the pool's (spec.template) and groups'
        (their spec.template), created with the replicas wanted."""
        actions: list[Action] = []
        if self.inputs.workload is None:  # spec.template is set (checked before)
            actions.append(CreateStatefulSet(self.pool.workload.name, self.desired,
                                             f"StatefulSet {self.pool.workload.name} does not exist; "
                                             "spec.template is set"))
        existing = {w.group for w in self.inputs.group_workloads if w.state is not None}
        for group in self.groups:
            if group.owns_workload and group.workload is not None and group.cr_name not in existing \
                    and not group.deleting:
                actions.append(CreateStatefulSet(group.workload.name, group.requests,
                                                 f"ResourceGroup {group.cr_name} owns its query nodes "
                                                 "(spec.template)", group=group.cr_name))
        self.actions += actions
        return bool(actions)

    def scale_writes(self, milvus_plan: configs.MilvusPlan
                     ) -> tuple[scaling.ScalePlan, list[tuple[ScaleUnit, scaling.ScalePlan]], MilvusState]:
        """Drains, pod labels and the replica changes of every workload; returns the pool's scale plan (the
        pool's workload's, with every workload's drains, victims and events), each workload's own, and Milvus
        as this pass leaves it."""
        pool, inputs, drains = self.pool, self.inputs, self.drains
        support = inputs.support
        removals = {r.workload: r for r in inputs.removals}
        plans: list[tuple[ScaleUnit, scaling.ScalePlan]] = []
        for unit in scale_units(pool, inputs, self.split, self.milvus):
            names = {p.name for p in unit.pods}
            own = [d for d in drains if d.pod in names]
            elsewhere = sum(1 for d in drains if d.pod not in names and d.phase != scaling.DRAINED)
            plans.append((unit, scaling.plan_scale(
                pool, self.groups, unit.desired, unit.state, unit.pods, self.milvus, own,
                milvus_plan_empty=milvus_plan.empty, now=inputs.now,
                drain_unsupported=support.message if support and not support.drains_possible else None,
                removal=removals.get(str(unit.state.ref)), active_elsewhere=elsewhere,
                own_group=resolve_group_name(unit.group) if unit.group else None,
                others=[p for p in inputs.all_pods if p.name not in names])))
        scale = combined(plans)
        if self.records_change(scale):
            # Record first, act second: a restart must find every drain it may have started, and the scale-in it
            # made (to check which pods went).
            self.actions.append(RecordDrains(scale_down_status(scale), _drain_change(drains, scale.drains)))
        pod_of_node = {n.node_id: n.hostname for n in self.milvus.nodes.values()}
        records = {d.node_id: d for d in scale.drains}
        relocated = {d.node_id: d for d in drains if d.relocate} if scale.resume else {}
        self.actions += [ResumeNode(node_id, pod_of_node.get(node_id) or "?",
                                    f"relocated out of {relocated[node_id].group} and holds no data: Milvus places "
                                    "it anew" if node_id in relocated else "out of every group with no drain "
                                    "recorded for it: only a recorded drain may hold a node out")
                         for node_id in scale.resume]
        for unit, plan in plans:
            self.actions += [SuspendNode(node_id, records[node_id].pod, records[node_id].group,
                                         _suspend_reason(records[node_id], unit))
                             for node_id in plan.suspend if node_id in records]
            self.actions += [SuspendNode(node_id, pod_of_node.get(node_id, "?"), "?", "draining its pod before "
                                         "scale-in (suspended again: a restarted coordinator put it back)")
                             for node_id in plan.suspend if node_id not in records]
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
        label_patches = labels.plan_pod_labels(inputs.all_pods, self.milvus, pool.pending_group,
                                               {d.pod for d in scale.drains}, scale.costs)
        self.actions += [LabelPod(pod, patch, "where Milvus placed the pod's node")
                         for pod, patch in label_patches.items()]
        for unit, plan in plans:
            if plan.replicas is not None and plan.replicas != unit.state.replicas:
                self.actions.append(ScaleWorkload(unit.state.ref, unit.state.replicas, plan.replicas,
                                                  _scale_reason(unit, plan, self.milvus, drains)))
        return scale, plans, after

    def records_change(self, scale: scaling.ScalePlan) -> bool:
        return tuple(scale.drains) != self.drains or scale.removals != self.inputs.removals

    def statuses(self, sts: WorkloadState, scale: scaling.ScalePlan,
                 plans: Sequence[tuple[ScaleUnit, scaling.ScalePlan]], milvus_plan: configs.MilvusPlan,
                 after: MilvusState, converged: bool, served: serving.ServingPlan) -> None:
        inputs, pool_obj = self.inputs, self.inputs.pool_obj
        if self.records_change(scale):  # RecordDrains wrote it already
            pool_obj = replace(pool_obj, status={**pool_obj.status, "scaleDown": scale_down_status(scale)})
        pool_status = cond.pool_status(
            self.pool, self.groups, self.desired, sts, inputs.all_pods, after, scale, milvus_plan,
            generation=pool_obj.generation, previous=pool_obj.status, now=inputs.now,
            scale_down=scale_down_status(scale), converged=converged, serving_wait=served.waiting,
        )
        undeclared = observed.observed_groups(self.pool, inputs.groups, self.milvus)
        pool_status |= observed.status_fields(undeclared)
        self.actions += reporting.status_write(POOL_KIND, pool_obj, pool_status, "what the pass observed and did")
        self.actions += observed.observed_events(self.pool, inputs.pool_obj.status, undeclared, inputs.groups,
                                                 self.milvus, observed.label_holders(inputs.pods, self.milvus))
        pods = cond.pod_index(inputs.all_pods)
        own = {unit.group.cr_name: (unit, plan) for unit, plan in plans if unit.group is not None}
        for g in self.split.valid:
            assert g.declared is not None
            status = cond.group_status(g.declared, after, pods, milvus_plan, generation=g.obj.generation,
                                       previous=g.obj.status, now=inputs.now,
                                       serving=served.groups.get(resolve_group_name(g.declared)))
            if g.obj.name in own:
                unit, _ = own[g.obj.name]
                status["workload"] = {"kind": unit.state.ref.kind, "name": unit.state.ref.name,
                                      "replicas": unit.state.replicas, "readyReplicas": unit.state.ready_replicas}
            self.actions += reporting.status_write(RESOURCE_GROUP_KIND, g.obj, status,
                                                   "where Milvus placed the group's nodes")
        self.actions += reporting.frozen_group_actions(self.split.frozen, self.problems, inputs.now)


def combined(plans: Sequence[tuple[ScaleUnit, scaling.ScalePlan]]) -> scaling.ScalePlan:
    """The pool's scale plan: its own workload's (first) with every workload's drains, suspends, resumes,
    victims, events, costs and scale-in records."""
    parts = [plan for _, plan in plans]
    if not parts:
        return scaling.ScalePlan()
    first = parts[0]
    blocked = next((p for p in parts if p.blocked), first)
    return replace(
        first, suspend=tuple(n for p in parts for n in p.suspend),
        resume=tuple(sorted({n for p in parts for n in p.resume})),
        drains=tuple(sorted((d for p in parts for d in p.drains), key=lambda d: d.pod)),
        victims=tuple(v for p in parts for v in p.victims), blocked=blocked.blocked,
        blocked_reason=blocked.blocked_reason, stalled=tuple(s for p in parts for s in p.stalled),
        events=tuple(e for p in parts for e in p.events), costs={k: v for p in parts for k, v in p.costs.items()},
        removals=tuple(r for p in parts for r in p.removals), unexpected=tuple(u for p in parts for u in p.unexpected))


def scale_down_status(scale: scaling.ScalePlan) -> dict[str, Any]:
    """status.scaleDown: the drains, and each workload's scale-in to check (`removing`)."""
    return {"victims": list(scale.victims), "draining": drain_status(scale.drains),
            "suspendedNodes": sorted({d.node_id for d in scale.drains}),
            "removing": [{"workload": r.workload, "replicas": r.replicas, "pods": list(r.pods)}
                         for r in scale.removals]}


def _milvus_group_of(group: GroupInput, milvus: MilvusState) -> MilvusGroup | None:
    return milvus.groups.get(resolve_group_name(group.declared)) if group.declared is not None else None


def drain_status(records: Sequence[DrainRecord]) -> list[dict[str, Any]]:
    return [{"pod": r.pod, "nodeId": r.node_id, "group": r.group, "startedAt": cond.iso(r.started_at),
             "phase": r.phase, **({"relocate": True} if r.relocate else {})} for r in records]


def _drain_change(before: Sequence[DrainRecord], after: Sequence[DrainRecord]) -> str:
    old = {d.pod: d.phase for d in before}
    new = {d.pod: d.phase for d in after}
    parts = [f"{pod} {old.get(pod, 'new')}->{new.get(pod, 'done')}" for pod in sorted(old.keys() | new.keys())
             if old.get(pod) != new.get(pod)]
    return "drains changed: " + ", ".join(parts) if parts else "drain records refreshed"


def _scale_reason(unit: ScaleUnit, scale: scaling.ScalePlan, milvus: MilvusState,
                  drains: Sequence[DrainRecord]) -> str:
    if (scale.replicas or 0) > unit.state.replicas:
        if unit.group is not None:
            return f"{unit.desired} query nodes wanted: the requests of ResourceGroup {unit.group.cr_name}"
        return f"{unit.desired} query nodes wanted: the groups' requests + spareNodes, within minNodes/maxNodes"
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
    return f"desired {unit.desired}; " + "; ".join(details)


def _suspend_reason(record: DrainRecord, unit: ScaleUnit) -> str:
    ref = unit.state.ref
    if record.relocate and unit.group is not None:
        return (f"relocating {record.pod}: its node serves {record.group}, not {resolve_group_name(unit.group)} "
                f"({ref}'s group); resumed once drained, for Milvus to place it anew")
    return (f"draining {record.pod} before scale-in ({'its rank makes it the pod' if ref.ranks_pods else 'the pod'} "
            f"{ref} removes)")


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


