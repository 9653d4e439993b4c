"""Balance you can see and balance you can start: how evenly each replica of a group spreads its data over its
nodes, and the segment moves a requested balance makes.

Milvus balances data within a replica, never across replicas (balance_checker.go, `BalanceReplica`), so every
judgement here is per replica: the figures come from GetQuerySegmentInfo (sealed segments, rows, `mem_size`,
the nodes holding each) and GetReplicas (a replica's nodes, the node leading each channel).

A replica is out of balance when
- a node whose pod is older than `idleNodeSeconds` holds none of its segments while another node holds two or
  more (one segment each cannot be spread further), or
- two of its nodes differ in segment memory by more than `maxMemorySpreadPercent` of the larger (the article's
  `queryCoord.memoryUsageMaxDifferencePercentage`, 30) and moving a segment would narrow that difference (whole
  segments cannot always be split evenly).

A requested balance (annotation `milvusrg.io/balance` set to a new token) moves sealed segments from the most to the
least loaded node of each replica with gRPC `LoadBalance`, only where the move narrows their difference (the
article's rule: the difference after must be smaller than before), at most `maxMovesPerPass` a pass, never onto a
node that is draining or leaving, and ends when no such move is left.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from milvus_rg_operator.constants import RESOURCE_GROUP_KIND
from milvus_rg_operator.core.actions import Action, LoadBalance, PostEvent
from milvus_rg_operator.core.types import BalancePolicy, CollectionInfo, MilvusState, PodState, ReplicaInfo

Verdict = tuple[bool, str, str]
SUCCEEDED, RUNNING = "Succeeded", "Running"
MiB = 1 << 20


@dataclass(frozen=True)
class NodeLoad:
    """What one node holds, over every loaded collection."""

    segments: int = 0
    rows: int = 0
    memory_bytes: int = 0
    channels: int = 0


def node_loads(milvus: MilvusState) -> dict[int, NodeLoad]:
    """Per node: sealed segments, their rows and memory, and the channels it leads."""
    loads: dict[int, NodeLoad] = {}
    for info in (milvus.collections or {}).values():
        for segment in info.segments:
            for node in segment.node_ids:
                load = loads.get(node, NodeLoad())
                loads[node] = NodeLoad(load.segments + 1, load.rows + segment.rows,
                                       load.memory_bytes + segment.mem_size, load.channels)
        for replica in info.replicas:
            for leader in replica.channel_leaders:
                load = loads.get(leader, NodeLoad())
                loads[leader] = NodeLoad(load.segments, load.rows, load.memory_bytes, load.channels + 1)
    return loads


@dataclass(frozen=True)
class ReplicaData:
    """One replica's segments per node (its nodes that are in its group)."""

    collection: str
    replica: ReplicaInfo
    holdings: Mapping[int, tuple[tuple[int, int], ...]]  # node -> ((segment id, mem_size), ...)

    def memory(self, node: int) -> int:
        return sum(size for _, size in self.holdings[node])

    @property
    def spread_percent(self) -> int:
        sizes = [self.memory(n) for n in self.holdings]
        if not sizes or max(sizes) == 0:
            return 0
        return round(100 * (max(sizes) - min(sizes)) / max(sizes))

    @property
    def narrowable(self) -> bool:
        """Moving some segment of the fullest node to the emptiest one narrows their difference."""
        if len(self.holdings) < 2:
            return False
        fullest = max(self.holdings, key=self.memory)
        emptiest = min(self.holdings, key=self.memory)
        gap = self.memory(fullest) - self.memory(emptiest)
        return any(0 < size < gap for _, size in self.holdings[fullest])

    def idle(self) -> list[int]:
        """Nodes holding nothing while another holds two segments or more."""
        if not any(len(held) >= 2 for held in self.holdings.values()):
            return []
        return sorted(n for n, held in self.holdings.items() if not held)


