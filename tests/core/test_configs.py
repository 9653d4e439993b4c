from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from milvus_rg_operator.core.configs import MilvusPlan, desired_configs, plan_milvus
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import (
    DEFAULT_GROUP,
    PENDING_GROUP_LIMIT,
    STATEFULSET,
    DeclaredGroup,
    DeclaredPool,
    GroupConfig,
    MilvusGroup,
    MilvusState,
    WorkloadRef,
)
from tests.core.strategies import PENDING, groups, pools


def apply(plan: MilvusPlan, state: MilvusState) -> MilvusState:
    """What Milvus does with the plan, checking the reference rules Milvus enforces on each call."""
    current = dict(state.groups)
    for name, config in plan.create:
        for target in (*config.transfer_from, *config.transfer_to):
            assert target in current, f"create {name}: transfer target {target} does not exist yet"
        current[name] = MilvusGroup(name, config, ())
    for name, config in plan.update.items():
        assert name in current
        for target in (*config.transfer_from, *config.transfer_to):
            assert target in current or target in plan.update, f"update {name}: {target} does not exist"
        current[name] = replace(current[name], config=config)
    for name in plan.drop:
        assert name != DEFAULT_GROUP
        current.pop(name)
    return MilvusState(current, state.nodes, state.management_available)


POOL = DeclaredPool("pool", PENDING, 0, 0, None, WorkloadRef(STATEFULSET, "qn"))
EMPTY_MILVUS = MilvusState({DEFAULT_GROUP: MilvusGroup(DEFAULT_GROUP, GroupConfig(0, 1_000_000), ())}, {}, True)


@settings(max_examples=300)
@given(pools(), groups())
def test_plan_reaches_the_desired_configs_in_one_pass_and_then_is_empty(pool, declared) -> None:  # type: ignore[no-untyped-def]
    live = [replace(g, deleting=False) for g in declared]
    desired = desired_configs(pool, live)
    assert desired[PENDING] == GroupConfig(0, PENDING_GROUP_LIMIT)
    assert {resolve_group_name(g) for g in live} <= desired.keys()
    state = apply(plan_milvus(desired, EMPTY_MILVUS, ()), EMPTY_MILVUS)
    for name, config in desired.items():
        assert state.groups[name].config == config
    assert plan_milvus(desired, state, ()).empty


@settings(max_examples=200)
@given(pools(), groups(), st.data())
def test_deleting_groups_are_emptied_unreferenced_then_dropped(pool, declared, data) -> None:  # type: ignore[no-untyped-def]
    live = [replace(g, deleting=False) for g in declared]
    state = apply(plan_milvus(desired_configs(pool, live), EMPTY_MILVUS, ()), EMPTY_MILVUS)
    doomed = data.draw(st.sets(st.sampled_from([resolve_group_name(g) for g in live])) if live else st.just(set()))
    after = [replace(g, deleting=resolve_group_name(g) in doomed) for g in live]
    desired = desired_configs(pool, after)
    for name in doomed:
        assert desired[name].requests == desired[name].limits == 0
    for config in desired.values():
        assert not set(config.transfer_from) & doomed and not set(config.transfer_to) & doomed
    first = plan_milvus(desired, state, doomed)
    assert not first.drop or all(n not in first.update for n in first.drop)
    state = apply(first, state)
    second = plan_milvus(desired, state, doomed)
    state = apply(second, state)
    assert not doomed & set(state.groups)
    assert set(second.released) | set(first.released) >= doomed


def test_groups_that_refer_to_each_other_are_created_in_two_phases() -> None:
    pool = POOL
    a = DeclaredGroup("a", "pool", None, 1, None, ("b",), ("b",))
    b = DeclaredGroup("b", "pool", None, 1, None, ("a",), ("a",))
    plan = plan_milvus(desired_configs(pool, [a, b]), EMPTY_MILVUS, ())
    created = dict(plan.create)
    assert created["a"].transfer_from == ()  # b does not exist yet
    assert created["b"].transfer_from == ("a",)
    assert set(plan.update) == {"a"}
    assert apply(plan, EMPTY_MILVUS).groups["a"].config.transfer_from == ("b",)


def test_drop_waits_for_loaded_replicas_and_says_which() -> None:
    pool = POOL
    state = MilvusState({**EMPTY_MILVUS.groups, "rg": MilvusGroup("rg", GroupConfig(0, 0), (), {"books": 1}),
                         PENDING: MilvusGroup(PENDING, GroupConfig(0, PENDING_GROUP_LIMIT), ())}, {}, True)
    doomed = DeclaredGroup("rg", "pool", None, 0, None, None, None, deleting=True)
    plan = plan_milvus(desired_configs(pool, [doomed]), state, {"rg"})
    assert plan.drop == ()
    assert plan.waiting["rg"].reason == "GroupDeletionBlocked" and "books" in plan.waiting["rg"].message


def test_undeclared_default_group_is_left_alone_and_declared_one_is_managed() -> None:
    pool = POOL
    assert DEFAULT_GROUP not in desired_configs(pool, [])
    default = DeclaredGroup("default", "pool", DEFAULT_GROUP, 1, None, None, None)
    assert desired_configs(pool, [default])[DEFAULT_GROUP] == GroupConfig(1, 1, (PENDING,), (PENDING,))
    deleting = replace(default, deleting=True)
    plan = plan_milvus(desired_configs(pool, [deleting]), EMPTY_MILVUS, {DEFAULT_GROUP})
    assert plan.released == (DEFAULT_GROUP,) and DEFAULT_GROUP not in plan.update and not plan.drop


def test_surge_raises_requests_and_limits_of_the_drained_group_only() -> None:
    rg1 = DeclaredGroup("rg1", "pool", None, 2, None, None, None)
    rg2 = DeclaredGroup("rg2", "pool", None, 1, 3, None, None)
    desired = desired_configs(POOL, [rg1, rg2], {"rg1": 1, "rg2": 1})
    assert (desired["rg1"].requests, desired["rg1"].limits) == (3, 3)
    assert (desired["rg2"].requests, desired["rg2"].limits) == (2, 3)
    assert desired_configs(POOL, [rg1, rg2])["rg1"] == GroupConfig(2, 2, (PENDING,), (PENDING,))
