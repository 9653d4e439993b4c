"""The indexed, bounded statuses say the same as the old per-pod scans they replaced (kept here as the
reference): group members are the old list cut at MEMBERS_SHOWN, the pool's counts add up to the old
member list, and its attention list is the old list's non-serving members."""

from __future__ import annotations

import collections
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from milvus_rg_operator.core import conditions
from milvus_rg_operator.core.configs import MilvusPlan
from milvus_rg_operator.core.labels import pod_placement
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.scaling import ScalePlan
from milvus_rg_operator.core.types import MilvusNode, MilvusState, PodState
from tests.core.strategies import World, worlds


def old_pool_members(pods: Sequence[PodState], milvus: MilvusState, pending_group: str,
                     draining: Collection[str]) -> list[dict[str, Any]]:
    members = []
    for pod in sorted(pods, key=lambda p: p.sort_key):
        group, node_id, state = pod_placement(pod, milvus, pending_group, draining)
        member: dict[str, Any] = {"pod": pod.name,
                                  "state": conditions.MEMBER_STATES[state] if node_id is not None or pod.terminating
                                  else "Unregistered" if pod.ready else "Joining"}
        if pod.ordinal is not None:
            member["ordinal"] = pod.ordinal
        if node_id is not None:
            member["nodeId"] = node_id
        if group is not None:
            member["group"] = group
        members.append(member)
    return members


def old_group_members(name: str, milvus: MilvusState, pods: Sequence[PodState]) -> list[dict[str, Any]]:
    found = milvus.groups.get(name)
    node_ids = set(found.node_ids) if found else set()
    members = []
    for pod in sorted(pods, key=lambda p: p.sort_key):
        node = milvus.node_of_pod(pod.name)
        if node is not None and node.node_id in node_ids:
            members.append({"pod": pod.name, "nodeId": node.node_id})
    return members


@st.composite
def restarted_worlds(draw: st.DrawFn) -> World:
    """Worlds where some pods also have an older, stale node (a restarted process) that may still sit in
    a group: only the newest node of a pod counts."""
    world = draw(worlds())
    nodes = dict(world.milvus.nodes)
    groups = dict(world.milvus.groups)
    for node in list(nodes.values()):
        if draw(st.integers(0, 3)) == 0:
            stale = MilvusNode(node.node_id - 50, node.hostname, node.address, "Healthy")
            nodes[stale.node_id] = stale
            target = draw(st.sampled_from(sorted(groups)))
            groups[target] = replace(groups[target], node_ids=(*groups[target].node_ids, stale.node_id))
    milvus = MilvusState(groups, nodes, world.milvus.management_available)
    return replace(world, milvus=milvus)


@settings(max_examples=300, deadline=None)
@given(restarted_worlds(), st.integers(0, 3))
def test_group_members_are_the_old_list_cut_at_the_limit(world: World, shown: int) -> None:
    index = conditions.pod_index(world.pods)
    for name in world.milvus.groups:
        old = old_group_members(name, world.milvus, world.pods)
        new, omitted = conditions.group_members(name, world.milvus, index)
        assert new == old[:conditions.MEMBERS_SHOWN]
        assert omitted == len(old) - len(new)
    for group in world.groups:  # the whole status: a sequence or an index give the same
        status = conditions.group_status(group, world.milvus, world.pods, MilvusPlan(), generation=1,
                                         previous={}, now=0.0)
        assert status == conditions.group_status(group, world.milvus, index, MilvusPlan(), generation=1,
                                                 previous={}, now=0.0)
        assert status["nodes"] == len(world.milvus.groups[resolve_group_name(group)].node_ids) \
            if resolve_group_name(group) in world.milvus.groups else status["nodes"] == 0


@settings(max_examples=300, deadline=None)
@given(restarted_worlds())
def test_pool_counts_and_attention_match_the_old_member_list(world: World) -> None:
    draining = {d.pod for d in world.drains}
    old = old_pool_members(world.pods, world.milvus, world.pool.pending_group, draining)
    counts, attention, omitted = conditions.pool_members(world.pods, world.milvus, world.pool.pending_group,
                                                         draining)
    expected_counts = collections.Counter((m.get("group", ""), m["state"]) for m in old)
    assert {(c.get("group", ""), c["state"]): c["count"] for c in counts} == expected_counts
    noisy = [m for m in old if m["state"] not in conditions.QUIET_STATES]
    assert attention == noisy[:conditions.MEMBERS_SHOWN]
    assert omitted == len(noisy) - len(attention)


def test_a_pool_of_many_pods_has_a_bounded_status() -> None:
    """10,000 joining pods: the status lists 20 of them and counts the rest."""
    pods = [PodState(f"qn-{i}", i, ready=False, terminating=False) for i in range(10_000)]
    milvus = MilvusState({}, {}, True)
    _, attention, omitted = conditions.pool_members(pods, milvus, "__pending_nodes", ())
    assert [m["pod"] for m in attention] == [f"qn-{i}" for i in range(conditions.MEMBERS_SHOWN)]
    assert omitted == 10_000 - conditions.MEMBERS_SHOWN
    assert conditions.listed([p.name for p in pods]).endswith(f"and {10_000 - conditions.MEMBERS_SHOWN} more")
    assert ScalePlan().victims == ()
