"""Groups Milvus has that no ResourceGroup declares (Milvus 2.6.8 creates one for a query node labelled
MILVUS_SERVER_LABEL_RESOURCE_GROUP): observed, never changed or dropped, reported once; adopted as they are."""

from __future__ import annotations

from dataclasses import replace

from milvus_rg_operator.core import actions as act
from milvus_rg_operator.core import plan as core_plan
from milvus_rg_operator.core.observed import label_holders, observed_groups
from milvus_rg_operator.core.plan import PassInputs
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    GroupConfig,
    GroupInput,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    ObjectState,
    PodState,
)
from tests.core.strategies import PENDING, STS
from tests.core.test_plan import applied, converged_inputs

LABEL_CREATED = GroupConfig(0, 1_000_000)  # what 2.6.8 gives a group it creates for a labelled node
DEFAULT = "__default_resource_group"


def with_static_group(inputs: PassInputs, version: str = "v2.6.8") -> PassInputs:
    """The converged pool, plus a node of another workload labelled RESOURCE_GROUP=static_rg in its own group."""
    assert inputs.milvus is not None
    milvus = inputs.milvus
    static = MilvusGroup("static_rg", LABEL_CREATED, (7,))
    node = MilvusNode(7, "other-querynode-0", "10.0.1.7:21123", "Normal")
    return replace(inputs, milvus=MilvusState({**milvus.groups, "static_rg": static}, {**milvus.nodes, 7: node},
                                              True, version))


def milvus_writes(actions: tuple[act.Action, ...]) -> list[act.Action]:
    return [a for a in actions if isinstance(a, act.MILVUS_ACTIONS)]


def events(actions: tuple[act.Action, ...], reason: str) -> list[act.PostEvent]:
    return [a for a in actions if isinstance(a, act.PostEvent) and a.event_reason == reason]


def test_an_undeclared_group_is_reported_once_and_never_written() -> None:
    inputs = with_static_group(converged_inputs())
    first = core_plan.plan_pass(inputs)
    assert milvus_writes(first.actions) == []
    assert first.converged
    (warning,) = events(first.actions, "UndeclaredGroup")
    assert warning.type == "Warning" and "static_rg (1 nodes)" in warning.message
    assert "MILVUS_SERVER_LABEL_RESOURCE_GROUP" in warning.message
    status = next(a.status for a in first.actions if isinstance(a, act.WriteStatus) and a.kind == "QueryNodePool")
    assert status["observedGroups"] == [{"name": "static_rg", "requests": 0, "limits": 1_000_000, "nodes": 1}]
    assert status["observedGroupsOmitted"] == 0
    second = core_plan.plan_pass(applied(inputs, first.actions))
    assert second.actions == () and second.converged  # once per transition; nothing written at rest


def test_the_default_the_pending_and_every_declared_group_are_not_observed() -> None:
    inputs = with_static_group(converged_inputs())
    assert inputs.pool is not None and inputs.milvus is not None
    assert [g.name for g in observed_groups(inputs.pool, inputs.groups, inputs.milvus)] == ["static_rg"]
    invalid = DeclaredGroup("static", "pool", "static_rg", 1, None, ("nowhere",), None)  # frozen, still declared
    frozen = [*inputs.groups, GroupInput(ObjectState("static", 1), invalid)]
    assert observed_groups(inputs.pool, frozen, inputs.milvus) == []


def test_observed_groups_are_listed_within_bounds() -> None:
    inputs = converged_inputs()
    assert inputs.milvus is not None
    many = {f"rg_{i:02}": MilvusGroup(f"rg_{i:02}", LABEL_CREATED, ()) for i in range(25)}
    inputs = replace(inputs, milvus=replace(inputs.milvus, groups={**inputs.milvus.groups, **many}))
    result = core_plan.plan_pass(inputs)
    status = next(a.status for a in result.actions if isinstance(a, act.WriteStatus) and a.kind == "QueryNodePool")
    assert [g["name"] for g in status["observedGroups"]] == [f"rg_{i:02}" for i in range(20)]
    assert status["observedGroupsOmitted"] == 5
    (warning,) = events(result.actions, "UndeclaredGroup")
    assert "rg_19 (0 nodes) and 5 more;" in warning.message and "rg_20" not in warning.message  # bounded
    assert core_plan.plan_pass(applied(inputs, result.actions)).actions == ()