def replicas_of(group: str, milvus: MilvusState) -> list[ReplicaData]:
    """The group's replicas, each with the segments of its collection on each of its nodes that Milvus places in
    the group (read-only nodes on their way out are left out)."""
    found = milvus.groups.get(group)
    members = set(found.node_ids) if found else set()
    result = []
    for info in sorted((milvus.collections or {}).values(), key=lambda c: c.name):
        for replica in info.replicas:
            if replica.group != group:
                continue
            nodes = [n for n in replica.node_ids if n in members]
            result.append(ReplicaData(info.name, replica, _holdings(info, nodes)))
    return result


def _holdings(info: CollectionInfo, nodes: Sequence[int]) -> dict[int, tuple[tuple[int, int], ...]]:
    held: dict[int, list[tuple[int, int]]] = {n: [] for n in nodes}
    for segment in info.segments:
        for node in segment.node_ids:
            if node in held:
                held[node].append((segment.segment_id, segment.mem_size))
    return {n: tuple(sorted(items)) for n, items in held.items()}


def _old_enough(node: int, milvus: MilvusState, pods: Mapping[str, PodState], since: float, now: float) -> bool:
    """The node's pod was created more than `since` seconds ago (a node Milvus shows without a pod counts)."""
    found = milvus.nodes.get(node)
    pod = pods.get(found.hostname) if found else None
    return pod is None or now - pod.created_at > since


def _label(node: int, milvus: MilvusState) -> str:
    found = milvus.nodes.get(node)
    return f"node {node} ({found.hostname})" if found and found.hostname else f"node {node}"


@dataclass(frozen=True)
class GroupBalance:
    verdict: Verdict  # the Balanced condition
    spread_percent: int | None  # None: no replica in the group
    idle_nodes: int


def judge(group: str, milvus: MilvusState, pods: Mapping[str, PodState], policy: BalancePolicy,
          now: float) -> GroupBalance:
    replicas = replicas_of(group, milvus)
    if not replicas:
        return GroupBalance((True, "NoReplicas", f"no collection has replicas in {group}"), None, 0)
    spread = max(r.spread_percent for r in replicas)
    idle = [(r, n) for r in replicas for n in r.idle()
            if _old_enough(n, milvus, pods, policy.idle_node_seconds, now)]
    if idle:
        replica, node = idle[0]
        return GroupBalance((False, "IdleNodes",
                             f"{_label(node, milvus)} holds no segment of {replica.collection} (replica "
                             f"{replica.replica.replica_id}) while other nodes of the replica hold several"
                             + (f"; {len(idle) - 1} more idle" if len(idle) > 1 else "")), spread, len(idle))
    uneven = [r for r in replicas if r.spread_percent > policy.max_memory_spread_percent and r.narrowable]
    if uneven:
        worst = max(uneven, key=lambda r: r.spread_percent)
        fullest = max(worst.holdings, key=worst.memory)
        emptiest = min(worst.holdings, key=worst.memory)
        return GroupBalance((False, "MemorySpread",
                             f"{worst.collection} (replica {worst.replica.replica_id}): {_label(fullest, milvus)} "
                             f"holds {worst.memory(fullest) / MiB:.1f} MiB, {_label(emptiest, milvus)} "
                             f"{worst.memory(emptiest) / MiB:.1f} MiB: {worst.spread_percent}% apart (more than "
                             f"spec.balance.maxMemorySpreadPercent={policy.max_memory_spread_percent})"),
                            spread, 0)
    return GroupBalance((True, "Balanced", f"largest memory spread within a replica {spread}% (at most "
                                           f"{policy.max_memory_spread_percent}%), no idle node"), spread, 0)


def waiting_for_data(groups: Collection[str], milvus: MilvusState) -> list[str]:
    """Nodes of `groups` that hold nothing yet while other nodes of their replica hold several segments: a
    scale-out whose new nodes do not serve data yet (no age grace: `scaleOutWaitsForData`)."""
    return [f"{_label(n, milvus)} in {g} ({r.collection})" for g in sorted(groups)
            for r in replicas_of(g, milvus) for n in r.idle()]


