"""Declared replica placement: which groups serve which collections' replicas (`spec.collections`), checked
against Milvus and brought about with `transfer_replica` and, when the spec says so, `load_collection`.

Milvus moves a replica between groups in one step (its group changes at once) and its data in the background:
the replica's old nodes turn read-only and keep serving until its new nodes have loaded everything
(replica_observer.go, balance_checker.go). So a transfer never leaves a segment unserved as long as the target
group has nodes for it; the one ordering this module adds is that a group gets its nodes before replicas move
in. A collection is loaded only when every group declaring it says `loadIfReleased`; nothing is ever released.

Bad input is refused per group (the group is then left as it is in Milvus, and nothing is moved for it):
- a collection Milvus does not have;
- more replicas declared than there are nodes to serve them (`spec.requests.nodeNum`);
- more replicas declared than the collection has loaded: by one group alone, or by several together (the
  groups created first keep their claims, as with two claims on one Milvus group name).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from milvus_rg_operator.constants import RESOURCE_GROUP_KIND
from milvus_rg_operator.core.actions import Action, LoadCollection, TransferReplica
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import DeclaredGroup, MilvusState, Problem

Verdict = tuple[bool, str, str]  # (placed as declared, reason, message)
# Placements no pass can bring about: someone must change a spec.
STALLING_PLACEMENTS = frozenset({"ReplicasUndeclared"})


def problems(groups: Sequence[DeclaredGroup], milvus: MilvusState) -> list[Problem]:
    """What is wrong with the groups' `spec.collections`, each naming the entry's field."""
    found: list[Problem] = []
    live = [g for g in groups if not g.deleting and g.collections]
    for group in live:
        for index, entry in enumerate(group.collections):
            field_name = f"spec.collections[{index}]"
            if entry.replicas > group.requests:
                found.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, f"{field_name}.replicas",
                                     f"{entry.replicas} replicas of {entry.collection} need {entry.replicas} nodes "
                                     f"(one each), and spec.requests.nodeNum is {group.requests}"))
            if milvus.collections is None:
                continue
            info = milvus.collections.get(entry.collection)
            if info is None:
                found.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, f"{field_name}.name",
                                     f"collection {entry.collection!r} does not exist in Milvus"))
            elif info.loaded and entry.replicas > len(info.replicas):
                found.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, f"{field_name}.replicas",
                                     f"{entry.replicas} replicas of {entry.collection} declared, but it has "
                                     f"{len(info.replicas)} loaded"))
    return found + _claims_beyond_loaded(live, milvus, {p.name for p in found})


def _claims_beyond_loaded(groups: Sequence[DeclaredGroup], milvus: MilvusState,
                          refused: set[str]) -> list[Problem]:
    """Groups that together claim more replicas of a loaded collection than it has: oldest claims first, every
    group whose claim goes past the loaded count is refused (a group refused for its own entries claims none)."""
    if milvus.collections is None:
        return []
    claimed: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    found: list[Problem] = []
    for group in sorted(groups, key=lambda g: (g.created_at, g.cr_name)):
        if group.cr_name in refused:
            continue
        for index, entry in enumerate(group.collections):
            info = milvus.collections.get(entry.collection)
            if info is None or not info.loaded:
                continue
            earlier = claimed[entry.collection]
            left = len(info.replicas) - sum(n for _, n in earlier)
            if entry.replicas > left:
                holders = ", ".join(f"{name} ({n})" for name, n in earlier)
                found.append(Problem(RESOURCE_GROUP_KIND, group.cr_name, f"spec.collections[{index}].replicas",
                                     f"{entry.collection} has {len(info.replicas)} replicas loaded and "
                                     f"ResourceGroups created earlier claim {holders}: at most {max(left, 0)} left "
                                     f"for this group, {entry.replicas} declared"))
            else:
                earlier.append((group.cr_name, entry.replicas))
    return found


@dataclass(frozen=True)
class PlacementPlan:
    actions: tuple[Action, ...] = ()
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)  # Milvus group -> placement verdict
    declared: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # Milvus group -> collection -> replicas

    @property
    def settled(self) -> bool:
        """Nothing left that time will bring about (a placement only a spec change can fix does not wait)."""
        return self.waiting() is None

    def waiting(self) -> tuple[str, str] | None:
        """(reason, message) of the first group, by name, whose placement Milvus is still bringing about."""
        for name, (ok, reason, message) in sorted(self.verdicts.items()):
            if not ok and reason not in STALLING_PLACEMENTS:
                return reason, f"{name}: {message}"
        return None


def plan(groups: Sequence[DeclaredGroup], milvus: MilvusState) -> PlacementPlan:
    """Transfers and loads that bring Milvus towards the valid groups' declarations, and where each group is."""
    live = [g for g in groups if not g.deleting and g.collections]
    if not live or milvus.collections is None:
        return PlacementPlan()
    declared: dict[str, dict[str, int]] = {resolve_group_name(g): {e.collection: e.replicas for e in g.collections}
                                           for g in live}
    loads = {resolve_group_name(g): {e.collection for e in g.collections if e.load_if_released} for g in live}
    notes: dict[str, list[tuple[bool, str, str]]] = collections.defaultdict(list)
    actions: list[Action] = []
    for name in sorted({c for wanted in declared.values() for c in wanted}):
        wanting = {group: wanted[name] for group, wanted in declared.items() if name in wanted}
        info = milvus.collections.get(name)
        if info is None:
            continue
        if not info.loaded:
            actions += _load(name, wanting, loads, milvus, notes)
        else:
            actions += _transfers(name, wanting, milvus, notes)
    verdicts: dict[str, Verdict] = {}
    for group in declared:
        waiting = [n for n in notes[group] if not n[0]]
        if waiting:
            verdicts[group] = (False, waiting[0][1], "; ".join(m for _, _, m in waiting))
        else:
            extra = "; ".join(m for _, _, m in notes[group])
            verdicts[group] = (True, "ReplicasPlaced", "replicas placed as declared" + (f"; {extra}" if extra else ""))
    return PlacementPlan(tuple(actions), verdicts, declared)


