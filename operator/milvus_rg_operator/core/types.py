"""Plain, immutable data the planning core works on. The reconcile layer builds these from Kubernetes
objects and Milvus replies; the core never sees a client, a dict from the wire or a clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_GROUP = "__default_resource_group"
DEFAULT_GROUP_LIMIT = 1_000_000  # the default group's limits in a new Milvus (its requests are 0)
# Larger than the default group's limits so that Milvus' "argmax room" sends incoming nodes that no
# group is missing to the pending group rather than to the default group.
PENDING_GROUP_LIMIT = 10 * DEFAULT_GROUP_LIMIT


@dataclass(frozen=True)
class GroupConfig:
    """A Milvus resource-group config, normalized: transfer lists and labels sorted and deduplicated
    (Milvus only tests membership, so order carries no meaning)."""

    requests: int
    limits: int
    transfer_from: tuple[str, ...] = ()
    transfer_to: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()

    def normalized(self) -> GroupConfig:
        return GroupConfig(self.requests, self.limits, tuple(sorted(set(self.transfer_from))),
                           tuple(sorted(set(self.transfer_to))), tuple(sorted(set(self.node_labels))))


@dataclass(frozen=True)
class DeclaredPool:
    name: str
    pending_group: str
    spare_nodes: int
    min_nodes: int
    max_nodes: int | None
    stateful_set_name: str
    max_unavailable: int = 1
    drain_timeout_seconds: float = 600.0
    force_after_timeout: bool = False
    pod_ready_timeout_seconds: float = 300.0


@dataclass(frozen=True)
class DeclaredGroup:
    cr_name: str
    pool: str
    group_name: str | None  # explicit spec.groupName; None = derived from cr_name
    requests: int
    limits: int | None  # None = same as requests
    transfer_from: tuple[str, ...] | None  # None = (the pool's pending group,)
    transfer_to: tuple[str, ...] | None
    node_labels: tuple[tuple[str, str], ...] = ()
    deleting: bool = False
    previous_group_name: str | None = None  # as recorded in status: detects a changed groupName

    @property
    def effective_limits(self) -> int:
        return self.requests if self.limits is None else self.limits


@dataclass(frozen=True)
class MilvusGroup:
    name: str
    config: GroupConfig
    node_ids: tuple[int, ...]
    loaded_replicas: Mapping[str, int] = field(default_factory=dict)  # collection -> replicas loaded in this group
    incoming: Mapping[str, int] = field(default_factory=dict)
    outgoing: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MilvusNode:
    node_id: int
    hostname: str  # == pod name: the only stable identity (node ids change on every process start)
    address: str
    state: str  # from the management node list ("Healthy", "Stopping", "Suspend", ...) or "Unknown"
    segments: int | None = None  # from distribution/get, fetched only for nodes that may leave
    channels: int | None = None

    @property
    def holds_data(self) -> bool | None:
        if self.segments is None or self.channels is None:
            return None
        return self.segments + self.channels > 0


@dataclass(frozen=True)
class MilvusState:
    groups: Mapping[str, MilvusGroup]
    nodes: Mapping[int, MilvusNode]  # group members plus the management API's node list
    management_available: bool

    def group_of_node(self, node_id: int) -> str | None:
        for group in self.groups.values():
            if node_id in group.node_ids:
                return group.name
        return None

    def node_of_pod(self, pod_name: str) -> MilvusNode | None:
        """The newest node whose hostname is the pod (a restarted process registers a new, higher id)."""
        matches = [n for n in self.nodes.values() if n.hostname == pod_name]
        return max(matches, key=lambda n: n.node_id) if matches else None


@dataclass(frozen=True)
class PodState:
    name: str
    ordinal: int
    ready: bool
    terminating: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    milvus_labels: Mapping[str, str] = field(default_factory=dict)  # node labels Milvus reads from the env


@dataclass(frozen=True)
class StatefulSetState:
    name: str
    replicas: int
    ready_replicas: int
    current_replicas: int


@dataclass(frozen=True)
class DrainRecord:
    """One scale-in victim being drained; persisted in the pool's status before Milvus is asked."""

    pod: str
    node_id: int
    group: str
    started_at: float
    phase: str  # Suspending, WaitingForReplacement, MovingData, Drained, Stalled


@dataclass(frozen=True)
class Problem:
    kind: str  # QueryNodePool | ResourceGroup
    name: str
    field: str
    message: str
