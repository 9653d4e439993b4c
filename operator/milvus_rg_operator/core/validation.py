"""Checks that need more than one object (single-object rules are in the CRD schema and its CEL rules;
they are repeated here for manifests that never went through an API server, such as `plan -f`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from milvus_rg_operator.constants import POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core.names import resolve_group_name, validate_group_name
from milvus_rg_operator.core.types import DEFAULT_GROUP, DeclaredGroup, DeclaredPool, Problem

POOL = POOL_KIND
GROUP = RESOURCE_GROUP_KIND


def validate(pool: DeclaredPool | None, pool_name: str, groups: Sequence[DeclaredGroup],
             existing_milvus_groups: Collection[str]) -> list[Problem]:
    """Every problem that stops the pool from being planned, each naming the object and field."""
    problems: list[Problem] = []
    if pool is None:
        for group in groups:
            problems.append(Problem(GROUP, group.cr_name, "spec.pool",
                                    f"QueryNodePool {pool_name!r} does not exist in this namespace"))
        return problems
    problems += _pool_problems(pool)
    names = {group.cr_name: resolve_group_name(group) for group in groups}
    for group in groups:
        problems += _group_problems(group, names[group.cr_name], pool)
    problems += _duplicate_names(groups, names)
    live = [g for g in groups if not g.deleting]
    declared = {names[g.cr_name] for g in groups}
    known = declared | {pool.pending_group, DEFAULT_GROUP} | set(existing_milvus_groups)
    for group in live:
        problems += _transfer_problems(group, names[group.cr_name], known)
    total = sum(g.requests for g in live)
    if pool.max_nodes is not None and total > pool.max_nodes:
        problems.append(Problem(POOL, pool.name, "spec.maxNodes",
                                f"the groups of this pool request {total} nodes in total, more than "
                                f"spec.maxNodes={pool.max_nodes}"))
    return problems


def _pool_problems(pool: DeclaredPool) -> list[Problem]:
    problems: list[Problem] = []
    for field_name, value in (("spec.spareNodes", pool.spare_nodes), ("spec.minNodes", pool.min_nodes),
                              ("spec.maxNodes", pool.max_nodes)):
        if value is not None and value < 0:
            problems.append(Problem(POOL, pool.name, field_name, f"must be >= 0, got {value}"))
    if pool.max_nodes is not None and pool.min_nodes > pool.max_nodes:
        problems.append(Problem(POOL, pool.name, "spec.minNodes",
                                f"spec.minNodes ({pool.min_nodes}) must be <= spec.maxNodes ({pool.max_nodes})"))
    reason = validate_group_name(pool.pending_group)
    if reason:
        problems.append(Problem(POOL, pool.name, "spec.pendingGroup", reason))
    if pool.pending_group == DEFAULT_GROUP:
        problems.append(Problem(POOL, pool.name, "spec.pendingGroup",
                                f"must not be {DEFAULT_GROUP}: the pending group holds spare nodes"))
    return problems


def _group_problems(group: DeclaredGroup, name: str, pool: DeclaredPool) -> list[Problem]:
    problems: list[Problem] = []
    field_name = "spec.groupName" if group.group_name is not None else "metadata.name"
    reason = validate_group_name(name)
    if reason:
        problems.append(Problem(GROUP, group.cr_name, field_name, f"{name!r}: {reason}"))
    if group.previous_group_name is not None and group.previous_group_name != name:
        problems.append(Problem(GROUP, group.cr_name, "spec.groupName",
                                f"spec.groupName is immutable: was {group.previous_group_name!r}, now {name!r}"))
    if name == pool.pending_group:
        problems.append(Problem(GROUP, group.cr_name, field_name,
                                f"{name!r} is the pool's pending group (spec.pendingGroup of {pool.name})"))
    if group.requests < 0:
        problems.append(Problem(GROUP, group.cr_name, "spec.requests.nodeNum",
                                f"must be >= 0, got {group.requests}"))
    if group.limits is not None and group.limits < 0:
        problems.append(Problem(GROUP, group.cr_name, "spec.limits.nodeNum", f"must be >= 0, got {group.limits}"))
    if group.limits is not None and group.limits < group.requests:
        problems.append(Problem(GROUP, group.cr_name, "spec.limits.nodeNum",
                                f"spec.limits.nodeNum ({group.limits}) must be >= spec.requests.nodeNum "
                                f"({group.requests})"))
    return problems


def _duplicate_names(groups: Sequence[DeclaredGroup], names: dict[str, str]) -> list[Problem]:
    owners: dict[str, list[str]] = defaultdict(list)
    for group in groups:
        owners[names[group.cr_name]].append(group.cr_name)
    problems: list[Problem] = []
    for name, crs in sorted(owners.items()):
        if len(crs) > 1:
            for cr in sorted(crs):
                others = ", ".join(c for c in sorted(crs) if c != cr)
                problems.append(Problem(GROUP, cr, "spec.groupName",
                                        f"Milvus group {name!r} is also declared by ResourceGroup {others}"))
    return problems


def _transfer_problems(group: DeclaredGroup, name: str, known: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for field_name, targets in (("spec.transferFrom", group.transfer_from), ("spec.transferTo", group.transfer_to)):
        for index, target in enumerate(targets or ()):
            path = f"{field_name}[{index}]"
            if target == name:
                problems.append(Problem(GROUP, group.cr_name, path, f"{target!r} must not name the group itself"))
            elif target not in known:
                problems.append(Problem(GROUP, group.cr_name, path,
                                        f"resource group {target!r} is not declared in this pool and does not "
                                        "exist in Milvus"))
    return problems