def _load(name: str, wanting: Mapping[str, int], loads: Mapping[str, set[str]], milvus: MilvusState,
          notes: dict[str, list[tuple[bool, str, str]]]) -> list[Action]:
    holding_back = sorted(g for g in wanting if name not in loads[g])
    if holding_back:
        for group in wanting:
            notes[group].append((True, "CollectionReleased",
                                 f"{name} is released and stays so: {', '.join(holding_back)} "
                                 f"{'does' if len(holding_back) == 1 else 'do'} not set loadIfReleased"))
        return []
    short = {g: n for g, n in wanting.items() if _nodes(milvus, g) < n}
    if short:
        for group in wanting:
            notes[group].append((False, "WaitingForNodes", f"{name} loads once "
                                 + ", ".join(f"{g} has {n} nodes" for g, n in sorted(short.items()))))
        return []
    groups = [g for g, n in sorted(wanting.items()) for _ in range(n)]
    total = len(groups)
    for group in wanting:
        notes[group].append((False, "LoadingCollection", f"loading {name} with {total} replicas"))
    placement = ", ".join(f"{g}: {n}" for g, n in sorted(wanting.items()))
    return [LoadCollection(name, total, tuple(groups) if len(wanting) > 1 else (groups[0],),
                           f"every group declaring {name} sets loadIfReleased ({placement})")]


def _nodes(milvus: MilvusState, group: str) -> int:
    found = milvus.groups.get(group)
    return len(found.node_ids) if found else 0


def _transfers(name: str, wanting: Mapping[str, int], milvus: MilvusState,
               notes: dict[str, list[tuple[bool, str, str]]]) -> list[Action]:
    """Fill the groups short of their declared replicas from groups above theirs (declaring groups first, then
    groups that declare nothing for the collection), once the target has a node for each of its replicas."""
    current = {g: found.loaded_replicas.get(name, 0) for g, found in milvus.groups.items()}
    surplus = {g: current.get(g, 0) - n for g, n in wanting.items() if current.get(g, 0) > n}
    surplus |= {g: n for g, n in sorted(current.items()) if g not in wanting and n > 0}
    sources = sorted(surplus, key=lambda g: (g not in wanting, g))
    actions: list[Action] = []
    for target, want in sorted(wanting.items()):
        short = want - current.get(target, 0)
        if short <= 0:
            continue
        if _nodes(milvus, target) < want:
            notes[target].append((False, "WaitingForNodes",
                                  f"{want} replicas of {name} wait for {want} nodes ({_nodes(milvus, target)} now)"))
            continue
        for source in sources:
            if short == 0:
                break
            count = min(short, surplus[source])
            if count <= 0:
                continue
            surplus[source] -= count
            short -= count
            why = "declares none" if source not in wanting else f"declares {wanting[source]}"
            actions.append(TransferReplica(source, target, name, count,
                                           f"{target} declares {want} replicas of {name}; {source} {why}"))
        if short > 0:
            notes[target].append((False, "ReplicasUndeclared",
                                  f"{name}: {short} of the {want} replicas declared here are in no group that "
                                  "can give them up"))
        else:
            notes[target].append((False, "MovingReplicas", f"moving {want - current.get(target, 0)} replicas of "
                                  f"{name} here"))
    for group, want in wanting.items():
        found = milvus.groups.get(group)
        have = current.get(group, 0)
        if have > want and not any(isinstance(a, TransferReplica) and a.source_group == group for a in actions):
            notes[group].append((False, "ReplicasUndeclared",
                                 f"holds {have} replicas of {name}, {want} declared: declare the other "
                                 f"{have - want} in another group"))
        elif found is not None and (found.incoming.get(name) or found.outgoing.get(name)):
            notes[group].append((False, "MovingReplicas", f"Milvus is moving {name}'s data "
                                 f"({found.incoming.get(name, 0)} nodes in, {found.outgoing.get(name, 0)} out)"))
        elif unsettled := _replicas_off_their_group(name, group, milvus):
            # describe shows no node in or out until the replica observer's next pass (up to 60 s) gives a
            # transferred replica its new nodes: GetReplicas does.
            notes[group].append((False, "MovingReplicas", f"{unsettled} replica(s) of {name} wait for nodes of "
                                 f"{group}"))
    return actions


def _replicas_off_their_group(collection: str, group: str, milvus: MilvusState) -> int:
    """Replicas of `collection` in `group` with no node, or with a node outside the group (GetReplicas)."""
    info = (milvus.collections or {}).get(collection)
    found = milvus.groups.get(group)
    members = set(found.node_ids) if found else set()
    return sum(1 for r in info.replicas if r.group == group and (not r.node_ids or not set(r.node_ids) <= members)
               ) if info else 0
