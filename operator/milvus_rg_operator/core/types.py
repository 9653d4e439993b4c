"""Plain, immutable data the planning core works on. The reconcile layer builds these from Kubernetes
objects and Milvus replies; the core never sees a client, a dict from the wire or a clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from milvus_rg_operator.constants import DEFAULT_GROUP_LIMIT as DEFAULT_GROUP_LIMIT  # re-exported
from milvus_rg_operator.constants import DEFAULT_RESOURCE_GROUP
from milvus_rg_operator.constants import PENDING_GROUP_LIMIT as PENDING_GROUP_LIMIT  # re-exported
from milvus_rg_operator.core.versions import MilvusSupport, milvus_support

DEFAULT_GROUP = DEFAULT_RESOURCE_GROUP


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


STATEFULSET, DEPLOYMENT, MILVUS = "StatefulSet", "Deployment", "Milvus"  # the workload kinds (core.workloads)
GROUP_NODE_LABEL = "RESOURCE_GROUP"  # from MILVUS_SERVER_LABEL_RESOURCE_GROUP: the node label naming a node's group
API_VERSIONS: Mapping[str, str] = {STATEFULSET: "apps/v1", DEPLOYMENT: "apps/v1", MILVUS: "milvus.io/v1beta1"}


@dataclass(frozen=True)
class WorkloadRef:
    kind: str  # StatefulSet | Deployment | Milvus
    name: str

    @property
    def api_version(self) -> str:
        return API_VERSIONS[self.kind]

    @property
    def ranks_pods(self) -> bool:
        """A ReplicaSet picks who leaves by rank (the operator steers it with deletion costs); a StatefulSet
        removes its highest ordinals."""
        return self.kind != STATEFULSET

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class WorkloadState:
    ref: WorkloadRef
    replicas: int  # as written in its spec (a Milvus: spec.components.queryNode.replicas)
    ready_replicas: int
    rolling: str | None = None  # why a rollout is in flight (no scale-in meanwhile); None: settled

    @property
    def name(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class BalancePolicy:
    """The pool's spec.balance."""

    max_memory_spread_percent: int = 30
    idle_node_seconds: float = 120.0
    scale_out_waits_for_data: bool = False
    max_moves_per_pass: int = 4


@dataclass(frozen=True)
class DeclaredReplicas:
    """One entry of a group's spec.collections."""

    collection: str
    replicas: int
    load_if_released: bool = False


@dataclass(frozen=True)
class DeclaredPool:
    name: str
    pending_group: str
    spare_nodes: int
    min_nodes: int
    max_nodes: int | None
    workload: WorkloadRef  # spec.scaleTargetRef (or spec.statefulSetName)
    max_unavailable: int = 1
    drain_timeout_seconds: float = 600.0
    force_after_timeout: bool = False
    pod_ready_timeout_seconds: float = 300.0
    workload_field: str = "spec.scaleTargetRef"  # the field that names the workload, for messages
    balance: BalancePolicy = BalancePolicy()


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
    created_at: float = 0.0  # metadata.creationTimestamp: of two claims on one Milvus name, the older wins
    workload: WorkloadRef | None = None  # the group's own query-node workload; None: the pool's
    owns_workload: bool = False  # created from spec.template (a StatefulSet the operator owns)
    collections: tuple[DeclaredReplicas, ...] = ()  # spec.collections
    balance_token: str | None = None  # annotation milvusrg.io/balance: a balance is asked for

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
    # False when Milvus did not report the group's config (Milvus < 2.4 answers describe with an empty
    # one): `config` is then a stand-in from the reported capacity, never a real limit of 0.
    config_known: bool = True


@dataclass(frozen=True)
class MilvusNode:
    node_id: int
    # == pod name. Empty where Milvus does not say (node/list; a suspended node is in no group): see
    # `with_pod_hostnames`. A drain follows its node id, which is stable for the life of the process.
    hostname: str
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
class LoadedSegment:
    """A sealed segment as GetQuerySegmentInfo reports it (nodeIds merged over the collection's replicas)."""

    segment_id: int
    rows: int
    mem_size: int
    node_ids: tuple[int, ...]


@dataclass(frozen=True)
class ReplicaInfo:
    """A replica as GetReplicas reports it: its group, its nodes and the node leading each channel."""

    replica_id: int
    group: str
    node_ids: tuple[int, ...]
    channel_leaders: tuple[int, ...] = ()


@dataclass(frozen=True)
class CollectionInfo:
    """A collection in Milvus; replicas and segments only when it is loaded."""

    name: str
    replicas: tuple[ReplicaInfo, ...] = ()
    segments: tuple[LoadedSegment, ...] = ()

    @property
    def loaded(self) -> bool:
        return bool(self.replicas)


