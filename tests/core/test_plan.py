"""The whole pass as data: order of writes, blast radius, and a steady state that writes nothing."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from milvus_rg_operator.core import actions as act
from milvus_rg_operator.core import plan as core_plan
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.plan import PassInputs
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    GroupConfig,
    GroupInput,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    ObjectState,
    PodState,
    WorkloadState,
)
from tests.core.strategies import PENDING, STS, STS_REF, World, worlds

NOW = 1000.0


def inputs_of(world: World, finalized: bool = True, transfer_to_nowhere: int | None = None) -> PassInputs:
    groups = []
    for index, group in enumerate(world.groups):
        if index == transfer_to_nowhere:
            group = replace(group, transfer_to=("nowhere",))
        groups.append(GroupInput(ObjectState(group.cr_name, 1, finalized=finalized, deleting=group.deleting), group))
    return PassInputs(pool=world.pool, pool_obj=ObjectState("pool", 1), groups=groups, milvus=world.milvus,
                      workload=world.sts, can_create_statefulset=False, pods=world.pods, drains=world.drains, now=NOW)


def kinds(actions: tuple[act.Action, ...]) -> list[str]:
    return [type(a).__name__ for a in actions]


def first(actions: tuple[act.Action, ...], *types: type) -> int:
    return next((i for i, a in enumerate(actions) if isinstance(a, types)), len(actions))


def last(actions: tuple[act.Action, ...], *types: type) -> int:
    return max((i for i, a in enumerate(actions) if isinstance(a, types)), default=-1)


@settings(max_examples=300)
@given(worlds(), st.booleans())
def test_writes_come_in_the_safe_order(world: World, finalized: bool) -> None:
    actions = core_plan.plan_pass(inputs_of(world, finalized)).actions
    config_writes = (act.CreateGroup, act.UpdateGroups, act.DropGroup)
    # Finalizers before anything is created in Milvus; configs before replicas change.
    assert last(actions, act.AddFinalizer) < first(actions, act.CreateGroup)
    assert last(actions, *config_writes) < first(actions, act.ScaleWorkload)
    # A drain is recorded before its node is suspended; labels before pods go.
    assert last(actions, act.RecordDrains) < first(actions, act.SuspendNode)
    assert last(actions, act.LabelPod) < first(actions, act.ScaleWorkload)
    for action in actions:
        assert action.reason, action


@settings(max_examples=300)
@given(worlds(), st.booleans())
def test_a_plan_says_when_a_cache_may_not_decide(world: World, finalized: bool) -> None:
    """What the pass re-reads before acting: pods when replicas go down, groups when a finalizer or a
    Milvus group is created or removed."""
    plan = core_plan.plan_pass(inputs_of(world, finalized))
    lowered = [a for a in plan.actions if isinstance(a, act.ScaleWorkload) and a.replicas < a.current]
    lifecycle = [a for a in plan.actions if isinstance(
        a, act.AddFinalizer | act.ReleaseGroup | act.CreateGroup | act.DropGroup)]
    assert plan.removes_pods == bool(lowered)
    assert plan.changes_group_lifecycle == bool(lifecycle)


@settings(max_examples=300)
@given(worlds(), st.integers(0, 3))
def test_an_invalid_group_is_left_as_it_is_in_milvus(world: World, bad: int) -> None:
    if bad >= len(world.groups) or world.groups[bad].deleting:
        return
    frozen = resolve_group_name(world.groups[bad])
    result = core_plan.plan_pass(inputs_of(world, transfer_to_nowhere=bad))
    for action in result.actions:
        if isinstance(action, act.CreateGroup | act.DropGroup):
            assert action.name != frozen
        if isinstance(action, act.UpdateGroups):
            assert frozen not in action.configs
        if isinstance(action, act.AddFinalizer):
            assert action.group != world.groups[bad].cr_name
    statuses = [a for a in result.actions if isinstance(a, act.WriteStatus)
                and a.name == world.groups[bad].cr_name]
    assert statuses and "spec.transferTo[0]" in str(statuses[0].status["conditions"])


@settings(max_examples=200)
@given(worlds())
def test_a_pool_wide_problem_writes_only_statuses_and_events(world: World) -> None:
    too_many = sum(g.requests for g in world.groups if not g.deleting)
    if too_many == 0:
        return
    inputs = inputs_of(world)
    inputs = replace(inputs, pool=replace(inputs.pool, max_nodes=too_many - 1, min_nodes=0))
    result = core_plan.plan_pass(inputs)
    assert {type(a) for a in result.actions} <= {act.WriteStatus, act.PostEvent}
    assert any(isinstance(a, act.PostEvent) and "spec.maxNodes" in a.message for a in result.actions)


def converged_inputs() -> PassInputs:
    pool = DeclaredPool("pool", PENDING, 0, 0, None, STS_REF)
    group = DeclaredGroup("rg1", "pool", None, 2, None, None, None)
    config = GroupConfig(2, 2, (PENDING,), (PENDING,))
    nodes = {i: MilvusNode(i, f"{STS}-{i}", f"10.0.0.{i}:21123", "Normal") for i in range(2)}
    milvus = MilvusState({PENDING: MilvusGroup(PENDING, GroupConfig(0, 10_000_000), ()),
                          "rg1": MilvusGroup("rg1", config, (0, 1)),
                          "__default_resource_group": MilvusGroup("__default_resource_group",
                                                                  GroupConfig(0, 1_000_000), ())},
                         nodes, True, "v2.5.16")
    pods = [PodState(f"{STS}-{i}", i, True, False, ip=f"10.0.0.{i}") for i in range(2)]
    inputs = PassInputs(pool=pool, pool_obj=ObjectState("pool", 1),
                        groups=[GroupInput(ObjectState("rg1", 1, finalized=True), group)], milvus=milvus,
                        workload=WorkloadState(STS_REF, 2, 2), can_create_statefulset=False, pods=pods, drains=(),
                        now=NOW)
    return inputs


def applied(inputs: PassInputs, actions: tuple[act.Action, ...]) -> PassInputs:
    """The objects as they are once the plan's status and label writes are done."""
    statuses = {("QueryNodePool", "pool"): dict(inputs.pool_obj.status)}
    statuses.update({("ResourceGroup", g.obj.name): dict(g.obj.status) for g in inputs.groups})
    pods = {p.name: p for p in inputs.pods}
    for action in actions:
        if isinstance(action, act.WriteStatus):
            statuses[(action.kind, action.name)].update(action.status)
        if isinstance(action, act.LabelPod):
            pod = pods[action.pod]
            labels = {k: v for k, v in {**pod.labels, **action.patch.labels}.items() if v is not None}
            notes = {k: v for k, v in {**pod.annotations, **action.patch.annotations}.items() if v is not None}
            pods[action.pod] = replace(pod, labels=labels, annotations=notes)
    return replace(inputs, pool_obj=replace(inputs.pool_obj, status=statuses[("QueryNodePool", "pool")]),
                   groups=[replace(g, obj=replace(g.obj, status=statuses[("ResourceGroup", g.obj.name)]))
                           for g in inputs.groups], pods=list(pods.values()), now=NOW + 5)


