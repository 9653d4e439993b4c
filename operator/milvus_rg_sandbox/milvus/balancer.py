"""querycoord's automatic balance between a replica's read-write nodes, over a `ResourceManager`'s state.

What runs each `queryCoord.checkBalanceInterval` (3000 ms; the checker controller's `getCheckerInterval`, 2.4 and
2.5): checkers/balance_checker.go `Check` / `replicasToBalance` (2.5) picks, while no replica has read-only nodes
(the stopping balance goes first; `ResourceManager._schedule_tasks` runs it), one loaded collection per round
(`balancedCollectionInCurrentRound`, smallest row count first, then id) and asks the balancer for each of its
replicas; the balancer is `queryCoord.balancer`, default `ScoreBasedBalancer` (balance/score_based_balancer.go
`BalanceReplica`, 2.5): channels first (`queryCoord.autoBalanceChannel`), segments only when no channel moves.
`queryCoord.balanceIntervalSeconds` (60 s) is the 2.0/2.1 querycoord's `loadBalanceSegmentLoop` period, the one
the load-balance article describes; querycoordv2 (2.2+) declares it and never reads it.

2.6.20 made `ChannelLevelScoreBalancer` the default: it balances per channel among nodes a replica assigns to
each channel exclusively, which replica_manager.go only does with at least `queryCoord.channelExclusiveNodeFactor`
(4) read-write nodes per channel, and otherwise delegates to the score-based balancer
(channel_level_score_balancer.go `BalanceReplica`). The exclusive mode is not modelled: here the score-based
balance always runs (UNVERIFIED for replicas with that many nodes).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .resource_manager import Holding, Replica, ResourceManager

GLOBAL_ROW_COUNT_FACTOR = 0.1  # queryCoord.globalRowCountFactor
SCORE_UNBALANCE_TOLERATION_FACTOR = 0.05  # queryCoord.scoreUnbalanceTolerationFactor
REVERSE_UNBALANCE_TOLERATION_FACTOR = 1.3  # queryCoord.reverseUnBalanceTolerationFactor
DELEGATOR_MEMORY_OVERLOAD_FACTOR = 0.1  # queryCoord.delegatorMemoryOverloadFactor
COLLECTION_CHANNEL_COUNT_FACTOR = 10.0  # queryCoord.collectionChannelCountFactor (2.4.18)
BALANCE_SEGMENT_BATCH_SIZE = 5  # queryCoord.collectionBalanceSegmentBatchSize (2.4.7): tasks per collection a round


@dataclass(frozen=True)
class Move:
    """A balance task: `item` (a channel name or segment id) of `replica` from `source` to `target`."""

    replica: int
    item: str | int
    source: int
    target: int


@dataclass
class _NodeItem:
    """balance `nodeItem`: a node's current score against the score it should carry (its priority is the
    difference; every node gets the average here, as no node reports a memory capacity)."""

    node: int
    current: float
    assigned: float = 0.0

    @property
    def priority(self) -> float:
        return self.current - self.assigned


def _has_enough_benefit(source: _NodeItem, target: _NodeItem, change: float) -> bool:
    """score_based_balancer.go `hasEnoughBenefit`: the two nodes differ by more than the toleration, and a move
    that reverses the order leaves a much smaller difference."""
    old_diff = abs(source.priority - target.priority)
    if old_diff < target.priority * SCORE_UNBALANCE_TOLERATION_FACTOR:
        return False
    new_source, new_target = source.priority - change, target.priority + change
    return not (new_target > new_source and abs(new_source - new_target) * REVERSE_UNBALANCE_TOLERATION_FACTOR
                >= old_diff)


class ScoreBasedBalancer:
    """balance/score_based_balancer.go (2.5) over querycoord's distribution as the resource manager keeps it."""

    def __init__(self, rm: ResourceManager) -> None:
        self.rm = rm

    # --- scores ------------------------------------------------------------------------------------------

    def segment_rows(self, collection: str, segment: int) -> int:
        data = self.rm.collections[collection].segments.get(segment)
        return data.rows if data is not None else 0

    def _segment_delta(self, holding: Holding, node: int, rows: int) -> int:
        """The scheduler's `GetSegmentTaskDelta`: a task loading onto the node adds its rows, one moving off
        (a balance move: its release follows) takes them away."""
        if holding.loading_on == node:
            return rows
        if holding.node == node and holding.loading_on is not None and not holding.reload:
            return -rows
        return 0

    def _rows_on(self, node: int, collection: str | None) -> int:
        """Sealed rows on `node` in querycoord's distribution (of `collection`, or of every collection), with
        the rows of the segment tasks in flight on it."""
        total = 0
        for replica in self.rm.replicas.values():
            if collection is not None and replica.collection != collection:
                continue
            for segment, holding in replica.segments.items():
                rows = self.segment_rows(replica.collection, segment)
                if holding.node == node and self.rm._in_view(holding):
                    total += rows
                total += self._segment_delta(holding, node, rows)
        return total

    def segment_scores(self, replica: Replica, nodes: Iterable[int]) -> dict[int, _NodeItem]:
        """`convertToNodeItemsBySegment` / `calculateScoreBySegment`: the collection's rows on the node plus 0.1 x
        all its rows; every node is assigned the average, plus 0.1 x that for each delegator of the collection
        it runs."""
        items = {n: _NodeItem(n, self._rows_on(n, replica.collection)
                              + self._rows_on(n, None) * GLOBAL_ROW_COUNT_FACTOR) for n in nodes}
        total = sum(item.current for item in items.values())
        if not items or total == 0:
            return items
        average = total / len(items)
        for item in items.values():
            item.assigned = average
            delegators = sum(1 for h in replica.channels.values() if h.node == item.node)
            item.current += average * DELEGATOR_MEMORY_OVERLOAD_FACTOR * delegators
        return items

    def channel_scores(self, replica: Replica, nodes: Iterable[int]) -> dict[int, _NodeItem]:
        """`convertToNodeItemsByChannel` / `calculateScoreByChannel`: 10 per channel of the collection, 1 per
        other channel."""
        items: dict[int, _NodeItem] = {}
        for node in nodes:
            score = 0.0
            for other in self.rm.replicas.values():
                weight = COLLECTION_CHANNEL_COUNT_FACTOR if other.collection == replica.collection else 1.0
                score += weight * sum(1 for h in other.channels.values()
                                      if (h.node == node and h.loading_on is None) or h.loading_on == node)
            items[node] = _NodeItem(node, score)
        total = sum(item.current for item in items.values())
        if items and total:
            for item in items.values():
                item.assigned = total / len(items)
        return items

    # --- plans -------------------------------------------------------------------------------------------

    def balance_replica(self, replica: Replica) -> list[Move]:
        """`BalanceReplica` for a replica without read-only nodes: a channel plan first, segments when it has none
        (each needs 2 read-write nodes)."""
        moves = self._channel_plan(replica)
        return moves or self._segment_plan(replica)

    def _movable(self, replica: Replica, holding: Holding) -> bool:
        return holding.loading_on is None and self.rm._in_view(holding)

    def _segment_plan(self, replica: Replica) -> list[Move]:
        """`genSegmentPlan`: from every node above its assigned score, its smallest segments until it is not (at
        most the batch size), then `assignSegment` to the lowest-scored nodes where the move is worth it."""
        nodes = self.rm._targets(replica)
        if len(nodes) < 2:
            return []
        items = self.segment_scores(replica, nodes)
        candidates: list[tuple[int, int]] = []  # (segment, node)
        for node in nodes:
            item = items[node]
            if item.current <= item.assigned:
                continue
            current = item.current
            owned = sorted((self.segment_rows(replica.collection, s), s) for s, h in replica.segments.items()
                           if h.node == node and self._movable(replica, h))
            for rows, segment in owned:
                candidates.append((segment, node))
                if len(candidates) >= BALANCE_SEGMENT_BATCH_SIZE:
                    break
                current -= rows * (1 + GLOBAL_ROW_COUNT_FACTOR)
                if current <= item.assigned:
                    break
            if len(candidates) >= BALANCE_SEGMENT_BATCH_SIZE:
                break
        weighted: list[tuple[str | int, int, float]] = [
            (s, n, self.segment_rows(replica.collection, s) * (1 + GLOBAL_ROW_COUNT_FACTOR)) for s, n in candidates]
        return self._assign(replica, items, weighted)

    def _channel_plan(self, replica: Replica) -> list[Move]:
        """`genChannelPlan`: the same over channels (a channel of the collection scores 10)."""
        nodes = self.rm._targets(replica, channel=True)
        if len(nodes) < 2:
            return []
        items = self.channel_scores(replica, nodes)
        candidates: list[tuple[str | int, int, float]] = []
        for node in nodes:
            item = items[node]
            current = item.current
            if current <= item.assigned:
                continue
            for channel, holding in sorted(replica.channels.items()):
                if holding.node != node or not self._movable(replica, holding):
                    continue
                candidates.append((channel, node, COLLECTION_CHANNEL_COUNT_FACTOR))
                current -= COLLECTION_CHANNEL_COUNT_FACTOR
                if current <= item.assigned:
                    break
        return self._assign(replica, items, candidates)

    def _assign(self, replica: Replica, items: dict[int, _NodeItem],
                candidates: list[tuple[str | int, int, float]]) -> list[Move]:
        """`assignSegment` / `assignChannel` (not manual): the biggest first, each to the node with the lowest
        priority if `hasEnoughBenefit`; scores move with each plan."""
        moves: list[Move] = []
        ordered = sorted(candidates, key=lambda c: (-c[2], -items[c[1]].priority))
        for item, source_node, change in ordered:
            target = min(items.values(), key=lambda i: (i.priority, i.node))
            source = items[source_node]
            if target is source or not _has_enough_benefit(source, target, change):
                continue
            moves.append(Move(replica.replica_id, item, source_node, target.node))
            source.current -= change
            target.current += change
            if len(moves) > BALANCE_SEGMENT_BATCH_SIZE:
                break
        return moves

    def least_scored(self, replica: Replica, nodes: Iterable[int], channel: bool = False) -> int | None:
        """`AssignSegment` / `AssignChannel` with manual balance (LoadBalance, transfer/segment, transfer/channel):
        the node with the lowest score, whatever the benefit."""
        items = self.channel_scores(replica, nodes) if channel else self.segment_scores(replica, nodes)
        if not items:
            return None
        return heapq.nsmallest(1, items.values(), key=lambda i: (i.priority, i.node))[0].node
