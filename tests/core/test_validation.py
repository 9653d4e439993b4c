from __future__ import annotations

from dataclasses import replace

import pytest

from milvus_rg_operator.core.types import DEFAULT_GROUP, STATEFULSET, DeclaredGroup, DeclaredPool, WorkloadRef
from milvus_rg_operator.core.validation import validate

POOL = DeclaredPool("pool", "__pending_nodes", 0, 0, 10, WorkloadRef(STATEFULSET, "qn"))
RG1 = DeclaredGroup("rg1", "pool", None, 2, None, None, None)
RG2 = DeclaredGroup("rg2", "pool", None, 1, None, None, None)


def fields(pool: DeclaredPool | None, *groups: DeclaredGroup) -> set[tuple[str, str]]:
    return {(p.name, p.field) for p in validate(pool, "pool", groups, {DEFAULT_GROUP})}


def test_valid_pool_has_no_problems() -> None:
    assert validate(POOL, "pool", [RG1, RG2], {DEFAULT_GROUP}) == []


@pytest.mark.parametrize(("group", "field"), [
    (replace(RG1, group_name=""), "spec.groupName"),
    (replace(RG1, group_name="a" * 256), "spec.groupName"),
    (replace(RG1, group_name="1rg"), "spec.groupName"),
    (replace(RG1, group_name="rg-1"), "spec.groupName"),
    (replace(RG1, cr_name="1rg"), "metadata.name"),
    (replace(RG1, transfer_from=("__pending_nodes", "rg1")), "spec.transferFrom[1]"),
    (replace(RG1, transfer_to=("nowhere",)), "spec.transferTo[0]"),
    (replace(RG1, previous_group_name="old"), "spec.groupName"),
    (replace(RG1, group_name="__pending_nodes"), "spec.groupName"),
])
def test_each_group_problem_names_its_field(group: DeclaredGroup, field: str) -> None:
    assert (group.cr_name, field) in fields(POOL, group, RG2)


def test_of_two_crs_for_one_milvus_name_only_the_newer_is_refused() -> None:
    older = replace(RG1, created_at=100.0)
    twin = replace(RG2, cr_name="a-newer", group_name="rg1", created_at=200.0)
    problems = validate(POOL, "pool", [twin, older], {DEFAULT_GROUP})
    assert [(p.name, p.field) for p in problems] == [("a-newer", "spec.groupName")]
    assert "already declared by ResourceGroup rg1, created earlier" in problems[0].message


def test_two_claims_of_the_same_age_go_to_the_one_holding_the_name_then_to_the_first_name() -> None:
    twin = replace(RG2, cr_name="other", group_name="rg1")
    assert fields(POOL, RG1, twin) == {("rg1", "spec.groupName")}
    assert fields(POOL, replace(RG1, previous_group_name="rg1"), twin) == {("other", "spec.groupName")}


def test_missing_pool_is_reported_on_each_group() -> None:
    assert fields(None, RG1, RG2) == {("rg1", "spec.pool"), ("rg2", "spec.pool")}


def test_requests_above_max_nodes_are_a_pool_problem() -> None:
    assert ("pool", "spec.maxNodes") in fields(replace(POOL, max_nodes=2), RG1, RG2)


def test_transfer_to_a_group_existing_only_in_milvus_is_fine() -> None:
    group = replace(RG1, transfer_from=("legacy",))
    assert validate(POOL, "pool", [group], {DEFAULT_GROUP, "legacy"}) == []