def test_a_converged_pool_plans_no_write_once_its_status_and_labels_are_written() -> None:
    inputs = converged_inputs()
    first_plan = core_plan.plan_pass(inputs)
    assert first_plan.converged
    assert set(kinds(first_plan.actions)) <= {"WriteStatus", "LabelPod"}
    second = core_plan.plan_pass(applied(inputs, first_plan.actions))
    assert second.actions == () and second.converged
    assert not (first_plan.removes_pods or first_plan.changes_group_lifecycle)  # the caches decide at rest
    unfinalized = replace(inputs, groups=[replace(g, obj=replace(g.obj, finalized=False)) for g in inputs.groups])
    assert core_plan.plan_pass(unfinalized).changes_group_lifecycle


def test_update_says_what_changed_and_why() -> None:
    inputs = converged_inputs()
    group = replace(inputs.groups[0].declared, requests=3)  # type: ignore[type-var]
    inputs = replace(inputs, groups=[GroupInput(ObjectState("rg1", 4, finalized=True), group)])
    update = next(a for a in core_plan.plan_pass(inputs).actions if isinstance(a, act.UpdateGroups))
    assert update.summary == "update_resource_groups rg1 requests 2->3 limits 2->3"
    assert update.reason == "ResourceGroup rg1 generation 4"


def test_a_missing_statefulset_without_a_template_changes_nothing() -> None:
    inputs = replace(converged_inputs(), workload=None, milvus=MilvusState({}, {}, True, "v2.5.16"))
    actions = core_plan.plan_pass(inputs).actions
    assert {type(a) for a in actions} <= {act.WriteStatus, act.PostEvent}
    assert any(isinstance(a, act.PostEvent) and "spec.scaleTargetRef" in a.message for a in actions)
    created = core_plan.plan_pass(replace(inputs, can_create_statefulset=True)).actions
    assert [a.replicas for a in created if isinstance(a, act.CreateStatefulSet)] == [2]
    assert any(isinstance(a, act.CreateGroup) for a in created)
