"""What Milvus should hold: the complete config of every group of a pool, and the calls that get it there.

A Milvus update replaces a config entirely and is one atomic batch, so the pool's configs are always
computed and sent together. Groups that refer to each other cannot be created in one step (a transfer
target must exist), so creation is two-phase: create with the references that already resolve, then
one update with the complete configs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from milvus_rg_operator.core.names import node_filter, resolve_group_name
from milvus_rg_operator.core.types import (
    DEFAULT_GROUP,
    PENDING_GROUP_LIMIT,
    DeclaredGroup,
    DeclaredPool,
    GroupConfig,
    MilvusState,
)


@dataclass(frozen=True)
class Blocker:
    """Why a group being deleted cannot be dropped yet: a condition reason and words an SRE can act on."""

    reason: str  # GroupDeletionBlocked (needs someone to act) or DeletingGroup (Milvus is getting there)
    message: str


LIMITS_NOT_ZERO = Blocker("DeletingGroup", "waiting for its limits to be set to 0")


@dataclass(frozen=True)
class MilvusPlan:
    create: tuple[tuple[str, GroupConfig], ...] = ()
    update: Mapping[str, GroupConfig] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    # Deleting groups whose CR may go: dropped now or before, or the default group (never dropped).
    released: tuple[str, ...] = ()
    # Deleting groups that must wait, with the reason.
    waiting: Mapping[str, Blocker] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.drop)


def desired_configs(pool: DeclaredPool, groups: Sequence[DeclaredGroup],
                    surge: Mapping[str, int] | None = None) -> dict[str, GroupConfig]:
    """Pending group + every declared group. Deleting groups get (0, 0) so Milvus empties them, and
    references to them are removed from the other groups so that they can be dropped.

    `surge` (group -> n) raises requests (and limits, if needed) by n while n of the group's nodes are
    being replaced before a drain: Milvus adds the replacements while the leaving nodes still serve."""
    surge = surge or {}
    pending = (pool.pending_group,)
    deleting = {resolve_group_name(g) for g in groups if g.deleting}
    desired = {pool.pending_group: GroupConfig(0, PENDING_GROUP_LIMIT)}
    for group in groups:
        name = resolve_group_name(group)
        transfer_to = pending if group.transfer_to is None else group.transfer_to
        if group.deleting:
            if name != DEFAULT_GROUP:
                desired[name] = GroupConfig(0, 0, (), _without(transfer_to, deleting)).normalized()
            continue
        transfer_from = pending if group.transfer_from is None else group.transfer_from
        requests = group.requests + surge.get(name, 0)
        desired[name] = GroupConfig(
            requests, max(group.effective_limits, requests), _without(transfer_from, deleting),
            _without(transfer_to, deleting), node_filter(group),
        ).normalized()
    return desired


def _without(names: Sequence[str], excluded: Collection[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n not in excluded)


def plan_milvus(desired: Mapping[str, GroupConfig], observed: MilvusState, deletable: Collection[str],
                label_holders: Mapping[str, Sequence[str]] | None = None) -> MilvusPlan:
    """`label_holders`: group -> pods whose query node names it with its group label (Milvus 2.6.8+ keeps such a
    group: `observed.label_holders`)."""
    existing = set(observed.groups)
    creatable = [n for n in desired if n not in existing and n not in deletable]
    # Referenced groups first (the pending group is referenced by all), then by name: deterministic.
    referenced = {t for c in desired.values() for t in (*c.transfer_from, *c.transfer_to)}
    creatable.sort(key=lambda n: (n not in referenced, n))
    create: list[tuple[str, GroupConfig]] = []
    applied = {name: group.config.normalized() for name, group in observed.groups.items()}
    for name in creatable:
        config = desired[name]
        resolvable = existing | {n for n, _ in create}
        first = GroupConfig(config.requests, config.limits,
                            tuple(t for t in config.transfer_from if t in resolvable),
                            tuple(t for t in config.transfer_to if t in resolvable), config.node_labels)
        create.append((name, first))
        applied[name] = first
    update = {name: config for name, config in desired.items()
              if name in applied and applied[name] != config}
    drop: list[str] = []
    released: list[str] = []
    waiting: dict[str, Blocker] = {}
    for name in sorted(deletable):
        if name == DEFAULT_GROUP or name not in existing:
            released.append(name)
            continue
        blocker = drop_blockers(name, observed, desired, (label_holders or {}).get(name, ()))
        if blocker is None and name not in update:
            drop.append(name)
            released.append(name)
        else:
            waiting[name] = blocker or LIMITS_NOT_ZERO
    return MilvusPlan(tuple(create), update, tuple(drop), tuple(released), waiting)


def drop_blockers(name: str, observed: MilvusState, desired: Mapping[str, GroupConfig],
                  labelled_by: Sequence[str] = ()) -> Blocker | None:
    """Why a group being deleted cannot be dropped yet; None if it can. `labelled_by`: pods whose query node names
    the group with its group label."""
    group = observed.groups[name]
    loaded = sorted(c for c, n in group.loaded_replicas.items() if n > 0)
    if loaded:
        return Blocker("GroupDeletionBlocked", f"collections still have replicas loaded in {name}: "
                       f"{', '.join(loaded)} (declare them in another ResourceGroup's spec.collections and the "
                       "operator moves them there, or release them)")
    if labelled_by:
        # resource_manager.go `validateResourceGroupIsDeletable` (master; the sandbox models it from 2.6.8): a node
        # with a session labelled with the group keeps it, and would create it again when it restarts.
        return Blocker("GroupDeletionBlocked", f"Milvus keeps a group that a query node's "
                       f"MILVUS_SERVER_LABEL_RESOURCE_GROUP names: {', '.join(labelled_by)} carry {name} (take the "
                       "label out of their pod template first)")
    if group.config.limits != 0 or group.config.requests != 0:
        return LIMITS_NOT_ZERO
    if group.node_ids:
        return Blocker("DeletingGroup", f"waiting for Milvus to move its {len(group.node_ids)} node(s) out")
    configs = {n: g.config for n, g in observed.groups.items()} | dict(desired)
    users = sorted(f"{other}'s {kind}" for other, config in configs.items() if other != name
                   for kind, names in (("transferFrom", config.transfer_from), ("transferTo", config.transfer_to))
                   if name in names)
    if users:
        return Blocker("DeletingGroup", f"still referenced by {', '.join(users)}")
    return None
