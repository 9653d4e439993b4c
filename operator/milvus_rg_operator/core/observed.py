"""Groups Milvus has that no ResourceGroup of the pool declares, and groups named by query nodes' labels.

Milvus 2.6.8+ places a query node started with `MILVUS_SERVER_LABEL_RESOURCE_GROUP=<rg>` (the role-specific
`MILVUS_SERVER_LABEL_QUERYNODE_RESOURCE_GROUP` wins over it) in that group, creating it with requests 0 and limits
1,000,000; people also create groups by hand. The operator *observes* such a group: it never changes or drops it,
lists it in the pool's status (`status.observedGroups`, bounded) and posts one Warning event when one appears. A
ResourceGroup that later declares it adopts it as it is: `configs.plan_milvus` writes a config only where it
differs from Milvus's, and a Normal event says so.

The pool's own pods count wherever Milvus placed them: a pod whose node sits in an observed group is drained like
any serving pod before it goes (`scaling`), and the pool never sizes its StatefulSet for an observed group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from milvus_rg_operator.constants import POOL_KIND
from milvus_rg_operator.core import conditions as cond
from milvus_rg_operator.core.actions import PostEvent
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import DEFAULT_GROUP, DeclaredPool, GroupInput, MilvusGroup, MilvusState, PodState

# A query node's group label (sessionutil/labels.go, 2.6.8): the role-specific key first.
GROUP_LABEL_KEYS = ("QUERYNODE_RESOURCE_GROUP", "RESOURCE_GROUP")
GROUP_LABEL_ENV = "MILVUS_SERVER_LABEL_RESOURCE_GROUP"
UNDECLARED_EVENT, ADOPTED_EVENT = "UndeclaredGroup", "GroupAdopted"


def labelled_group(pod: PodState) -> str | None:
    """The group a pod's query node names with its label (only Milvus 2.6.8+ acts on it)."""
    return next((pod.milvus_labels[key] for key in GROUP_LABEL_KEYS if pod.milvus_labels.get(key)), None)


def label_holders(pods: Sequence[PodState], milvus: MilvusState) -> dict[str, tuple[str, ...]]:
    """Milvus group -> the live pods of the pool whose node is labelled into it, when this Milvus acts on the
    label (2.6.8+): Milvus refuses to drop such a group while one of those nodes has a session."""
    if not milvus.support.groups_from_labels:
        return {}
    holders: dict[str, list[str]] = {}
    for pod in sorted(pods, key=lambda p: p.sort_key):
        group = labelled_group(pod)
        if group:
            holders.setdefault(group, []).append(pod.name)
    return {group: tuple(names) for group, names in holders.items()}


def declared_names(groups: Sequence[GroupInput]) -> dict[str, str]:
    """Milvus name -> ResourceGroup, for every group of the pool whose spec could be read (valid or not)."""
    return {resolve_group_name(g.declared): g.obj.name for g in groups if g.declared is not None}


def observed_groups(pool: DeclaredPool, groups: Sequence[GroupInput], milvus: MilvusState) -> list[MilvusGroup]:
    """Milvus's groups that no ResourceGroup of the pool declares, by name (the default and the pending group
    are the pool's own)."""
    declared = declared_names(groups)
    return [group for name, group in sorted(milvus.groups.items())
            if name not in declared and name not in (DEFAULT_GROUP, pool.pending_group)]


def status_fields(observed: Sequence[MilvusGroup]) -> dict[str, Any]:
    """`observedGroups` (the first MEMBERS_SHOWN by name) and how many more there are."""
    shown = observed[:cond.MEMBERS_SHOWN]
    return {"observedGroups": [{"name": g.name, "requests": g.config.requests, "limits": g.config.limits,
                                "nodes": len(g.node_ids)} for g in shown],
            "observedGroupsOmitted": len(observed) - len(shown)}


def _shown(status: Mapping[str, Any]) -> tuple[set[str], int]:
    return ({row.get("name", "") for row in status.get("observedGroups") or []},
            int(status.get("observedGroupsOmitted") or 0))


def observed_events(pool: DeclaredPool, previous: Mapping[str, Any], observed: Sequence[MilvusGroup],
                    groups: Sequence[GroupInput], milvus: MilvusState,
                    holders: Mapping[str, Sequence[str]]) -> list[PostEvent]:
    """A Warning when groups appear that no ResourceGroup declares, a Normal event when a ResourceGroup adopts one:
    once per transition, read against the status the pool had (`previous`)."""
    before, omitted_before = _shown(previous)
    now = status_fields(observed)
    shown = [g for g in observed if g.name in {row["name"] for row in now["observedGroups"]}]
    events: list[PostEvent] = []
    new = [g for g in shown if g.name not in before]
    if new or now["observedGroupsOmitted"] > omitted_before:
        names = cond.listed([f"{g.name} ({len(g.node_ids)} nodes{_labelled_by(holders.get(g.name, ()))})"
                             for g in new])
        more = now["observedGroupsOmitted"] - omitted_before
        if more > 0:
            names = f"{names} and {more} more" if names else f"{more} more"
        origin = (f" (Milvus >= 2.6.8 creates a group for a query node started with {GROUP_LABEL_ENV})"
                  if milvus.support.groups_from_labels else "")
        events.append(PostEvent(POOL_KIND, pool.name, "Warning", UNDECLARED_EVENT,
                                f"Milvus has resource group(s) no ResourceGroup of this pool declares{origin}: "
                                f"{names}; left as they are, never changed or dropped (status."
                                "observedGroups); a ResourceGroup with spec.groupName set to one adopts it"))
    declared = declared_names(groups)
    for name in sorted(before - {g.name for g in observed}):
        found = milvus.groups.get(name)
        if name in declared and found is not None:
            events.append(PostEvent(POOL_KIND, pool.name, "Normal", ADOPTED_EVENT,
                                    f"ResourceGroup {declared[name]} declares Milvus group {name}: adopted as it is "
                                    f"(requests {found.config.requests}, limits {found.config.limits}, "
                                    f"{len(found.node_ids)} nodes); its config is written only where the spec "
                                    "differs"))
    return events


def _labelled_by(pods: Sequence[str]) -> str:
    return f"; named by the {GROUP_LABEL_ENV} label of {cond.listed(list(pods), 5)}" if pods else ""
