"""Checks that need more than one object, or the operator's own records. A rule of one object's spec lives
in the CRD schema and `api.rules` (checked at admission and by the models the specs are parsed with, so
manifests that never went through an API server, such as `plan -f`, are refused the same way)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from milvus_rg_operator.constants import POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core.names import resolve_group_name, validate_group_name
from milvus_rg_operator.core.types import DEFAULT_GROUP, DeclaredGroup, DeclaredPool, Problem


def validate(pool: DeclaredPool | None, pool_name: str, groups: Sequence[DeclaredGroup],
             existing_milvus_groups: Collection[str]) -> list[Problem]:
    """Every problem that stops the pool from being planned, each naming the object and field."""
    problems: list[Problem] = []
    if pool is None:
        for group in groups:
            problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, "spec.pool",
                                    f"QueryNodePool {pool_name!r} does not exist in this namespace"))
        return problems
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
        problems.append(Problem(POOL_KIND, pool.name, "spec.maxNodes",
                                f"the groups of this pool request {total} nodes in total, more than "
                                f"spec.maxNodes={pool.max_nodes}"))
    return problems


def _group_problems(group: DeclaredGroup, name: str, pool: DeclaredPool) -> list[Problem]:
    problems: list[Problem] = []
    field_name = "spec.groupName" if group.group_name is not None else "metadata.name"
    reason = validate_group_name(name)
    if reason:
        problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, field_name, f"{name!r}: {reason}"))
    if group.previous_group_name is not None and group.previous_group_name != name:
        problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, "spec.groupName",
                                f"spec.groupName is immutable: was {group.previous_group_name!r}, now {name!r}"))
    if name == pool.pending_group:
        problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, field_name,
                                f"{name!r} is the pool's pending group (spec.pendingGroup of {pool.name})"))
    return problems


def _duplicate_names(groups: Sequence[DeclaredGroup], names: dict[str, str]) -> list[Problem]:
    """Oldest first, as the Gateway API resolves conflicts: the ResourceGroup created first keeps a Milvus name,
    every newer one that claims it too is refused alone (the older one stays as it was)."""
    owners: dict[str, list[DeclaredGroup]] = defaultdict(list)
    for group in groups:
        owners[names[group.cr_name]].append(group)
    problems: list[Problem] = []
    for name, claimants in sorted(owners.items()):
        # Same-second creations tie on age: the one whose status already records the name keeps it.
        holder, *newer = sorted(claimants, key=lambda g: (g.created_at, g.previous_group_name != name, g.cr_name))
        for group in newer:
            problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, "spec.groupName",
                                    f"Milvus group {name!r} is already declared by ResourceGroup "
                                    f"{holder.cr_name}, created earlier"))
    return problems


def _transfer_problems(group: DeclaredGroup, name: str, known: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for field_name, targets in (("spec.transferFrom", group.transfer_from), ("spec.transferTo", group.transfer_to)):
        for index, target in enumerate(targets or ()):
            path = f"{field_name}[{index}]"
            if target == name:
                problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, path,
                                        f"{target!r} must not name the group itself"))
            elif target not in known:
                problems.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, path,
                                        f"resource group {target!r} is not declared in this pool and does not "
                                        "exist in Milvus"))
    return problems
