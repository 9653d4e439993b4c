"""Hypothesis strategies: pools, groups and consistent observations of a StatefulSet and Milvus."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from milvus_rg_operator.core.types import (
    DEPLOYMENT,
    STATEFULSET,
    DeclaredGroup,
    DeclaredPool,
    DrainRecord,
    GroupConfig,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    PodState,
    WorkloadRef,
    WorkloadState,
    with_pod_hostnames,
)
from milvus_rg_operator.core.workloads import COST_EMPTY, COST_SERVING, DELETION_COST

PENDING = "__pending_nodes"
STS = "qn"
STS_REF = WorkloadRef(STATEFULSET, STS)
COSTS = st.sampled_from([None, str(COST_EMPTY), "0", str(COST_SERVING), "7"])
DRAIN_PHASES = ("Surging", "Suspending", "WaitingForReplacement", "MovingData", "Drained", "Stalled")
group_names = st.from_regex(r"\A[a-z_][a-z0-9_]{0,12}\Z").filter(lambda n: n != PENDING)


@st.composite
def pools(draw: st.DrawFn, workload: WorkloadRef = STS_REF) -> DeclaredPool:
    max_nodes = draw(st.none() | st.integers(0, 12))
    min_nodes = draw(st.integers(0, max_nodes if max_nodes is not None else 6))
    return DeclaredPool(name="pool", pending_group=PENDING, spare_nodes=draw(st.integers(0, 2)),
                        min_nodes=min_nodes, max_nodes=max_nodes, workload=workload,
                        max_unavailable=draw(st.integers(1, 3)), drain_timeout_seconds=600,
                        force_after_timeout=draw(st.booleans()))


@st.composite
def groups(draw: st.DrawFn, max_groups: int = 4, max_requests: int | None = None) -> list[DeclaredGroup]:
    """`max_requests`: a bound on the groups' total requests (a world that scales in keeps it below its pods)."""
    names = draw(st.lists(group_names, min_size=0, max_size=max_groups, unique=True))
    result = []
    budget = max_requests
    for name in names:
        requests = draw(st.integers(0, 4 if budget is None else min(4, budget)))
        if budget is not None:
            budget -= requests
        limits = draw(st.none() | st.integers(requests, requests + 3))
        others = [n for n in names if n != name]
        transfer = st.none() | st.lists(st.sampled_from([PENDING, *others]), max_size=2, unique=True)
        result.append(DeclaredGroup(cr_name=name.replace("_", "-").strip("-") or "x", pool="pool",
                                    group_name=name, requests=requests, limits=limits,
                                    transfer_from=draw(transfer), transfer_to=draw(transfer),
                                    deleting=draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else False))
    return result


@dataclass(frozen=True)
class World:
    pool: DeclaredPool
    groups: list[DeclaredGroup]
    sts: WorkloadState  # the pool's workload
    pods: list[PodState]
    milvus: MilvusState
    drains: list[DrainRecord]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A workload (a StatefulSet or a Deployment) with pods, each maybe registered in Milvus, placed in some
    group or none, with drains in every phase. Half the worlds want fewer nodes than they have, so the scale-in
    branches run often. A Deployment's pods carry what a ReplicaSet ranks them by (phase, scheduling, readiness
    time, restarts, age, a deletion cost or none)."""
    workload = draw(st.sampled_from([STS_REF, WorkloadRef(DEPLOYMENT, STS)]))
    pool = draw(pools(workload))
    replicas = draw(st.integers(0, 8))
    shrinking = draw(st.booleans())
    declared = draw(groups(max_requests=max(replicas - 1 - pool.spare_nodes, 0) if shrinking else None))
    group_pool = [PENDING, "__default_resource_group", *(g.group_name or "" for g in declared if not g.deleting)]
    members: dict[str, list[int]] = {name: [] for name in group_pool}
    pods: list[PodState] = []
    nodes: dict[int, MilvusNode] = {}
    for ordinal in range(replicas):
        ready = draw(st.booleans()) or draw(st.booleans())
        ip = f"10.0.0.{ordinal + 2}"
        terminating = draw(st.integers(0, 9)) == 0
        if workload.kind == STATEFULSET:
            name = f"{STS}-{ordinal}"
            pods.append(PodState(name=name, ordinal=ordinal, ready=ready, terminating=terminating, ip=ip))
        else:
            name = f"{STS}-5d9f8-{ordinal:05d}"
            cost = draw(COSTS)
            scheduled = draw(st.integers(0, 7)) > 0
            pods.append(PodState(
                name=name, ordinal=None, ready=ready and scheduled, terminating=terminating, ip=ip,
                annotations={} if cost is None else {DELETION_COST: cost},
                phase="Running" if scheduled else draw(st.sampled_from(["Pending", "Unknown"])),
                scheduled=scheduled, ready_since=draw(st.sampled_from([0.0, 10.0, 20.0])),
                restarts=draw(st.integers(0, 2)), created_at=draw(st.sampled_from([1.0, 2.0, 3.0]))))
        if ready and draw(st.integers(0, 5)) > 0:
            node_id = 100 + ordinal
            has_data = draw(st.booleans())
            placement = draw(st.none() | st.sampled_from(group_pool))
            # As on the wire: describe_resource_group gives a member's hostname; node/list, the only source
            # for a node in no group (suspended), gives ID, address and state.
            hostname = name if placement is not None else ""
            nodes[node_id] = MilvusNode(node_id, hostname, f"{ip}:21123", "Normal",
                                        segments=int(has_data), channels=draw(st.integers(0, 1)))
            if placement is not None:
                members[placement].append(node_id)
    for index in range(draw(st.integers(0, 2))):
        # Milvus 2.6: the query node embedded in a streaming node, listed by node/list (master: as "Suspend"),
        # in no group, holding channels, with no pod of the pool.
        nodes[900 + index] = MilvusNode(900 + index, "", f"10.0.9.{index}:22222", draw(st.sampled_from(
            ["Normal", "Suspend"])), segments=0, channels=draw(st.integers(0, 2)))
    milvus_groups = {}
    for name, node_ids in members.items():
        declared_group = next((g for g in declared if g.group_name == name), None)
        requests = declared_group.requests if declared_group else 0
        limits = declared_group.effective_limits if declared_group else 1_000_000
        loaded = draw(st.dictionaries(st.sampled_from(["books", "films"]), st.integers(1, 3), max_size=1))
        milvus_groups[name] = MilvusGroup(name, GroupConfig(requests, limits), tuple(node_ids), loaded)
    state = MilvusState(milvus_groups, nodes, management_available=draw(st.booleans()) or draw(st.booleans()))
    state = with_pod_hostnames(state, pods)  # as the reconcile pass does before planning
    drains = []
    for pod in pods:
        node = state.node_of_pod(pod.name)
        if node is not None and draw(st.integers(0, 2)) == 0:
            # A drained node is out of its group (or in the pending one): its record names the group it left.
            placed = state.group_of_node(node.node_id)
            left = draw(st.sampled_from([g.group_name or "rg" for g in declared if not g.deleting] or ["rg"]))
            drains.append(DrainRecord(pod.name, node.node_id, left if placed in (None, PENDING) else placed,
                                      started_at=draw(st.sampled_from([0.0, 990.0])),
                                      phase=draw(st.sampled_from(DRAIN_PHASES))))
    ready_count = sum(p.ready for p in pods)
    return World(pool, declared, WorkloadState(workload, replicas, ready_count), pods, state, drains)