def declare(inputs: PassInputs, group: DeclaredGroup) -> PassInputs:
    return replace(inputs, groups=[*inputs.groups, GroupInput(ObjectState(group.cr_name, 1, finalized=True), group)])


def test_a_group_declared_as_milvus_has_it_is_adopted_without_a_write() -> None:
    """A ResourceGroup naming an existing group with the very config Milvus has: the planner writes nothing to
    Milvus (it would otherwise rewrite an equal config), and says it adopted the group."""
    observed = with_static_group(converged_inputs())
    first = core_plan.plan_pass(observed)
    seen = applied(observed, first.actions)
    same = DeclaredGroup("static", "pool", "static_rg", 0, 1_000_000, (), ())
    adopted = core_plan.plan_pass(declare(seen, same))
    assert milvus_writes(adopted.actions) == []
    (event,) = events(adopted.actions, "GroupAdopted")
    assert event.type == "Normal" and "ResourceGroup static declares Milvus group static_rg" in event.message
    status = next(a.status for a in adopted.actions if isinstance(a, act.WriteStatus) and a.kind == "QueryNodePool")
    assert status["observedGroups"] == []


def test_an_adopted_group_is_written_only_where_its_spec_differs() -> None:
    declared = DeclaredGroup("static", "pool", "static_rg", 1, None, None, None)
    result = core_plan.plan_pass(declare(with_static_group(converged_inputs()), declared))
    (update,) = milvus_writes(result.actions)
    assert isinstance(update, act.UpdateGroups)
    assert update.summary == (f"update_resource_groups static_rg requests 0->1 limits 1000000->1 "
                              f"transferFrom []->['{PENDING}'] transferTo []->['{PENDING}']")


def labelled_pods(count: int, group: str) -> list[PodState]:
    return [PodState(f"{STS}-{i}", i, True, False, ip=f"10.0.0.{i}", milvus_labels={"RESOURCE_GROUP": group})
            for i in range(count)]


def deleting_static_group(version: str) -> PassInputs:
    """ResourceGroup `static` (static_rg, emptied: limits 0, no node) being deleted while the pool's pods carry
    MILVUS_SERVER_LABEL_RESOURCE_GROUP=static_rg."""
    inputs = with_static_group(converged_inputs(), version)
    assert inputs.milvus is not None
    emptied = MilvusGroup("static_rg", GroupConfig(0, 0, (), (PENDING,)), ())
    milvus = replace(inputs.milvus, groups={**inputs.milvus.groups, "static_rg": emptied})
    group = DeclaredGroup("static", "pool", "static_rg", 0, None, None, None, deleting=True)
    return replace(declare(inputs, group), milvus=milvus, pods=labelled_pods(2, "static_rg"))


def test_milvus_2_6_8_keeps_a_group_its_nodes_are_labelled_with_so_the_drop_waits_for_the_label() -> None:
    result = core_plan.plan_pass(deleting_static_group("v2.6.8"))
    assert not any(isinstance(a, act.DropGroup) for a in result.actions)
    status = next(a.status for a in result.actions if isinstance(a, act.WriteStatus) and a.name == "static")
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "GroupDeletionBlocked"
    assert f"{STS}-0, {STS}-1 carry static_rg" in degraded["message"]
    before = core_plan.plan_pass(deleting_static_group("v2.6.7")).actions  # the label means nothing before 2.6.8
    assert [a.name for a in before if isinstance(a, act.DropGroup)] == ["static_rg"]


def test_the_role_specific_label_wins_and_only_milvus_2_6_8_reads_it() -> None:
    pod = PodState(f"{STS}-0", 0, True, False, milvus_labels={"RESOURCE_GROUP": "a", "QUERYNODE_RESOURCE_GROUP": "b"})
    other = PodState(f"{STS}-1", 1, True, False, milvus_labels={"ZONE": "az1"})
    assert label_holders([pod, other], MilvusState({}, {}, True, "v2.6.8")) == {"b": (f"{STS}-0",)}
    assert label_holders([pod, other], MilvusState({}, {}, True, "v2.6.7")) == {}