@dataclass(frozen=True)
class RequestedBalance:
    actions: tuple[Action, ...] = ()
    status: Mapping[str, Any] | None = None  # status.balanceRequest as this pass leaves it
    events: tuple[PostEvent, ...] = field(default_factory=tuple)

    @property
    def running(self) -> bool:
        return self.status is not None and self.status.get("phase") == RUNNING


def plan_requested(cr_name: str, group: str, token: str | None, previous: Mapping[str, Any] | None,
                   milvus: MilvusState, leaving: Collection[int], policy: BalancePolicy,
                   now_iso: str) -> RequestedBalance:
    """The segment moves of a balance asked for with `token`, and its status. A token already answered (or no
    token) plans nothing and keeps the status as it is."""
    if token is None or (previous is not None and previous.get("token") == token
                         and previous.get("phase") == SUCCEEDED):
        return RequestedBalance(status=previous)
    fresh = previous is None or previous.get("token") != token
    moved = 0 if previous is None or fresh else int(previous.get("moves") or 0)
    started = now_iso if previous is None or fresh else previous.get("startedAt", now_iso)
    events: list[PostEvent] = []
    if fresh:
        events.append(PostEvent(RESOURCE_GROUP_KIND, cr_name, "Normal", "BalanceStarted",
                                f"balancing the replicas of {group} (token {token!r})"))
    moves = _moves(group, milvus, leaving, policy.max_moves_per_pass, token)
    if moves:
        status = {"token": token, "phase": RUNNING, "moves": moved + len(moves), "startedAt": started,
                  "message": f"moving {len(moves)} segment(s) this pass, {moved + len(moves)} so far"}
        return RequestedBalance(tuple(moves), status, tuple(events))
    spreads = [r.spread_percent for r in replicas_of(group, milvus)]
    result = (f"{moved} segment(s) moved; no move left that narrows a replica's spread (largest "
              f"{max(spreads, default=0)}%)")
    events.append(PostEvent(RESOURCE_GROUP_KIND, cr_name, "Normal", "BalanceSucceeded", f"{group}: {result}"))
    status = {"token": token, "phase": SUCCEEDED, "moves": moved, "startedAt": started, "finishedAt": now_iso,
              "message": result}
    return RequestedBalance((), status, tuple(events))


def _moves(group: str, milvus: MilvusState, leaving: Collection[int], budget: int, token: str) -> list[LoadBalance]:
    """From the fullest to the emptiest node of each replica (leaving nodes out), the segment that best narrows
    their difference, one at a time on the running figures; replicas with the widest spread first."""
    moves: list[LoadBalance] = []
    replicas = sorted(replicas_of(group, milvus), key=lambda r: -r.spread_percent)
    for replica in replicas:
        held = {n: dict(items) for n, items in replica.holdings.items() if n not in leaving}
        only_here = _segments_held_once(replica, set(held))
        while len(moves) < budget and len(held) >= 2:
            memory = {n: sum(items.values()) for n, items in held.items()}
            fullest = max(held, key=lambda n: (memory[n], -n))
            emptiest = min(held, key=lambda n: (memory[n], n))
            gap = memory[fullest] - memory[emptiest]
            candidates = [(abs(gap / 2 - size), segment, size) for segment, size in held[fullest].items()
                          if 0 < size < gap and segment in only_here]
            if not candidates:
                break
            _, segment, size = min(candidates)
            del held[fullest][segment]
            held[emptiest][segment] = size
            moves.append(LoadBalance(replica.collection, fullest, emptiest, segment, group,
                                     f"balance {token!r} of {group}: {replica.collection} replica "
                                     f"{replica.replica.replica_id} node {fullest} {memory[fullest] / MiB:.1f} MiB, "
                                     f"node {emptiest} {memory[emptiest] / MiB:.1f} MiB"))
        if len(moves) >= budget:
            break
    return moves


def _segments_held_once(replica: ReplicaData, nodes: set[int]) -> set[int]:
    """Segments one node of the replica holds alone (a copy on two nodes is being moved already)."""
    count: dict[int, int] = {}
    for node in nodes:
        for segment, _ in replica.holdings[node]:
            count[segment] = count.get(segment, 0) + 1
    return {segment for segment, n in count.items() if n == 1}
