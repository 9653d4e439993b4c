"""How many query nodes, and which pod may leave.

The workload removes pods its own way (`core.workloads`: a StatefulSet its highest ordinals, a ReplicaSet by
rank, steered with deletion costs), while Milvus picks at random which node it moves to the pending group.
So scale-in lowers replicas only past pods that serve no group: already in the pending group, never
registered, or drained. Draining a serving victim means asking Milvus (management
API `node/suspend`) to take its node out of its group, which then pulls a replacement from the pending
group; once the group is back at its requests and the node holds no segments or channels, the pod goes.
Each drain is recorded (in the pool's status, by the caller) before the node is suspended, so a
restarted operator finishes or undoes it; a node left suspended without a record is resumed.

A drain follows the node id it recorded, never the pod's hostname: once suspended (Milvus >= 2.4.10,
`HandleNodeDown`) the node is in no group and the management API's node list has no hostname for it.
It is done only when that node id holds no sealed segments and no channels (`distribution/get`) and its
group is back at its requests, or when the process is gone from Milvus altogether.

Relocation uses the same drain for a pod that stays: Milvus fills a group short of nodes with any node the
group accepts, and a group without node labels accepts every node, so a node of a group's own workload can
land in another group (and serve it). Such a node is drained out of that group, then resumed: Milvus assigns
it as an incoming node, to the group missing nodes that accepts it (2.6.8+: the group its RESOURCE_GROUP label
names), its own.
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from milvus_rg_operator.core.names import node_filter, resolve_group_name
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    DrainRecord,
    MilvusNode,
    MilvusState,
    PodState,
    Removal,
)
from milvus_rg_operator.core.workloads import (
    COST_EMPTY,
    COST_SERVING,
    COST_SPARE,
    WorkloadState,
    deletion_cost,
    removal_order,
)

SURGING = "Surging"  # the group's config is raised by one so Milvus adds the replacement first
SUSPENDING = "Suspending"
WAITING_FOR_REPLACEMENT = "WaitingForReplacement"
MOVING_DATA = "MovingData"
DRAINED = "Drained"
STALLED = "Stalled"
STOPPING_STATES = frozenset({"Stopping", "Offline", "Down"})

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class ScalePlan:
    replicas: int | None = None  # None: leave the StatefulSet alone
    suspend: tuple[int, ...] = ()
    resume: tuple[int, ...] = ()
    drains: tuple[DrainRecord, ...] = ()  # the complete set to persist
    victims: tuple[str, ...] = ()
    blocked: str | None = None  # why scale-in waits, in words
    blocked_reason: str | None = None  # ... as a condition reason
    stalled: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    costs: Mapping[str, int] = field(default_factory=dict)  # pod -> deletion cost to set (where it differs)
    removing: tuple[str, ...] = ()  # the pods the workload's controller removes for `replicas`, in its order
    removals: tuple[Removal, ...] = ()  # the scale-in to check once done (new, or still under way)
    unexpected: tuple[str, ...] = ()  # pods that were to go and still run: Kubernetes removed others


def desired_replicas(pool: DeclaredPool, groups: Sequence[DeclaredGroup], held: int = 0) -> int:
    """Query nodes wanted: the groups' requests + spareNodes + `held` (nodes that groups the operator does not
    plan keep in Milvus), within minNodes/maxNodes. The one place this is computed."""
    wanted = sum(g.requests for g in groups if not g.deleting) + pool.spare_nodes + held
    wanted = max(wanted, pool.min_nodes)
    return wanted if pool.max_nodes is None else min(wanted, pool.max_nodes)


def drains_per_group(drains: Iterable[DrainRecord], phases: Collection[str]) -> dict[str, int]:
    """How many drains of each group are in one of `phases`."""
    return dict(collections.Counter(record.group for record in drains if record.phase in phases))


def surge_of(drains: Sequence[DrainRecord]) -> dict[str, int]:
    """Groups whose config is raised while a replacement is added before a drain (group -> nodes)."""
    return drains_per_group(drains, (SURGING,))


def victims(workload: WorkloadState, pods: Sequence[PodState], desired: int,
            costs: Mapping[str, int] | None = None) -> list[str]:
    """The pods the workload's controller removes going to `desired` replicas, first removed first: a
    StatefulSet's ordinals from `desired` up, a ReplicaSet's live pods beyond `desired` (it creates no more)."""
    order = removal_order(workload, pods, costs)
    return order[:max(len(order) - desired if workload.ref.ranks_pods else workload.replicas - desired, 0)]


def deletion_costs(pods: Sequence[PodState], milvus: MilvusState, pending_group: str,
                   drains: Sequence[DrainRecord]) -> dict[str, int]:
    """The deletion cost each pod should carry: the safer to remove, the lower (`core.workloads`)."""
    drained = {d.pod for d in drains if d.phase == DRAINED}
    costs = {}
    for pod in pods:
        node = milvus.node_of_pod(pod.name)
        group = milvus.group_of_node(node.node_id) if node else None
        if node is None or pod.name in drained or (group in (None, pending_group) and node.holds_data is False):
            costs[pod.name] = COST_EMPTY
        elif group is None or group == pending_group:
            costs[pod.name] = COST_SPARE
        else:
            costs[pod.name] = COST_SERVING
    return costs


def plan_scale(pool: DeclaredPool, groups: Sequence[DeclaredGroup], desired: int, workload: WorkloadState,
               pods: Sequence[PodState], milvus: MilvusState, drains: Sequence[DrainRecord],
               *, milvus_plan_empty: bool, now: float, drain_unsupported: str | None = None,
               removal: Removal | None = None, active_elsewhere: int = 0, own_group: str | None = None,
               others: Sequence[PodState] = ()) -> ScalePlan:
    """`drain_unsupported`: why this Milvus cannot drain a node (its version), or None. `removal`: the last
    scale-in made, as recorded. `active_elsewhere`: drains under way in the pool's other workloads
    (maxUnavailable is the pool's). `own_group`: the Milvus group whose own workload this is (its pods' nodes
    placed elsewhere are relocated), None for the pool's. `others`: the pool's other workloads' pods (a
    replacement may run there)."""
    return _Planner(pool, groups, desired, workload, pods, milvus, drains, milvus_plan_empty, now,
                    drain_unsupported, removal, active_elsewhere, own_group, others).plan()


class _Planner:
    def __init__(self, pool: DeclaredPool, groups: Sequence[DeclaredGroup], desired: int,
                 workload: WorkloadState, pods: Sequence[PodState], milvus: MilvusState,
                 drains: Sequence[DrainRecord], milvus_plan_empty: bool, now: float,
                 drain_unsupported: str | None, removal: Removal | None, active_elsewhere: int,
                 own_group: str | None, others: Sequence[PodState]) -> None:
        self.active_elsewhere, self.own_group = active_elsewhere, own_group
        self.everyone = {p.name: p for p in (*others, *pods)}
        self.relocating: dict[str, DrainRecord] = {}
        self.pool, self.desired, self.workload, self.milvus, self.now = pool, desired, workload, milvus, now
        self.removal = removal
        self.unexpected: tuple[str, ...] = ()
        self.drain_unsupported = drain_unsupported
        self.milvus_plan_empty = milvus_plan_empty
        self.pods = {p.name: p for p in pods}
        self.records = {d.pod: d for d in drains}
        # A ReplicaSet is steered with deletion costs: the pods the operator wants gone rank first once they
        # carry them. (A StatefulSet ignores costs: it removes its highest ordinals.)
        self.costs = (deletion_costs(pods, milvus, pool.pending_group, drains) if workload.ref.ranks_pods
                      else {})
        # Set when the workload is to shrink, before it may (not on every move: a scale-out costs no extra write).
        shrinking = workload.replicas > desired
        self.cost_changes = {pod: cost for pod, cost in self.costs.items() if shrinking
                             and not self.pods[pod].terminating and deletion_cost(self.pods[pod]) != cost}
        self.requests = {resolve_group_name(g): g.requests for g in groups if not g.deleting}
        self.labels = {resolve_group_name(g): dict(node_filter(g)) for g in groups if not g.deleting}
        # collection -> replicas each group's spec.collections declares (it will hold them: they need nodes too)
        self.declared = {resolve_group_name(g): {c.collection: c.replicas for c in g.collections}
                         for g in groups if not g.deleting}
        self.events: list[Event] = []
        self.resume: list[int] = []
        self.suspend: list[int] = []

    # --- facts -----------------------------------------------------------------------------------

    def node(self, pod: str) -> MilvusNode | None:
        return self.milvus.node_of_pod(pod)

    def live(self, pod: str) -> bool:
        state = self.pods.get(pod)
        return state is not None and not state.terminating

    def group_size(self, group: str) -> int:
        found = self.milvus.groups.get(group)
        return len(found.node_ids) if found else 0

    def group_requests(self, group: str) -> int:
        if group in self.requests:
            return self.requests[group]
        found = self.milvus.groups.get(group)
        return found.config.requests if found else 0

    # --- plan ------------------------------------------------------------------------------------

    def plan(self) -> ScalePlan:
        self.check_removal()
        current = self.workload.replicas
        wanted = victims(self.workload, list(self.pods.values()), self.desired, self.costs)  # who should go
        self.wanted = set(wanted)
        kept = self.settle_records(self.wanted)
        self.resume_orphans(self.wanted, kept)
        self.relocating = self.relocate(kept)
        kept = {pod: r for pod, r in kept.items() if not r.relocate}
        if self.desired > current:
            self.events.append(("Normal", "ScaledOut", f"scaling query nodes {current} -> {self.desired}"))
            return self.result(self.desired, kept, ())
        if not wanted:  # nothing to remove; a ReplicaSet short of pods just creates fewer
            if self.desired < current and self.milvus_plan_empty:
                self.events.append(("Normal", "ScaledIn", f"scaling query nodes {current} -> {self.desired} "
                                                          "(pods not created yet)"))
                return self.result(self.desired, kept, ())
            return self.result(None, kept, ())
        if not self.milvus_plan_empty:
            waiting = ("WaitingForMilvus", "waiting for Milvus to accept the new configs")
            return self.result(None, kept, wanted, waiting)
        if self.workload.rolling:
            return self.result(None, kept, wanted, ("WaitingForRollout", f"{self.workload.ref} is rolling out "
                                                    f"({self.workload.rolling}): scale-in waits, never fights it"))
        records = self.progress(kept)
        # Who the controller removes now, by what it sees now (the costs the pods carry): only those may go.
        going = victims(self.workload, list(self.pods.values()), self.desired)
        # A ReplicaSet short of pods (some not created yet) shrinks first by creating fewer: nothing goes for those.
        live = sum(1 for p in self.pods.values() if not p.terminating)
        lowest = current - (max(0, min(current - live, current - self.desired)) if self.workload.ref.ranks_pods
                            else 0)
        leaving: list[str] = []
        # A ReplicaSet breaks ties of cost by what the planner cannot see exactly (timestamps in seconds, pods per
        # node): a pod may go only at a cost below every pod that must stay, so that no tie can take one of those.
        floor = min((deletion_cost(p) for p in self.pods.values() if not p.terminating
                     and not self.removable(p.name, records.get(p.name))), default=None)
        for victim in going:
            if lowest <= self.desired or not self.removable(victim, records.get(victim)):
                break
            if self.workload.ref.ranks_pods and floor is not None and deletion_cost(self.pods[victim]) >= floor:
                break
            leaving.append(victim)
            lowest -= 1
        blocked: tuple[str, str] | None = None
        if lowest > self.desired:
            blocked = self.start_drains([v for v in wanted if v not in leaving], records)
            first = going[len(leaving)] if len(leaving) < len(going) else None  # what the controller removes next
            if first is not None and self.workload.ref.ranks_pods and self.outranks(first):
                blocked = ("OutrankedByUnreadyPod", f"{first} is not Ready or not running, so its ReplicaSet removes "
                           "it first whatever its deletion cost, and it may still serve or hold data: scale-in waits")
            elif first is not None and first not in self.wanted and self.cost_changes:
                blocked = ("WaitingForDeletionCosts", f"the ReplicaSet would remove {first} now: setting "
                           f"pod-deletion-cost on {', '.join(sorted(self.cost_changes))} first")
        if lowest < current and self.cost_changes:
            lowest = current  # the ReplicaSet must see the new costs before it picks: one pass later
            blocked = blocked or ("WaitingForDeletionCosts", "setting pod-deletion-cost on "
                                  f"{', '.join(sorted(self.cost_changes))} before the ReplicaSet picks who leaves")
        if lowest < current:
            # Milvus fills a group short of nodes from any group above its requests, the pending group
            # included: a leaving pod's node still in the pending group may be picked between this pass's read
            # and the StatefulSet's removal (a surge raised just now makes its group short by design).
            short = self.groups_short_of_nodes(records.values())
            takeable = [v for v in leaving if self.may_be_placed(v)]
            if short and takeable:
                lowest = current
                blocked = blocked or ("WaitingForMilvus", f"Milvus is adding nodes to {', '.join(short)} and may "
                                      f"take {', '.join(takeable)} from {self.pool.pending_group}: scale-in waits")
        replicas = lowest if lowest < current else None
        if replicas is not None:
            self.events.append(("Normal", "ScaledIn", f"scaling query nodes {current} -> {replicas}"))
        removing = tuple(leaving) if replicas is not None else ()
        if replicas is not None and removing:
            self.removal = Removal(replicas, removing, str(self.workload.ref))
        final = {pod: r for pod, r in records.items() if pod not in removing}
        return self.result(replicas, final, wanted, blocked, removing)

    def check_removal(self) -> None:
        """Once the workload is down to the replicas of the last scale-in, the pods that were to go must be gone:
        one still running means its controller removed another pod (a ReplicaSet that did not see the deletion
        costs in time, a pod that outranked them): a Warning event, once, and the record is cleared."""
        removal = self.removal
        if removal is None or sum(1 for p in self.pods.values() if not p.terminating) > removal.replicas:
            return
        self.removal = None
        self.unexpected = tuple(pod for pod in removal.pods if self.live(pod))
        if self.unexpected:
            self.events.append(("Warning", "UnexpectedRemoval",
                                f"{self.workload.ref} was scaled to {removal.replicas} for "
                                f"{', '.join(removal.pods)} to go, but {', '.join(self.unexpected)} still run: "
                                "Kubernetes removed other pods"))

    def outranks(self, pod: str) -> bool:
        """A ReplicaSet removes an unscheduled, not Running or not Ready pod before any other, whatever its
        deletion cost: no cost makes the chosen pods go first while it stays."""
        state = self.pods.get(pod)
        return state is not None and (not state.ready or not state.scheduled or state.phase != "Running")

    def result(self, replicas: int | None, records: Mapping[str, DrainRecord], wanted: Sequence[str],
               blocked: tuple[str, str] | None = None, removing: tuple[str, ...] = ()) -> ScalePlan:
        ordered = tuple(sorted({**records, **self.relocating}.values(), key=lambda r: r.pod))
        return ScalePlan(
            replicas=replicas, suspend=tuple(self.suspend), resume=tuple(sorted(set(self.resume))),
            drains=ordered, victims=tuple(wanted), blocked=blocked[1] if blocked else None,
            blocked_reason=blocked[0] if blocked else None,
            stalled=tuple(r.pod for r in ordered if r.phase == STALLED), events=tuple(self.events),
            costs=dict(self.cost_changes), removing=removing,
            removals=(self.removal,) if self.removal else (), unexpected=self.unexpected,
        )

    def groups_short_of_nodes(self, records: Iterable[DrainRecord]) -> list[str]:
        """Groups with fewer nodes than their requests (surges included) that a node of this pool can join:
        one without node labels, or one that holds a node already (the pool's pods share one template, so
        their nodes carry the same labels)."""
        surge = surge_of(list(records))
        short = []
        for name, group in sorted(self.milvus.groups.items()):
            if name == self.pool.pending_group:
                continue
            size = self.group_size(name)
            labels = self.labels[name] if name in self.labels else dict(group.config.node_labels)
            if self.group_requests(name) + surge.get(name, 0) > size and (not labels or size > 0):
                short.append(name)
        return short

    def may_be_placed(self, pod: str) -> bool:
        """A live pod whose node sits in the pending group, where Milvus may still pick it (a suspended node is
        in no group and out of Milvus's reach; one not registered serves nothing: waiting for it to register
        could wait for ever, on a crashed process)."""
        if not self.live(pod):
            return False
        node = self.node(pod)
        return node is not None and self.milvus.group_of_node(node.node_id) == self.pool.pending_group

    def settle_records(self, victims: set[str]) -> dict[str, DrainRecord]:
        """Keep the drains still wanted; undo those of pods that are no longer victims."""
        kept: dict[str, DrainRecord] = {}
        for pod, record in self.records.items():
            if not self.live(pod):
                continue  # removed or leaving: the drain is over
            if pod in victims:
                kept[pod] = replace(record, relocate=False)  # it leaves: drained, then removed
                continue
            if record.relocate:
                kept[pod] = record
                continue
            if self.out_of_groups(record.node_id):
                self.resume.append(record.node_id)
            self.events.append(("Normal", "DrainCancelled", f"{pod} is no longer leaving; node resumed"))
        return kept

    def out_of_groups(self, node_id: int) -> bool:
        """Milvus lists the node and it is in no group, not stopping: suspended (or not yet assigned)."""
        node = self.milvus.nodes.get(node_id)
        return (node is not None and node.state not in STOPPING_STATES
                and self.milvus.group_of_node(node_id) is None)

    def resume_orphans(self, victims: set[str], kept: Mapping[str, DrainRecord]) -> None:
        """A node out of every group whose pod stays is resumed: only a recorded drain may hold one out.
        (Milvus 2.5+ `suspend` is "leave the group"; resume re-runs incoming assignment, harmless for a
        node that is merely joining.)"""
        if not self.milvus.management_available:
            return
        in_group = {n for g in self.milvus.groups.values() for n in g.node_ids}
        for node in self.milvus.nodes.values():
            pod = self.pods.get(node.hostname)
            if (node.node_id in in_group or node.state in STOPPING_STATES or pod is None or pod.terminating
                    or not pod.ready or node.hostname in kept or self.node(node.hostname) != node):
                continue
            self.resume.append(node.node_id)

    def relocate(self, kept: Mapping[str, DrainRecord]) -> dict[str, DrainRecord]:
        """Advance the relocations under way (a drained node is resumed and its record dropped) and start one
        for each pod of this group's own workload whose node serves another group, within maxUnavailable
        (a pod about to leave is drained as a victim instead)."""
        updated: dict[str, DrainRecord] = {}
        for pod, record in self.progress({pod: r for pod, r in kept.items() if r.relocate}).items():
            if record.phase != DRAINED:
                updated[pod] = record
                continue
            self.resume.append(record.node_id)
            self.events.append(("Normal", "Relocated", f"{pod} (node {record.node_id}) left {record.group} and holds "
                                                       f"no data; resumed for Milvus to place it in {self.own_group}"))
        if self.own_group is None or not self.milvus_plan_empty:
            return updated  # (new configs first: they may move the node themselves)
        active = sum(1 for r in (*kept.values(), *updated.values()) if r.phase != DRAINED
                     and not (r.relocate and r.pod in kept)) + self.active_elsewhere
        claimed = drains_per_group(updated.values(), (SURGING, SUSPENDING, WAITING_FOR_REPLACEMENT))
        for name in sorted(self.pods):
            node = self.node(name) if self.live(name) else None
            group = self.milvus.group_of_node(node.node_id) if node else None
            if (node is None or name in updated or name in kept or name in self.wanted
                    or group in (None, self.own_group, self.pool.pending_group)):
                continue
            if active >= self.pool.max_unavailable or self.cannot_drain(name, node, group, claimed.get(group, 0)):
                continue  # a later pass: the reason shows once a scale-in waits on it
            surge = not self.above_requests(group, claimed.get(group, 0)) and group in self.requests
            claimed[group] = claimed.get(group, 0) + 1
            updated[name] = DrainRecord(name, node.node_id, group, self.now, SURGING if surge else SUSPENDING,
                                        relocate=True)
            if not surge:
                self.suspend.append(node.node_id)
            active += 1
            self.events.append(("Normal", "Relocating", f"{name} (node {node.node_id}) of {self.workload.ref} "
                                                        f"serves {group}, not {self.own_group}: draining it out"))
        return updated

    def progress(self, records: Mapping[str, DrainRecord]) -> dict[str, DrainRecord]:
        """Advance every recorded drain from what Milvus shows now of the recorded node id."""
        updated: dict[str, DrainRecord] = {}
        for pod, record in records.items():
            phase = self.phase_of(pod, record)
            if phase is None:
                current = self.node(pod)
                self.events.append(("Normal", "DrainRestarted",
                                    f"{pod}: node {record.node_id} is gone from Milvus and the pod runs a new "
                                    f"node {current.node_id if current else '?'}; draining it anew"))
                continue
            timed_out = self.now - record.started_at > self.pool.drain_timeout_seconds
            if timed_out and phase != DRAINED:
                phase = STALLED
            if phase != record.phase and phase in (DRAINED, STALLED):
                self.events.append(self.drain_event(pod, record, phase))
            updated[pod] = replace(record, phase=phase)
        return updated

    def phase_of(self, pod: str, record: DrainRecord) -> str | None:
        """The drain's phase now; None when the pod restarted (its recorded process is gone)."""
        node = self.milvus.nodes.get(record.node_id)
        if node is None:
            if not self.milvus.management_available:
                # Only group members are visible: a suspended node cannot be told from a gone one. Hold.
                return record.phase
            current = self.node(pod)
            if current is not None and current.node_id != record.node_id:
                return None
            return DRAINED  # the process is gone from Milvus: it serves and holds nothing
        group = self.milvus.group_of_node(record.node_id)
        if group is not None and group != self.pool.pending_group:
            if record.phase == SURGING and self.group_size(record.group) <= self.group_requests(record.group):
                return SURGING  # Milvus has not added the replacement yet
            self.suspend.append(record.node_id)  # recorded but not (yet) out of its group: suspend (again)
            return SUSPENDING
        if group == self.pool.pending_group and not self.milvus.management_available:
            return DRAINED  # the docs' practice: a node Milvus moved to the pending group may go
        if self.group_size(record.group) < self.group_requests(record.group):
            return WAITING_FOR_REPLACEMENT
        if node.holds_data is not False:
            return MOVING_DATA
        return DRAINED

    def drain_event(self, pod: str, record: DrainRecord, phase: str) -> Event:
        node = self.milvus.nodes.get(record.node_id)
        if phase == DRAINED:
            held = (self.milvus.support.data_held(node.segments, node.channels or 0) if node is not None
                    and node.segments is not None else "process gone from Milvus")
            return ("Normal", "Drained", f"{pod} (node {record.node_id}) left {record.group} and holds no data "
                                         f"({held})")
        return ("Warning", "Stalled",
                f"{pod} (node {record.node_id}) not drained after {self.pool.drain_timeout_seconds:.0f}s; holding "
                f"(spec.scaleDown.forceAfterTimeout is {str(self.pool.force_after_timeout).lower()})")

    def removable(self, pod: str, record: DrainRecord | None) -> bool:
        if not self.live(pod):
            return True
        if record is not None:
            return record.phase == DRAINED or (record.phase == STALLED and self.pool.force_after_timeout)
        node = self.node(pod)
        if node is None:
            # Never registered: serves nothing. Without the management API a suspended node is invisible,
            # so a Ready pod that Milvus does not show in a group may still hold data: keep it.
            return self.milvus.management_available or not self.pods[pod].ready
        group = self.milvus.group_of_node(node.node_id)
        if group == self.pool.pending_group:
            # Milvus moves segments off a node that left its replicas' group at its own pace.
            return not self.milvus.management_available or node.holds_data is False
        return group is None and node.holds_data is False

    def start_drains(self, blocking: Sequence[str], records: dict[str, DrainRecord]) -> tuple[str, str] | None:
        """Drain the highest serving victims, at most maxUnavailable at a time.
        Returns (reason, message) saying why scale-in waits."""
        active = sum(1 for r in (*records.values(), *self.relocating.values()) if r.phase != DRAINED) \
            + self.active_elsewhere
        reasons: list[tuple[str, str]] = []
        stalled = [r.pod for r in records.values() if r.phase == STALLED]
        if stalled:
            reasons.append(("DrainStalled", f"drain of {', '.join(sorted(stalled))} timed out"))
        elif active:
            reasons.append(("Draining", f"draining {', '.join(sorted(r.pod for r in records.values()))}"))
        # Drains whose group still waits for its replacement: each holds one replacement node.
        claimed = drains_per_group(records.values(), (SURGING, SUSPENDING, WAITING_FOR_REPLACEMENT))
        for pod in blocking:
            if pod in records or self.removable(pod, None):
                continue
            if active >= self.pool.max_unavailable:
                if not reasons:
                    reasons.append(("Draining", f"{active} drain(s) in progress (spec.scaleDown.maxUnavailable="
                                                f"{self.pool.max_unavailable})"))
                break
            node = self.node(pod)
            if node is None:  # not removable: Ready, invisible without the management API
                reasons.append(("ManagementAPIUnavailable",
                                f"management API unavailable: {pod} is Ready but in no Milvus group, so it may "
                                "be a suspended node that still holds data; keeping it"))
                break
            group = self.milvus.group_of_node(node.node_id)
            if group is None or group == self.pool.pending_group:
                where = "is out of its group" if group is None else f"is in {group}"
                reasons.append(("Draining", f"{pod} (node {node.node_id}) {where}; waiting for its data to move"))
                break
            why = self.cannot_drain(pod, node, group, claimed.get(group, 0))
            if why:
                reasons.append(why)
                break
            at_requests = not self.above_requests(group, claimed.get(group, 0))
            claimed[group] = claimed.get(group, 0) + 1
            if at_requests and group in self.requests:
                # Replacement first: the caller raises the group's config by one (see
                # configs.desired_configs) and the node is suspended once Milvus has added the replacement,
                # so the group never drops below its requests.
                records[pod] = DrainRecord(pod, node.node_id, group, self.now, SURGING)
            else:
                records[pod] = DrainRecord(pod, node.node_id, group, self.now, SUSPENDING)
                self.suspend.append(node.node_id)
            active += 1
            self.events.append(("Normal", "Draining", f"draining {pod} (node {node.node_id}) out of {group}"))
        if not reasons:
            return None
        return reasons[0][0], "; ".join(message for _, message in reasons)

    def cannot_drain(self, pod: str, node: MilvusNode, group: str, claimed: int) -> tuple[str, str] | None:
        if self.drain_unsupported:
            return ("DrainUnsupported", f"cannot drain {pod} (node {node.node_id} serving {group}): "
                                        f"{self.drain_unsupported}")
        if not self.milvus.management_available:
            return ("ManagementAPIUnavailable",
                    f"management API unavailable: cannot drain {pod} (node {node.node_id} serving {group}); "
                    f"waiting for Milvus to move it to {self.pool.pending_group}")
        if self.above_requests(group, claimed):
            # Above its requests: the group shrinks without a replacement, but never below its replicas, loaded
            # or declared (a node each).
            replicas = dict(self.milvus.groups[group].loaded_replicas)
            for collection, declared in self.declared.get(group, {}).items():
                replicas[collection] = max(replicas.get(collection, 0), declared)
            need = max(replicas.values(), default=0)
            if self.group_size(group) - claimed - 1 < need:
                names = ", ".join(sorted(c for c, n in replicas.items() if n == need))
                return ("ReplicasNeedNodes",
                        f"{group} needs {need} nodes for the replicas of {names}; not draining {pod}")
            return None
        if self.replacements(group, node) <= claimed:
            return ("WaitingForReplacement", f"{pod} (node {node.node_id}) serves {group} at its requests and no "
                    "replacement node "
                    f"is free yet (in {self.pool.pending_group} or above another group's requests)")
        return None

    def above_requests(self, group: str, claimed: int) -> bool:
        """The group keeps its requests after losing one more node (beyond `claimed` ones leaving)."""
        return self.group_size(group) - claimed - 1 >= self.group_requests(group)

    def replacements(self, group: str, leaving: MilvusNode) -> int:
        """Nodes Milvus could move into `group`: surplus of other groups, on pods that stay, labels matching."""
        wanted = self.labels.get(group, {})
        count = 0
        for other in self.milvus.groups.values():
            if other.name == group:
                continue
            surplus = len(other.node_ids) - self.group_requests(other.name)
            for node_id in other.node_ids:
                if surplus <= 0:
                    break
                node = self.milvus.nodes.get(node_id)
                pod = self.everyone.get(node.hostname) if node else None
                if node is None or pod is None or node == leaving or node.hostname in self.wanted:
                    continue
                if all(pod.milvus_labels.get(k) == v for k, v in wanted.items()):
                    count += 1
                    surplus -= 1
        return count