@dataclass(frozen=True)
class MilvusState:
    groups: Mapping[str, MilvusGroup]
    nodes: Mapping[int, MilvusNode]  # group members plus the management API's node list
    management_available: bool
    version: str = ""  # as GetVersion reports it, e.g. "v2.5.4"
    # Every collection (list_collections), with the replicas and segments of the loaded ones; None: not read
    # (no group declares collections and none has replicas loaded).
    collections: Mapping[str, CollectionInfo] | None = None

    # Indexes built once per state (a state is immutable): lookups inside the planner's loops stay O(1).
    @cached_property
    def _group_by_node(self) -> dict[int, str]:
        return {node_id: group.name for group in self.groups.values() for node_id in group.node_ids}

    @cached_property
    def _newest_node_by_hostname(self) -> dict[str, MilvusNode]:
        newest: dict[str, MilvusNode] = {}
        for node in self.nodes.values():
            known = newest.get(node.hostname)
            if node.hostname and (known is None or node.node_id > known.node_id):
                newest[node.hostname] = node
        return newest

    @cached_property
    def support(self) -> MilvusSupport:
        """What Milvus does at this version (`core.versions`, the one place that decides it)."""
        return milvus_support(self.version)

    def group_of_node(self, node_id: int) -> str | None:
        return self._group_by_node.get(node_id)

    def node_of_pod(self, pod_name: str) -> MilvusNode | None:
        """The newest node whose hostname is the pod (a restarted process registers a new, higher id)."""
        return self._newest_node_by_hostname.get(pod_name)


@dataclass(frozen=True)
class PodState:
    name: str
    ordinal: int | None  # a StatefulSet's pods only
    ready: bool
    terminating: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    milvus_labels: Mapping[str, str] = field(default_factory=dict)  # node labels Milvus reads from the env
    ip: str = ""  # status.podIP: a query node registers its address as <pod IP>:<port>
    # What a ReplicaSet ranks pods by (core.workloads.replicaset_rank), besides readiness and cost:
    phase: str = "Running"
    scheduled: bool = True  # spec.nodeName is set
    ready_since: float = 0.0  # the Ready condition's lastTransitionTime
    restarts: int = 0
    node_name: str = ""  # spec.nodeName

    @property
    def sort_key(self) -> tuple[bool, int, str]:
        """Status lists pods in this order: a StatefulSet's by ordinal, others by name."""
        return (self.ordinal is None, self.ordinal or 0, self.name)


def address_host(address: str) -> str:
    """The host part of a Milvus node address: "10.0.0.5:21123" -> "10.0.0.5", "[fd00::5]:21123" -> "fd00::5"."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return host.strip("[]")


def with_pod_hostnames(milvus: MilvusState, pods: Sequence[PodState]) -> MilvusState:
    """Give every node the management API lists without a hostname (a suspended node belongs to no group,
    and `node/list` carries only ID, address and state) the name of the pod that has its IP."""
    pod_by_ip = {pod.ip: pod.name for pod in pods if pod.ip}
    missing = {node_id: node for node_id, node in milvus.nodes.items()
               if not node.hostname and address_host(node.address) in pod_by_ip}
    if not missing:
        return milvus
    nodes = dict(milvus.nodes)
    for node_id, node in missing.items():
        nodes[node_id] = replace(node, hostname=pod_by_ip[address_host(node.address)])
    return replace(milvus, nodes=nodes)


@dataclass(frozen=True)
class DrainRecord:
    """One scale-in victim being drained; persisted in the pool's status before Milvus is asked."""

    pod: str
    node_id: int
    group: str
    started_at: float
    phase: str  # Surging, Suspending, WaitingForReplacement, MovingData, Drained, Stalled
    # The pod stays: its node (of a group's own workload) sits in another group and is drained out of it, then
    # resumed so that Milvus places it anew (`scaling`, relocation).
    relocate: bool = False


@dataclass(frozen=True)
class Removal:
    """A scale-in as made: the workload lowered to `replicas` so that `pods` go (the ones its controller's rule
    picks). Persisted in the pool's status until the workload is down to `replicas`, then checked."""

    replicas: int
    pods: tuple[str, ...]
    workload: str = ""  # str(WorkloadRef): the pool's or a group's


@dataclass(frozen=True)
class Problem:
    kind: str  # QueryNodePool | ResourceGroup
    name: str
    field: str
    message: str


@dataclass(frozen=True)
class ObjectState:
    """What a pass needs of one custom resource besides its spec."""

    name: str
    generation: int
    status: Mapping[str, Any] = field(default_factory=dict)
    finalized: bool = False  # carries our finalizer
    deleting: bool = False


@dataclass(frozen=True)
class GroupInput:
    obj: ObjectState
    declared: DeclaredGroup | None  # None: its spec could not be parsed (see `problems`)
    problems: tuple[Problem, ...] = ()
