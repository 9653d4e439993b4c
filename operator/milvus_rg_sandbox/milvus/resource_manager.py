"""Pure state machine of the Milvus query coordinator (no I/O, no asyncio): resource manager, resource
observer, node sessions, replicas and the distribution of channels and segments over query nodes.

Every behaviour names the Milvus source it follows (repository milvus-io/milvus; "2.5" = the 2.5.x branch
as read, the version switches are in `MilvusVersion`). Go-map iteration order and unordered-set choices are
modelled with a seeded `random.Random`. Time is explicit: every timed event (resource-observer tick,
session expiry, balance step, segment load) fires at its due time on `advance()`, so a manual clock gives
deterministic runs and the unserved-data accounting is exact.

Two views of the data are kept apart: the *truth* (which live process really holds which channel and segment:
`held_by`, `unserved_segments`) and *querycoord's distribution* (what it last pulled from each node:
`distribution`, `query_segment_info`, and what its observers and checkers act on). They differ after a
query-coordinator restart whose first pulls of some nodes failed, and by the copies querycoord lost track of.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from .balancer import Move, ScoreBasedBalancer

DEFAULT_RG = "__default_resource_group"
DEFAULT_RG_CAPACITY = 1_000_000
STATIC_RG_LIMIT = 1_000_000
MAX_RG_NUM = 1024
MAX_NAME_LENGTH = 255
LABEL_ENV_PREFIX = "MILVUS_SERVER_LABEL_"
STATIC_RG_LABEL = "RESOURCE_GROUP"
ROLE_TOKENS = frozenset({"querynode", "qn", "datanode", "dn", "streamingnode", "sn", "mixcoord", "coord", "proxy"})
QUERY_NODE_ROLES = frozenset({"querynode", "qn"})
STREAMING_NODE_ROLES = frozenset({"streamingnode", "sn"})
SEGMENT_ROWS = 1000
SEGMENT_BYTES = 2_162_688
# A segment's memory per row when the schema is not known (the collections made in-process).
DEFAULT_ROW_BYTES = SEGMENT_BYTES // SEGMENT_ROWS
# Timings as Milvus ships them (configs/milvus.yaml of 2.4-2.6; paramtable defaults where the yaml is silent).
SESSION_TTL = 30.0  # common.session.ttl: 30 in configs/milvus.yaml (the paramtable default is 60)
DIST_PULL_INTERVAL = 0.5  # queryCoord.distPullInterval: 500 ms
CHECK_NODE_IN_REPLICA_INTERVAL = 60.0  # queryCoord.checkNodeInReplicaInterval: 60 s
BALANCE_CHECK_INTERVAL = 3.0  # queryCoord.checkBalanceInterval: 3000 ms (the balance checker's period)
# paramtable `queryNode.gracefulStopTimeout`, falling back to common.gracefulStopTimeout: 1800 s
GRACEFUL_STOP_TIMEOUT = 1800.0
_MAX_EVENTS_PER_ADVANCE = 1_000_000


class Code(IntEnum):
    """merr codes, pkg/util/merr/errors.go (2.5)."""

    COLLECTION_NOT_FOUND = 100
    COLLECTION_NOT_LOADED = 101
    COLLECTION_NOT_FULLY_LOADED = 103
    SEGMENT_NOT_FOUND = 600
    RG_NOT_FOUND = 300
    RG_ALREADY_EXIST = 301
    RG_NUM_LIMIT = 302
    RG_ILLEGAL_CONFIG = 303
    RG_NODE_NOT_ENOUGH = 304
    NODE_NOT_FOUND = 901
    NODE_NOT_AVAILABLE = 905
    NODE_STATE_UNEXPECTED = 906
    PARAMETER_INVALID = 1100
    PARAMETER_MISSING = 1101
    UNEXPECTED = 65535  # errUnexpected: a plain (non-merr) Go error


class MilvusError(Exception):
    """An error a real Milvus server reports as `Status(code, reason)`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_version(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True)
class MilvusVersion:
    """Where Milvus versions differ (each switch names the change it follows)."""

    text: str

    @property
    def number(self) -> tuple[int, ...]:
        return parse_version(self.text)

    @property
    def declarative_resource_groups(self) -> bool:
        """requests/limits configs (create with a config), `UpdateResourceGroups`, describe's `config` and
        `nodes`: PR #31930, held back from 2.4.0 ("Declarative Resource Group API should not release in
        2.4.0"), first in 2.4.1. A 2.4.0 answers these as the measured 2.3.5 does."""
        return self.number >= (2, 4, 1)

    @property
    def management_routes(self) -> bool:
        """The proxy's /management/querycoord routes (internal/proxy/management.go `RegisterMgrRoute`): PR
        #29998, backported as #31846 ("Added restful api for devops to execute rolling upgrade", 2.3.14 release
        notes) and #31645 (merged 2024-03-29; the 2.4 branch before 2.4.0, inferred); 404 on the measured 2.3.5."""
        number = self.number
        return number >= (2, 3, 14) if number[:2] == (2, 3) else number >= (2, 4)

    @property
    def balance_status_route(self) -> bool:
        """/management/querycoord/balance/status (`CheckQueryCoordBalanceStatus`): PR #37784, backported by
        #39924 (2.4, merged 2025-02-26: 2.4.23) and #39909 (2.5, merged 2025-02-19: 2.5.5); 404 before."""
        number = self.number
        if number[:2] == (2, 4):
            return number >= (2, 4, 23)
        if number[:2] == (2, 5):
            return number >= (2, 5, 5)
        return number >= (2, 6)

    @property
    def suspend_leaves_group(self) -> bool:
        """PR #35492/#35586 (Aug 2024, first in 2.4.10): querycoord `SuspendNode` calls
        `ResourceManager.HandleNodeDown`; before, `nodeMgr.Suspend` kept the node in its group."""
        return self.number >= (2, 4, 10)

    @property
    def distribution_ids_as_strings(self) -> bool:
        """PR #39927 (2.4.23) / #39926 (2.5 branch, merged 2025-02-18, so 2.5.5 inferred): proxy
        `GetQueryNodeDistribution` writes segment ids as strings and keeps empty keys."""
        number = self.number
        if number[:2] == (2, 4):
            return number >= (2, 4, 23)
        if number[:2] == (2, 5):
            return number >= (2, 5, 5)
        return number >= (2, 6)

    @property
    def role_aware_labels(self) -> bool:
        """internal/util/sessionutil/labels.go (issue #46400, PR #46402, 2.6.8): role-specific label env vars,
        and a node labelled RESOURCE_GROUP joins (creates) that group."""
        return self.number >= (2, 6, 8)

    @property
    def streaming(self) -> bool:
        """2.6: streaming nodes serve the channels (their embedded query nodes hold the shard delegators),
        query nodes hold sealed segments; one MixCoord process runs the coordinators."""
        return self.number >= (2, 6)

    @property
    def streaming_rg_isolation(self) -> bool:
        """2.6.16: meta/replica_manager.go `buildSQNodeAssignmentHelpers`: a replica takes the streaming nodes
        labelled with its resource group when those cover every replica's group."""
        return self.number >= (2, 6, 16)

    @property
    def groupless_nodes_reported_suspended(self) -> bool:
        """master (3.0 line) ops_services.go `ListQueryNode` + resource_manager.go `GetNodesSuspended`: a node in
        no group and not stopping is listed as "Suspend". Not in the 2.6 branch's ops_services.go as read."""
        return self.number >= (3, 0)


class NodeState(Enum):
    """The simulator's view of a query-node process (not the wire state: see `MilvusVersion`)."""

    HEALTHY = "Healthy"
    STOPPING = "Stopping"
    SUSPENDED = "Suspend"  # suspended through the management API, process alive
    # kill -9: the session lives on until its TTL, so querycoord still sees the node as a member.
    OFFLINE = "Offline"


@dataclass(frozen=True)
class RGConfig:
    """A resource-group config; `None` requests/limits mean "field not set" (only valid as input)."""

    requests: int | None = 0
    limits: int | None = 0
    transfer_from: tuple[str, ...] = ()
    transfer_to: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()

    @property
    def req(self) -> int:
        return self.requests or 0

    @property
    def lim(self) -> int:
        return self.limits or 0


@dataclass
class Node:
    node_id: int
    hostname: str
    address: str
    labels: dict[str, str]
    state: NodeState = NodeState.HEALTHY
    crashed_at: float = 0.0
    stopping_since: float = 0.0
    # 2.6: the query node embedded in a streaming node (session label STREAMING-EMBEDDED, QUERYNODE_STREAMING-
    # EMBEDDED before 2.6.8): listed by node/list, never in a resource group, holds shard delegators.
    embedded: bool = False

    @property
    def alive(self) -> bool:
        """The process runs (it serves what it holds)."""
        return self.state is not NodeState.OFFLINE


@dataclass
class _Membership:
    """A cache of `ResourceManager.accept` over a group's nodes (performance only): `accepted` are the members
    (`GetNodes`), `rejected` the dirty nodes. Valid while `key` (filter, version) holds; kept up to date by
    `ResourceManager._join` / `_leave`, so a node joining or leaving costs O(1), not a scan of the group."""

    key: tuple[object, ...]
    accepted: set[int]
    rejected: set[int]
    ordered: list[int] | None = None  # sorted(accepted), built when an order is asked for


@dataclass
class ResourceGroup:
    name: str
    config: RGConfig
    nodes: set[int] = field(default_factory=set)
    membership: _Membership | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SealedSegment:
    """A flushed segment: its rows and the memory a query node holding it uses (`mem_size` of
    `GetQuerySegmentInfo`)."""

    rows: int
    mem_size: int


@dataclass
class Collection:
    collection_id: int
    name: str
    channels: tuple[str, ...]
    segments: dict[int, SealedSegment]
    loaded: bool = False
    schema: bytes = b""  # the CreateCollection request's serialized schema, answered back by DescribeCollection
    row_bytes: int = DEFAULT_ROW_BYTES
    # Inserted rows not flushed yet: channel -> (its growing segment's id, rows).
    growing: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def partition_id(self) -> int:
        return self.collection_id + 1

    @property
    def segment_ids(self) -> tuple[int, ...]:
        return tuple(self.segments)

    @property
    def sealed_rows(self) -> int:
        return sum(segment.rows for segment in self.segments.values())


@dataclass
class Holding:
    """One channel or segment of one replica: where querycoord's distribution has it, and where it loads."""

    node: int | None = None  # the node whose process holds and serves it for the replica (None: on no node)
    loading_on: int | None = None  # node loading it: a balance copy, or a reload after its node went down
    ready_at: float = 0.0
    # The load is the segment/channel checker's (the item lacked in querycoord's distribution), not a balance
    # move: nothing releases the copy `node` may still hold.
    reload: bool = False


@dataclass
class Replica:
    replica_id: int
    collection: str
    resource_group: str
    rw_nodes: set[int] = field(default_factory=set)
    ro_nodes: dict[int, float] = field(default_factory=dict)  # node -> time it became read-only
    # 2.6: the streaming query nodes (embedded in streaming nodes) holding its channels, RW and read-only
    rw_sq_nodes: set[int] = field(default_factory=set)
    ro_sq_nodes: dict[int, float] = field(default_factory=dict)
    channels: dict[str, Holding] = field(default_factory=dict)
    segments: dict[int, Holding] = field(default_factory=dict)

    def holdings(self) -> Iterator[Holding]:
        yield from self.channels.values()
        yield from self.segments.values()

    def items(self) -> Iterator[tuple[str | int, Holding]]:
        """(channel name or segment id, its holding)."""
        yield from self.channels.items()
        yield from self.segments.items()


@dataclass(frozen=True)
class ResourceGroupDescription:
    name: str
    capacity: int
    num_available_node: int
    num_loaded_replica: dict[str, int]
    num_outgoing_node: dict[str, int]
    num_incoming_node: dict[str, int]
    config: RGConfig
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class SegmentInfo:
    """querypb.SegmentInfo as proxy `GetQuerySegmentInfo` returns it."""

    segment_id: int
    collection_id: int
    partition_id: int
    node_ids: tuple[int, ...]
    rows: int = SEGMENT_ROWS
    mem_size: int = SEGMENT_BYTES


def node_labels_from_env(
    env: Mapping[str, str], version: str = "2.5", roles: frozenset[str] = QUERY_NODE_ROLES
) -> dict[str, str]:
    """Labels a node of `roles` reads from `MILVUS_SERVER_LABEL_*`: 2.5 sessionutil `GetServerLabelsFromEnv`
    (prefix stripped); since 2.6.8 (labels.go) a leading role token selects the role and is stripped."""
    role_aware = MilvusVersion(version).role_aware_labels
    generic: dict[str, str] = {}
    role_specific: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(LABEL_ENV_PREFIX):
            continue
        label = key[len(LABEL_ENV_PREFIX) :]
        role, _, rest = label.partition("_")
        if role_aware and role.lower() in ROLE_TOKENS and rest:
            if role.lower() in roles:
                role_specific[rest] = value
            continue
        if label:
            generic[label] = value
    return generic | role_specific  # a role-specific label wins over the generic one


def validate_rg_name(name: str) -> None:
    """internal/proxy/util.go `ValidateResourceGroupName` (2.5), called by proxy `CreateResourceGroup` only:
    an empty name is a plain error (65535), the others `merr.WrapErrParameterInvalidMsg` (1100)."""
    if not name:
        raise MilvusError(Code.UNEXPECTED, "resource group name couldn't be empty")
    invalid = f"Invalid resource group name {name}."
    if len(name) > MAX_NAME_LENGTH:
        raise _invalid_msg(
            f"{invalid} the length of a resource group name must be less than {MAX_NAME_LENGTH} characters"
        )
    if not (name[0] == "_" or (name[0].isascii() and name[0].isalpha())):
        raise _invalid_msg(f"{invalid} the first character of a resource group name must be an underscore or letter")
    if not re.fullmatch(r"[A-Za-z0-9_]*", name[1:]):
        raise _invalid_msg(f"{invalid} resource group name can only contain numbers, letters and underscores")


def _invalid_msg(message: str) -> MilvusError:
    """merr `WrapErrParameterInvalidMsg`: the Status reason is `<message>: invalid parameter`."""
    return MilvusError(Code.PARAMETER_INVALID, f"{message}: invalid parameter")


def _invalid(expected: object, actual: object, message: str = "") -> MilvusError:
    """merr `WrapErrParameterInvalid(expected, actual, message...)` as merr.Status renders it."""
    fields = f"invalid parameter[expected={expected}][actual={actual}]"
    return MilvusError(Code.PARAMETER_INVALID, f"{message}: {fields}" if message else fields)


def _illegal(name: str, message: str) -> MilvusError:
    """merr `WrapErrResourceGroupIllegalConfig` (the `[config=...]` field is left out)."""
    return MilvusError(Code.RG_ILLEGAL_CONFIG, f"{message}: resource group illegal config[rg={name}]")


def rg_not_found(name: str) -> MilvusError:
    """merr `WrapErrResourceGroupNotFound`."""
    return MilvusError(Code.RG_NOT_FOUND, f"resource group not found[rg={name}]")


def node_not_found(node_id: int, message: str) -> MilvusError:
    """merr `WrapErrNodeNotFound(id, msg)`: `<msg>: node not found[node=N]`."""
    return MilvusError(Code.NODE_NOT_FOUND, f"{message}: node not found[node={node_id}]")


class ResourceManager:
    """querycoordv2: ResourceManager, ResourceObserver, node sessions, ReplicaManager, the balance and segment
    checkers (as data placement), all driven by an explicit clock."""

    def __init__(
        self,
        seed: int | None = None,
        version: str = "v2.5.16",
        session_ttl: float = SESSION_TTL,
        balance_delay: float = 1.0,
        load_time: float = 5.0,
        check_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        num_channels: int = 2,
        num_segments: int = 4,
        dist_pull_interval: float = DIST_PULL_INTERVAL,
        check_node_in_replica_interval: float = CHECK_NODE_IN_REPLICA_INTERVAL,
        balance_check_interval: float = BALANCE_CHECK_INTERVAL,
        auto_balance: bool = True,
        graceful_stop_timeout: float = GRACEFUL_STOP_TIMEOUT,
        streaming_strict_rg_isolation: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.version = version
        self.session_ttl = session_ttl
        self.balance_delay = balance_delay
        self.load_time = load_time
        self.check_interval = check_interval
        self.dist_pull_interval = dist_pull_interval
        self.check_node_in_replica_interval = check_node_in_replica_interval
        self.graceful_stop_timeout = graceful_stop_timeout
        self.streaming_strict_rg_isolation = streaming_strict_rg_isolation  # streaming.strictResourceGroupIsolation
        self.clock = clock
        self.num_channels = num_channels
        self.num_segments = num_segments
        self.balance_suspended = False
        self.nodes: dict[int, Node] = {}
        self.groups: dict[str, ResourceGroup] = {
            DEFAULT_RG: ResourceGroup(DEFAULT_RG, RGConfig(0, DEFAULT_RG_CAPACITY))
        }
        self.collections: dict[str, Collection] = {}
        self.replicas: dict[int, Replica] = {}
        self.last_errors: dict[str, str] = {}  # RG -> error of its last recovery attempt
        # Set by create/update/drop (rgChangedNotifier.NotifyAll); the observer pass it asks for clears it.
        self.rg_changed = False
        self._incoming: set[int] = set()
        # Indexes of the nodes that timed events and stopping exits look at (performance only: a superset,
        # each entry re-checked against `Node.state` when used).
        self._crashed: set[int] = set()
        self._stopping: set[int] = set()
        self._node_ids = itertools.count(1)
        self._object_ids = itertools.count(1000)
        self._moves = 0
        self._node_changes = 0  # ResourceManager.nodeChangedNotifier: a node joined or left a group
        # Nodes whose distribution querycoord has not pulled since it started -> when a pull succeeds.
        self._unpulled_until: dict[int, float] = {}
        # Copies a process still holds that no replica counts as its own (querycoord lost track of them):
        # node -> {(replica id, channel name or segment id)}.
        self._leaked: dict[int, set[tuple[int, str | int]]] = {}
        self._now = clock()
        self.next_check_at = self._now + check_interval
        self.next_replica_check_at = self._now + check_node_in_replica_interval
        # checkers/balance_checker.go: the normal balance (`queryCoord.autoBalance`), every balance_check_interval
        self.balance_check_interval = balance_check_interval
        self.auto_balance = auto_balance
        self.balancer = ScoreBasedBalancer(self)
        self.next_balance_check_at = self._now + balance_check_interval
        self._balanced_in_round: set[str] = set()  # balancedCollectionInCurrentRound
        self._unserved_segment_seconds = 0.0
        self._unserved_channel_seconds = 0.0
        self._accounted_at = self._now

    @property
    def milvus_version(self) -> MilvusVersion:
        return MilvusVersion(self.version)

    # ----------------------------------------------------------------- quantities (resource_group.go, 2.5)
    def accept(self, rg: ResourceGroup, node_id: int) -> bool:
        """`ResourceGroup.AcceptNode`: the default group takes any node; others need a known node (a session)
        whose labels match every pair of the node filter."""
        if rg.name == DEFAULT_RG:
            return True
        node = self.nodes.get(node_id)
        if node is None or node.embedded:
            return False
        # the RESOURCE_GROUP label (2.6.8) is not checked here: recovery may move a labelled node out
        return all(node.labels.get(key) == value for key, value in rg.config.node_labels)

    def _membership(self, rg: ResourceGroup) -> _Membership:
        """`accept` over `rg.nodes`, cached; rebuilt when the filter or version changed or `rg.nodes` was
        changed behind `_join` / `_leave` (sizes disagree)."""
        key = (rg.config.node_labels, self.version)
        cached = rg.membership
        if cached is not None and cached.key == key and len(cached.accepted) + len(cached.rejected) == len(rg.nodes):
            return cached
        accepted = {n for n in rg.nodes if self.accept(rg, n)}
        rg.membership = _Membership(key, accepted, rg.nodes - accepted)
        return rg.membership

    def _join(self, rg: ResourceGroup, node_id: int) -> None:
        membership = self._membership(rg)
        if node_id in rg.nodes:
            return
        rg.nodes.add(node_id)
        self._node_changes += 1  # transferNode: nodeChangedNotifier.NotifyAll
        if self.accept(rg, node_id):
            membership.accepted.add(node_id)
            membership.ordered = None
        else:
            membership.rejected.add(node_id)

    def _leave(self, rg: ResourceGroup, node_id: int) -> None:
        membership = self._membership(rg)
        if node_id in rg.nodes:
            self._node_changes += 1  # unassignNode: nodeChangedNotifier.NotifyAll
        rg.nodes.discard(node_id)
        membership.rejected.discard(node_id)
        if node_id in membership.accepted:
            membership.accepted.discard(node_id)
            membership.ordered = None

    def _dirty(self, rg: ResourceGroup) -> list[int]:
        rejected = self._membership(rg).rejected
        return [n for n in rg.nodes if n in rejected] if rejected else []  # in `rg.nodes` order, as before

    def members(self, rg: ResourceGroup) -> list[int]:
        """`ResourceGroup.GetNodes` (2.5): the nodes that match the group's node filter."""
        membership = self._membership(rg)
        if membership.ordered is None:
            membership.ordered = sorted(membership.accepted)
        return list(membership.ordered)

    def node_num(self, rg: ResourceGroup) -> int:
        return len(self._membership(rg).accepted)

    def missing(self, rg: ResourceGroup) -> int:
        return max(0, rg.config.req - self.node_num(rg))

    def oversized(self, rg: ResourceGroup) -> int:
        return max(0, self.node_num(rg) - rg.config.req) + len(self._membership(rg).rejected)

    def room(self, rg: ResourceGroup) -> int:
        return max(0, rg.config.lim - self.node_num(rg))

    def redundant(self, rg: ResourceGroup) -> int:
        return max(0, self.node_num(rg) - rg.config.lim) + len(self._membership(rg).rejected)

    def meets_requirement(self, rg: ResourceGroup) -> bool:
        return self.missing(rg) == 0 and self.redundant(rg) == 0

    def group_of(self, node_id: int) -> str | None:
        return next((rg.name for rg in self.groups.values() if node_id in rg.nodes), None)

    def _group(self, name: str) -> ResourceGroup:
        rg = self.groups.get(name)
        if rg is None:
            raise rg_not_found(name)
        return rg

    def _shuffled_groups(self) -> list[ResourceGroup]:
        """Go-map iteration order."""
        groups = list(self.groups.values())
        self.rng.shuffle(groups)
        return groups

    # ----------------------------------------------------------------- config API (resource_manager.go, 2.5)
    def _validate_config(self, name: str, config: RGConfig, known: Iterable[str]) -> None:
        """`validateResourceGroupConfig`."""
        if config.requests is None or config.limits is None:
            raise _illegal(name, "requests or limits is required")
        if config.requests < 0 or config.limits < 0:
            raise _illegal(name, "node num in `requests` or `limits` should not less than 0")
        if config.limits < config.requests:
            raise _illegal(name, "limits node num should not less than requests node num")
        existing = set(known)
        for field_name, targets in (("TransferFrom", config.transfer_from), ("TransferTo", config.transfer_to)):
            for target in targets:
                if target == name:
                    raise _illegal(name, f"resource group in `{field_name}` {target} should not be itself")
                if target not in existing:
                    raise _illegal(name, f"resource group in `{field_name}` {target} not exist")

    def create_resource_group(self, name: str, config: RGConfig | None = None) -> None:
        """proxy `ValidateResourceGroupName`, then `AddResourceGroup`: a nil config is (0, 0); same name with a
        `proto.Equal` config succeeds; nodes only move on the observer pass it notifies."""
        self.advance()
        validate_rg_name(name)
        if not self.milvus_version.declarative_resource_groups:
            config = None  # measured on a real 2.3.5: the config is accepted and dropped
        config = config or RGConfig(0, 0)
        existing = self.groups.get(name)
        if existing is not None:
            if not self.milvus_version.declarative_resource_groups:
                raise MilvusError(Code.UNEXPECTED, "resource group already exist")  # real 2.3.5: code 65535
            if existing.config == config:
                return
            raise MilvusError(
                Code.RG_ALREADY_EXIST, f"resource group already exist, but create with different config[rg={name}]"
            )
        if len(self.groups) >= MAX_RG_NUM:
            raise MilvusError(Code.RG_NUM_LIMIT, f"resource group num reach limit[rg={name}][limit={MAX_RG_NUM}]")
        self._validate_config(name, config, self.groups)
        self.groups[name] = ResourceGroup(name, config)
        self.rg_changed = True

    def update_resource_groups(self, configs: Mapping[str, RGConfig]) -> None:
        """`updateResourceGroups`: no name check (unknown -> 300), every config validated, one catalog write
        (all or nothing), full replace; nodes move on the observer pass it notifies."""
        self.advance()
        if not configs:
            return
        for name in configs:
            self._group(name)
        for name, config in configs.items():
            self._validate_config(name, config, self.groups)
        for name, config in configs.items():
            self.groups[name].config = config
        self.rg_changed = True

    def drop_resource_group(self, name: str) -> None:
        """querycoord services.go `DropResourceGroup` (loaded replicas), then `RemoveResourceGroup`: absent ->
        success, `validateResourceGroupIsDeletable`, redundant-node recovery of what is left, delete."""
        self.advance()
        if any(replica.resource_group == name for replica in self.replicas.values()):
            raise MilvusError(
                Code.PARAMETER_INVALID, f"some replicas still loaded in resource group[{name}], release it first"
            )
        rg = self.groups.get(name)
        if rg is None:
            return
        if name == DEFAULT_RG:
            raise _invalid("not default resource group", name, "default resource group is not deletable")
        if rg.config.lim != 0:
            raise _invalid("not empty resource group", name, "resource group's limits node num is not 0")
        for other in self.groups.values():
            for field_name, targets in (
                ("TransferFrom", other.config.transfer_from),
                ("TransferTo", other.config.transfer_to),
            ):
                if name in targets:
                    raise _invalid(
                        f"not `{field_name}` of resource group", name,
                        f"resource group {name} is used by {other.name}'s `{field_name}`, "
                        "remove that configuration first",
                    )
        if self.milvus_version.role_aware_labels:
            # resource_manager.go `validateResourceGroupIsDeletable` (master, with the 2.6.8 labels): every node
            # with a session (stopping, crashed before its TTL and embedded ones too) labelled with the group
            for node in self.nodes.values():
                if node.labels.get(STATIC_RG_LABEL) == name:
                    raise _invalid("not empty resource group", f"node {node.node_id} is still in the resource group")
        self._recover_redundant(rg)
        for node_id in list(rg.nodes):  # whatever recovery could not place goes to the default RG
            self._move(node_id, rg, self.groups[DEFAULT_RG])
        del self.groups[name]
        self.rg_changed = True
        self._settle(nodes_changed=True)

    def transfer_node(self, source: str, target: str, num_node: int) -> None:
        """Deprecated `TransferNode` (2.5): rewrites requests/limits through `updateResourceGroups`."""
        self.advance()
        if source == target:
            raise _invalid_msg(
                "source resource group and target resource group should not be the same, "
                f"resource group: {source}"
            )
        if num_node <= 0:
            raise _invalid("NumNode > 0", f"invalid NumNode {num_node}", "invalid parameter")
        source_rg, target_rg = self._group(source), self._group(target)
        available = len(self.members(source_rg))
        if available < num_node:
            raise MilvusError(
                Code.RG_NODE_NOT_ENOUGH,
                f"resource group node not enough[rg={source}][currentNodeNum={available}][expectedNodeNum={num_node}]",
            )
        src, dst = source_rg.config, target_rg.config
        src_limits = src.lim if source == DEFAULT_RG else max(0, src.lim - num_node)  # default: compatibility
        dst_requests = dst.req + num_node
        self.update_resource_groups(
            {
                source: RGConfig(max(0, src.req - num_node), src_limits, src.transfer_from, src.transfer_to,
                                 src.node_labels),
                target: RGConfig(dst_requests, max(dst.lim, dst_requests), dst.transfer_from, dst.transfer_to,
                                 dst.node_labels),
            }
        )

    def list_resource_groups(self) -> list[str]:
        return list(self.groups)

    def describe_resource_group(self, name: str) -> ResourceGroupDescription:
        """querycoord services.go `DescribeResourceGroup` (2.5): nodes = `rg.GetNodes()` (filter-matching) that
        the node manager knows (a live session); num_available_node = their count; outgoing = RO nodes of
        its replicas now elsewhere; incoming = RO nodes of other replicas now here."""
        self.advance()
        rg = self._group(name)
        loaded: dict[str, int] = {}
        outgoing: dict[str, int] = {}
        incoming: dict[str, int] = {}
        for replica in self.replicas.values():
            if replica.resource_group == name:
                loaded[replica.collection] = loaded.get(replica.collection, 0) + 1
                leaving = sum(1 for n in replica.ro_nodes if n not in rg.nodes)
                if leaving:
                    outgoing[replica.collection] = outgoing.get(replica.collection, 0) + leaving
            else:
                arriving = sum(1 for n in replica.ro_nodes if n in rg.nodes)
                if arriving:
                    incoming[replica.collection] = incoming.get(replica.collection, 0) + arriving
        members = tuple(self.nodes[n] for n in self.members(rg) if n in self.nodes)
        return ResourceGroupDescription(
            name=name,
            capacity=DEFAULT_RG_CAPACITY if name == DEFAULT_RG else rg.config.req,  # `GetCapacity`
            num_available_node=len(members),
            num_loaded_replica=loaded,
            num_outgoing_node=outgoing,
            num_incoming_node=incoming,
            config=rg.config,
            nodes=members,
        )

    # ----------------------------------------------------------------- node lifecycle
    def add_node(self, hostname: str, address: str, env: Mapping[str, str] | None = None) -> int:
        """A query node registers a session (a fresh id per process start, sessionutil `getServerID`);
        querycoord server.go `handleNodeUp` -> `ResourceManager.HandleNodeUp`: assigned at once."""
        self.advance()
        node_id = next(self._node_ids)
        self.nodes[node_id] = Node(node_id, hostname, address, node_labels_from_env(env or {}, self.version))
        self._handle_node_up(node_id)
        self._settle(nodes_changed=True)
        return node_id

    def add_streaming_node(self, hostname: str, address: str, env: Mapping[str, str] | None = None) -> int | None:
        """2.6: a streaming node starts with a query node embedded in it (streamingnode server.go; session label
        STREAMING-EMBEDDED): querycoord lists it as a node but `HandleNodeUp` skips it (never in a resource
        group); the replicas take it as a streaming query node for their channels (`RecoverSQNodesInCollection`
        with `snmanager.StaticStreamingNodeManager.GetStreamingQueryNodeIDs`). Its RESOURCE_GROUP label (from
        `MILVUS_SERVER_LABEL_RESOURCE_GROUP`, role `streamingnode`) names its group for 2.6.16's isolation.
        Before 2.6 there is none (the 2.5 streaming node is off by default): nothing registers, None."""
        self.advance()
        if not self.milvus_version.streaming:
            return None
        node_id = next(self._node_ids)
        labels = node_labels_from_env(env or {}, self.version, STREAMING_NODE_ROLES)
        self.nodes[node_id] = Node(node_id, hostname, address, labels, embedded=True)
        self._node_changes += 1  # StreamingNodeManager: nodeChangedNotifier.NotifyAll on assignment changes
        self._settle(nodes_changed=True)
        return node_id

    def _node(self, node_id: int, message: str) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            raise node_not_found(node_id, message)
        return node

    def _handle_node_up(self, node_id: int) -> None:
        """resource_manager.go `HandleNodeUp` -> `assignIncomingNodeWithNodeCheck`: a stopping node is not
        assigned; a node already in a group stays; otherwise `assignIncomingNode`."""
        node = self.nodes.get(node_id)
        if node is None or node.state is NodeState.STOPPING or node.embedded:
            self._incoming.discard(node_id)  # 2.6 `handleNodeUp`: an embedded query node joins no group
            return
        if self.group_of(node_id) is None:
            self._assign_incoming(node)
        self._incoming.discard(node_id)

    def _handle_node_down(self, node_id: int) -> None:
        """`HandleNodeDown` / `HandleNodeStopping` (2.5): the node leaves its group at once; neither notifies
        the resource observer, so the group refills at its next tick."""
        self._incoming.discard(node_id)
        for rg in self.groups.values():
            if node_id in rg.nodes:
                self._leave(rg, node_id)
                self._moves += 1

    def stop_node(self, node_id: int) -> None:
        """SIGTERM: the session turns Stopping; server.go `handleNodeStopping` -> `HandleNodeStopping`. Its data
        leaves by stopping balance; the process exits (session gone) once it holds nothing, or when
        `queryNode.gracefulStopTimeout` is up with data still loaded (querynode server.go `Stop`)."""
        self.advance()
        node = self._node(node_id, "failed to stop query node")
        if node.state is not NodeState.STOPPING:
            node.stopping_since = self._now
        node.state = NodeState.STOPPING
        self._stopping.add(node_id)
        self._handle_node_down(node_id)
        self._settle(nodes_changed=True)

    def crash_node(self, node_id: int) -> None:
        """kill -9: nothing tells querycoord; the session (and group membership) lives until its TTL, while
        the node's channels and segments are no longer served."""
        self.advance()
        node = self._node(node_id, "failed to crash query node")
        if node.alive:
            node.state = NodeState.OFFLINE
            node.crashed_at = self._now
            self._crashed.add(node_id)

    def suspend_node(self, node_id: int) -> None:
        """querycoord services.go `SuspendNode`. Since 2.4.10: only "node exists" is checked (901), then
        `ResourceManager.HandleNodeDown` (also for a crashed or stopping node). Up to 2.4.9: `nodeMgr.Suspend`,
        the node stays in its group, state "Suspend" (906 if not Normal: inferred)."""
        self.advance()
        node = self._node(node_id, "failed to suspend query node")
        if self.milvus_version.suspend_leaves_group:
            # A node in no group (2.6: an embedded query node always) stays as it is: `HandleNodeDown` finds
            # nothing to unassign, its channels never drain (milvus#53176, open; seen on 2.6.22, 2.6.23, master).
            if node.state is NodeState.HEALTHY and not node.embedded:
                node.state = NodeState.SUSPENDED
            self._handle_node_down(node_id)
            self._settle(nodes_changed=True)  # HandleNodeDown notifies node changes even when nothing moved
            return
        if node.state is NodeState.HEALTHY:
            node.state = NodeState.SUSPENDED
        elif node.state is not NodeState.OFFLINE:  # querycoord sees a crashed node as Normal
            raise MilvusError(
                Code.NODE_STATE_UNEXPECTED,
                f"failed to suspend a query node: node state unexpected[node={node_id}][state={self.wire_state(node)}]",
            )

    def resume_node(self, node_id: int) -> None:
        """services.go `ResumeNode`. Since 2.4.10: `HandleNodeUp`, so the node may land in another group.
        Up to 2.4.9: `nodeMgr.Resume` back to Normal (906 if it was not suspended: inferred)."""
        self.advance()
        node = self._node(node_id, "failed to resume query node")
        if node.embedded:  # ops_services.go `ResumeNode` (2.6)
            raise _invalid_msg("embedded query node in streaming node can't be resumed")
        if node.state is NodeState.SUSPENDED:
            node.state = NodeState.HEALTHY
        elif not self.milvus_version.suspend_leaves_group and node.alive:
            raise MilvusError(
                Code.NODE_STATE_UNEXPECTED,
                f"failed to resume query node: node state unexpected[node={node_id}][state={self.wire_state(node)}]",
            )
        if self.milvus_version.suspend_leaves_group:
            self._handle_node_up(node_id)
            self._settle(nodes_changed=True)

    def restart_querycoord(self, failed_pulls: Mapping[int, float] | None = None) -> None:
        """A query-coordinator restart. Suspension is not persisted: the node manager is rebuilt from the
        sessions (every node Normal again) and server.go `rewatchNodes` ends with
        `CheckNodesInResourceGroup`, which runs `handleNodeUp` for every known node in no group. Balance
        suspension (a checker switch) and the tasks in flight (the scheduler's memory) are forgotten too.

        The distribution is rebuilt from the nodes: server.go `startServerLoop` runs dist_controller.go
        `SyncAll` (one `getDistribution` per node) before the observers and checkers start and the
        coordinator reports healthy; a failed pull is only logged (dist_handler.go `pullDist`), and the
        node's handler pulls again every `queryCoord.distPullInterval`. `failed_pulls` maps node ids to
        how long their pulls keep failing: until the first later pull succeeds querycoord's distribution
        has nothing on that node (2.5; the same in 2.6's `startServerLoop`)."""
        self.advance()
        for node in self.nodes.values():
            if node.state is NodeState.SUSPENDED:
                node.state = NodeState.HEALTHY
        for node_id in sorted(self.nodes):
            if self.group_of(node_id) is None:
                self._handle_node_up(node_id)
        self.balance_suspended = False
        for replica in self.replicas.values():
            for holding in replica.holdings():
                holding.loading_on, holding.reload = None, False
        self._unpulled_until = {}
        for node_id, seconds in (failed_pulls or {}).items():
            if node_id in self.nodes and seconds > 0:
                self._unpulled_until[node_id] = self._now + self._first_good_pull_after(seconds)
        # replica_observer.go `schedule` listens from the earliest version: its first pass runs at once
        self._settle(nodes_changed=True)

    def _first_good_pull_after(self, seconds: float) -> float:
        """Pulls come every `dist_pull_interval` after `SyncAll`'s; the first one past `seconds` succeeds."""
        interval = self.dist_pull_interval
        if interval <= 0:
            return seconds
        return max(1, math.ceil(seconds / interval - 1e-9)) * interval

    def set_balance_suspended(self, suspended: bool) -> None:
        """services.go `SuspendBalance` / `ResumeBalance`: checker.go `Deactivate` / `Activate` of the balance
        checker. Its stopping balance (read-only nodes) runs whatever the switch (`replicasToBalance`)."""
        self.advance()
        self.balance_suspended = suspended
        self._settle(nodes_changed=False)

    def node_gone(self, node_id: int) -> bool:
        self.advance()
        return node_id not in self.nodes

    def wire_state(self, node: Node) -> str:
        """`NodeInfo.GetState().String()` as `ListQueryNode` reports it: "Normal" or "Stopping"; "Suspend"
        while a suspended node stays in its group (up to 2.4.9), and on master (3.0) for every node in no
        group that is not stopping (embedded ones included). A crashed node is Normal until its session
        expires."""
        if node.state is NodeState.STOPPING:
            return "Stopping"
        if node.state is NodeState.SUSPENDED and not self.milvus_version.suspend_leaves_group:
            return "Suspend"
        if self.milvus_version.groupless_nodes_reported_suspended and self.group_of(node.node_id) is None:
            return "Suspend"
        return "Normal"

    def _session_down(self, node_id: int) -> None:
        """The session is gone (TTL expiry of a crashed node, or a stopping node's exit): server.go
        `handleNodeDown` clears the node's distribution, then `HandleNodeDown` (a node change: the replica
        observer drops the node from its replicas, as its distribution is empty)."""
        self._handle_node_down(node_id)
        for replica in self.replicas.values():
            replica.rw_nodes.discard(node_id)
            replica.ro_nodes.pop(node_id, None)
            replica.rw_sq_nodes.discard(node_id)
            replica.ro_sq_nodes.pop(node_id, None)
            for holding in replica.holdings():
                if holding.node == node_id:
                    holding.node, holding.reload = None, False
                if holding.loading_on == node_id:
                    holding.loading_on = None
        del self.nodes[node_id]
        self._leaked.pop(node_id, None)
        self._unpulled_until.pop(node_id, None)
        self._crashed.discard(node_id)
        self._stopping.discard(node_id)
        self._moves += 1
        self._node_changes += 1

    # ----------------------------------------------------------------- resource observer
    def recover(self) -> bool:
        """Catch up with the clock, then one resource-observer pass now (as on a config-change notification);
        True if anything changed. The next periodic pass is one check interval later."""
        before = self._moves
        self.advance()
        self._observer_pass()
        return self._moves != before

    def _observer_pass(self, nodes_changed: bool = False) -> None:
        """observers/resource_observer.go `checkAndRecoverResourceGroup` (2.5): `AssignPendingIncomingNode`, then
        `AutoRecoverResourceGroup` for every group (Go-map order) that fails `MeetRequirement`. The wait for
        the next pass restarts (`waitRGChangedOrTimeout`)."""
        before = self._node_changes
        self.rg_changed = False
        self.next_check_at = self._now + self.check_interval
        self.assign_pending_incoming()
        for rg in self._shuffled_groups():
            if rg.name in self.groups and not self.meets_requirement(rg):
                self._auto_recover(rg)
        self._settle(nodes_changed=nodes_changed or self._node_changes != before)

    def recover_until_stable(self, max_passes: int = 100) -> int:
        for passes in range(1, max_passes + 1):
            if not self.recover():
                return passes
        return max_passes

    def assign_pending_incoming(self) -> None:
        """`AssignPendingIncomingNode`."""
        for node_id in sorted(self._incoming):
            self._handle_node_up(node_id)

    def _assign_incoming(self, node: Node) -> None:
        """`assignIncomingNode` / `mustSelectAssignIncomingNodeTargetRG`: the group missing the most nodes that
        accepts it, else the one with the most room, else the default group. 2.6.8+: a RESOURCE_GROUP label
        names (and creates) its group."""
        static_rg = node.labels.get(STATIC_RG_LABEL) if self.milvus_version.role_aware_labels else None
        if static_rg:
            if static_rg not in self.groups:
                self.groups[static_rg] = ResourceGroup(static_rg, RGConfig(0, STATIC_RG_LIMIT))
            target = self.groups[static_rg]
        else:
            target = (
                self._argmax(self.missing, node.node_id)
                or self._argmax(self.room, node.node_id)
                or self.groups[DEFAULT_RG]
            )
        self._join(target, node.node_id)
        self._moves += 1

    def _argmax(self, quantity: Callable[[ResourceGroup], int], node_id: int) -> ResourceGroup | None:
        """`findMaxRGWithGivenFilter` (strict '>', so ties follow Go-map order)."""
        best: ResourceGroup | None = None
        best_value = 0
        for rg in self._shuffled_groups():
            value = quantity(rg)
            if value > best_value and self.accept(rg, node_id):
                best, best_value = rg, value
        return best

    def _auto_recover(self, rg: ResourceGroup) -> None:
        """`AutoRecoverResourceGroup`: missing nodes first, redundant ones only when none is missing."""
        if self.missing(rg) > 0:
            self._recover_missing(rg)
        else:
            self._recover_redundant(rg)

    def _select(self, source: ResourceGroup, target: ResourceGroup) -> int:
        """`ResourceGroup.SelectNodeForRG`: a dirty node the target accepts, else (above requests) any node."""
        dirty = self._dirty(source)
        self.rng.shuffle(dirty)
        for node_id in dirty:
            if self.accept(target, node_id):
                return node_id
        if self.node_num(source) > source.config.req:
            candidates = sorted(source.nodes)
            self.rng.shuffle(candidates)
            for node_id in candidates:
                if self.accept(target, node_id):
                    return node_id
        return -1

    def _move(self, node_id: int, source: ResourceGroup, target: ResourceGroup) -> None:
        self._leave(source, node_id)
        self._join(target, node_id)
        self._moves += 1

    def _recover_missing(self, target: ResourceGroup) -> None:
        """`recoverMissingNodeRG` / `selectNodeForMissingRecover`: priority redundant*1e6, else oversized
        (*1e5 when in transfer_from)."""
        while self.missing(target) > 0:
            best: tuple[ResourceGroup, int] | None = None
            best_priority = 0.0
            for source in self._shuffled_groups():
                if source is target or self.oversized(source) <= 0:
                    continue
                redundant = self.redundant(source)
                if redundant > 0:
                    priority = redundant * 1e6
                else:
                    weight = 1e5 if source.name in target.config.transfer_from else 1
                    priority = self.oversized(source) * weight
                if priority > best_priority:
                    node_id = self._select(source, target)
                    if node_id != -1:
                        best, best_priority = (source, node_id), priority
            if best is None:
                self.last_errors[target.name] = "nodes not enough"
                return
            self._move(best[1], best[0], target)
        self.last_errors.pop(target.name, None)

    def _recover_redundant(self, source: ResourceGroup) -> None:
        """`recoverRedundantNodeRG` / `selectNodeForRedundantRecover`: priority missing*1e6, else room
        (*1e5 when in transfer_to); finally the default group."""
        while self.redundant(source) > 0:
            best: tuple[ResourceGroup, int] | None = None
            best_priority = 0.0
            for target in self._shuffled_groups():
                if target is source or self.room(target) <= 0:
                    continue
                missing = self.missing(target)
                if missing > 0:
                    priority = missing * 1e6
                else:
                    weight = 1e5 if target.name in source.config.transfer_to else 1
                    priority = self.room(target) * weight
                if priority > best_priority:
                    node_id = self._select(source, target)
                    if node_id != -1:
                        best, best_priority = (target, node_id), priority
            if best is None and source.name != DEFAULT_RG:
                default = self.groups[DEFAULT_RG]
                node_id = self._select(source, default)
                if node_id != -1:
                    best = (default, node_id)
            if best is None:
                self.last_errors[source.name] = "all resource group reach limits"
                return
            self._move(best[1], source, best[0])
        self.last_errors.pop(source.name, None)

    # ----------------------------------------------------------------- time
    def advance(self, now: float | None = None) -> bool:
        """Fire every timed event due by `now` (default: the clock) at its own due time, in order: observer
        ticks, session expiries, finished balance steps and loads. True if anything changed."""
        target = self.clock() if now is None else now
        before = self._moves
        for _ in range(_MAX_EVENTS_PER_ADVANCE):
            due = self.next_timed_event()
            if due is None or due > target:
                break
            self._set_time(max(due, self._now))
            self._fire_due()
        else:  # pragma: no cover - a bug guard, not a behaviour
            raise RuntimeError("timed events do not converge")
        self._set_time(max(target, self._now))
        return self._moves != before

    def _set_time(self, now: float) -> None:
        self._account(now)
        self._now = now

    def next_timed_event(self) -> float | None:
        """Clock time of the next observer tick (resource or replica observer), session expiry, graceful-stop
        timeout, successful distribution pull, or finished load or balance step."""
        deadlines = [node.crashed_at + self.session_ttl for node in self._crashed_nodes()]
        deadlines += [node.stopping_since + self.graceful_stop_timeout for node in self._stopping_nodes()]
        deadlines += self._unpulled_until.values()
        deadlines += [h.ready_at for r in self.replicas.values() for h in r.holdings() if h.loading_on is not None]
        if self.check_interval > 0:
            deadlines.append(self.next_check_at)
        if self.check_node_in_replica_interval > 0:
            deadlines.append(self.next_replica_check_at)
        if self.balance_check_interval > 0 and self.auto_balance:
            deadlines.append(self.next_balance_check_at)
        return min(deadlines, default=None)

    def _fire_due(self) -> None:
        now = self._now
        before = self._node_changes
        for node in self._crashed_nodes():
            if node.crashed_at + self.session_ttl <= now:
                self._session_down(node.node_id)
        for node in self._stopping_nodes():
            if node.stopping_since + self.graceful_stop_timeout <= now:
                self._session_down(node.node_id)  # the process exits with what it still holds
        for node_id in [n for n, until in self._unpulled_until.items() if until <= now]:
            del self._unpulled_until[node_id]
        for replica in self.replicas.values():
            for item, holding in replica.items():
                if holding.loading_on is not None and holding.ready_at <= now:
                    self._loaded(replica, item, holding)
        if self.balance_check_interval > 0 and self.auto_balance and self.next_balance_check_at <= now:
            self._balance_checker_pass()
        replica_tick = self.check_node_in_replica_interval > 0 and self.next_replica_check_at <= now
        nodes_changed = replica_tick or self._node_changes != before
        if self.check_interval > 0 and self.next_check_at <= now:
            self._observer_pass(nodes_changed)  # periodic tick; it also settles replicas and data
        else:
            self._settle(nodes_changed)

    def _loaded(self, replica: Replica, item: str | int, holding: Holding) -> None:
        """The target has the item loaded: it serves it now. A balance move's source releases its copy; after a
        checker's reload nothing releases the copy a live source still holds (querycoord did not see it)."""
        source, target = holding.node, holding.loading_on
        assert target is not None
        if holding.reload and source is not None and source != target and self._process_alive(source):
            self._leaked.setdefault(source, set()).add((replica.replica_id, item))
        holding.node, holding.loading_on, holding.reload = target, None, False
        self._moves += 1

    def _process_alive(self, node_id: int) -> bool:
        node = self.nodes.get(node_id)
        return node is not None and node.alive

    # ----------------------------------------------------------------- serving accounting
    def _is_served(self, holding: Holding) -> bool:
        return holding.node is not None and self._process_alive(holding.node)

    def _unserved_counts(self) -> tuple[int, int]:
        segments = sum(1 for r in self.replicas.values() for h in r.segments.values() if not self._is_served(h))
        channels = sum(1 for r in self.replicas.values() for h in r.channels.values() if not self._is_served(h))
        return segments, channels

    def _account(self, now: float) -> None:
        elapsed = now - self._accounted_at
        if elapsed > 0:
            segments, channels = self._unserved_counts()
            self._unserved_segment_seconds += segments * elapsed
            self._unserved_channel_seconds += channels * elapsed
            self._accounted_at = now

    def unserved_segment_seconds(self) -> float:
        """Sum over time of (replica, segment) pairs no live process serves: the segments of a crashed node
        until another node of the replica has loaded them. A simulator measure, not a Milvus API."""
        self.advance()
        return self._unserved_segment_seconds

    def unserved_channel_seconds(self) -> float:
        """As `unserved_segment_seconds`, for channels (shard delegators)."""
        self.advance()
        return self._unserved_channel_seconds

    def unserved_segments(self) -> list[tuple[str, int, int]]:
        """(collection, replica id, segment id) not served right now."""
        self.advance()
        return sorted(
            (r.collection, r.replica_id, segment)
            for r in self.replicas.values()
            for segment, holding in r.segments.items()
            if not self._is_served(holding)
        )

    def segments_served_nowhere(self) -> list[tuple[str, int]]:
        """(collection, segment id) of loaded collections that no replica serves (as of the last `advance`): a
        search would miss them whichever replica it went to. A simulator measure, not a Milvus API."""
        served: dict[tuple[str, int], bool] = {}
        for replica in self.replicas.values():
            for segment, holding in replica.segments.items():
                key = (replica.collection, segment)
                served[key] = served.get(key, False) or self._is_served(holding)
        return sorted(key for key, ok in served.items() if not ok)

    # ----------------------------------------------------------------- collections and replicas
    def create_collection(self, name: str, segments: int | None = None, channels: int | None = None,
                          schema: bytes = b"", row_bytes: int | None = None) -> int:
        """A collection with `segments` sealed segments of SEGMENT_ROWS rows (default: the simulator's number;
        0 for one created over gRPC, which starts empty as in Milvus) and `channels` shards."""
        existing = self.collections.get(name)
        if existing is not None:
            return existing.collection_id
        collection_id = next(self._object_ids)
        num_channels = channels if channels else self.num_channels
        num_segments = self.num_segments if segments is None else segments
        row_bytes = row_bytes or DEFAULT_ROW_BYTES
        channel_names = tuple(f"by-dev-rootcoord-dml_{i}_{collection_id}v{i}" for i in range(num_channels))
        sealed = {next(self._object_ids): SealedSegment(SEGMENT_ROWS, SEGMENT_ROWS * row_bytes)
                  for _ in range(num_segments)}
        next(self._object_ids)  # the partition id
        self.collections[name] = Collection(collection_id, name, channel_names, sealed, schema=schema,
                                            row_bytes=row_bytes)
        return collection_id

    def insert(self, name: str, rows_per_channel: Mapping[str, int]) -> None:
        """proxy `Insert` -> the rows go to each channel's growing segment (datacoord `AssignSegmentID` allocates
        one per channel and partition); they become sealed segments only when flushed."""
        self.advance()
        collection = self.get_collection(name)
        for channel, rows in rows_per_channel.items():
            if rows <= 0:
                continue
            segment_id, held = collection.growing.get(channel) or (next(self._object_ids), 0)
            collection.growing[channel] = (segment_id, held + rows)

    def flush(self, name: str) -> list[int]:
        """proxy `Flush` -> datacoord seals every growing segment (one per channel here) and flushes it; returns
        the sealed ids. A loaded collection's new sealed segments are handed off to the query nodes at once
        (querycoord's target observer and segment checker: a few seconds in Milvus; growing data is served by
        the delegators meanwhile, so nothing is unserved either way)."""
        self.advance()
        collection = self.get_collection(name)
        sealed = []
        for segment_id, rows in collection.growing.values():
            collection.segments[segment_id] = SealedSegment(rows, rows * collection.row_bytes)
            sealed.append(segment_id)
        collection.growing.clear()
        if collection.loaded:
            for replica in self.replicas_of(name):
                for segment_id in sealed:
                    replica.segments[segment_id] = Holding(node=self._least_loaded(replica))
        self._settle(nodes_changed=False)
        return sorted(sealed)

    def drop_collection(self, name: str) -> None:
        if name in self.collections:
            self.release_collection(name)
            del self.collections[name]

    def get_collection(self, name: str) -> Collection:
        collection = self.collections.get(name)
        if collection is None:
            raise MilvusError(Code.COLLECTION_NOT_FOUND, f"collection not found[collection={name}]")
        return collection

    def replicas_of(self, collection: str) -> list[Replica]:
        return [r for r in self.replicas.values() if r.collection == collection]

    def load_collection(self, name: str, replica_number: int = 1, resource_groups: Iterable[str] = ()) -> None:
        """querycoord job_load.go / utils `AssignReplica` (2.5): 0, 1 or replica_number groups; with one group every
        replica goes there, with several each entry takes one (`replicaNumInRG[rgName] += 1`: a group named
        twice takes two); each group needs as many nodes as replicas. The first load of the data is instant here
        (pymilvus waits for it anyway)."""
        self.advance()
        collection = self.get_collection(name)
        replica_number = max(1, replica_number)
        groups = list(resource_groups) or [DEFAULT_RG]
        if len(groups) not in (1, replica_number):
            raise _invalid_msg("resource group num can only be 0, 1 or same as replica number")
        per_group = {groups[0]: replica_number} if len(groups) == 1 else dict(collections.Counter(groups))
        if collection.loaded:
            current = collections.Counter(r.resource_group for r in self.replicas_of(name))
            if current == per_group:
                return
            raise _invalid_msg(
                f"can't change the replica number for loaded collection: expected={current.total()}, "
                f"actual={replica_number}"
            )
        for group_name, count in per_group.items():
            available = self.node_num(self._group(group_name))
            if available < count:
                raise MilvusError(
                    Code.RG_NODE_NOT_ENOUGH,
                    f"resource group node not enough[rg={group_name}][currentNodeNum={available}]"
                    f"[expectedNodeNum={count}]",
                )
        new: list[Replica] = []
        for group_name, count in per_group.items():
            for _ in range(count):
                replica = Replica(next(self._object_ids), name, group_name)
                self.replicas[replica.replica_id] = replica
                new.append(replica)
        collection.loaded = True
        self._recover_replicas(name)  # utils.SpawnReplicasWithRG: "Active recover it" (RecoverReplicaOfCollection)
        for replica in new:
            self._place_initial(replica)
        self._settle(nodes_changed=False)

    def release_collection(self, name: str) -> None:
        self.advance()
        collection = self.get_collection(name)
        for replica in self.replicas_of(name):
            del self.replicas[replica.replica_id]
            for leaked in self._leaked.values():  # the release job releases the collection on every node
                leaked.difference_update({key for key in leaked if key[0] == replica.replica_id})
        collection.loaded = False
        self._settle(nodes_changed=False)

    def transfer_replica(self, source: str, target: str, collection_name: str, num_replica: int) -> None:
        """proxy `TransferReplica` (the name resolved to an id: 100 for an unknown collection), then querycoord
        services.go `TransferReplica` (2.5: both groups must exist, 300 wrapped "the source/target resource
        group[x] doesn't exist") and replica_manager.go `TransferReplica` / `getSrcReplicasAndCheckIfTransferable`
        (2.4, 2.5: same group, NumReplica <= 0, not loaded and too few replicas in the source are 1100). The
        target's node count is not checked (2.3's services.go did; 2.4+ does not): a replica moved into a group
        with too few nodes gets none and its old, read-only nodes keep serving it. The replica's group changes;
        "Node Change will be executed by replica_observer in background": at its next pass (a node change or
        its tick) the old nodes become read-only and balance moves the data onto the new group's nodes."""
        self.advance()
        collection = self.get_collection(collection_name)
        for role, name in (("source", source), ("target", target)):
            if name not in self.groups:
                raise MilvusError(Code.RG_NOT_FOUND,
                                  f"the {role} resource group[{name}] doesn't exist: {rg_not_found(name).message}")
        if source == target:
            raise _invalid_msg(
                "source resource group and target resource group should not be the same, "
                f"resource group: {source}"
            )
        if num_replica <= 0:
            raise _invalid("NumReplica > 0", f"invalid NumReplica {num_replica}")
        if not collection.loaded:
            raise _invalid("Collection not loaded", f"collectionID {collection.collection_id}")
        in_source = [r for r in self.replicas_of(collection_name) if r.resource_group == source]
        if len(in_source) < num_replica:
            raise _invalid(
                "NumReplica not greater than the number of replica in source resource group",
                f"only found [{len(in_source)}] replicas of collection [{collection.collection_id}] in source "
                f"resource group [{source}], but {num_replica} require",
            )
        for replica in in_source[:num_replica]:
            replica.resource_group = target
        self._settle(nodes_changed=False)

    def _replica_observer_pass(self) -> None:
        """observers/replica_observer.go `checkNodesInReplica` (2.5), run on every node change
        (`ListenNodeChanged`: a node assigned to, moved between or removed from groups) and every
        `queryCoord.checkNodeInReplicaInterval` (60 s): `RecoverReplicaOfCollection` for every collection,
        then every read-only node whose collection has no channel and no segment on it in querycoord's
        distribution leaves its replica (`ReplicaManager.RemoveNode`). Emptied read-only nodes so stay in
        their replica (and in describe's outgoing/incoming counts) until the next node change or tick. 2.6:
        the same for the replicas' streaming query nodes (`RemoveSQNode`; UNVERIFIED in the observer)."""
        self.next_replica_check_at = self._now + self.check_node_in_replica_interval
        self._recover_replicas()
        in_view = self._collections_in_view()
        for replica in self.replicas.values():
            for read_only in (replica.ro_nodes, replica.ro_sq_nodes):
                for node_id in [n for n in read_only if replica.collection not in in_view.get(n, ())]:
                    del read_only[node_id]

    def _collections_in_view(self) -> dict[int, set[str]]:
        """node -> collections with a channel or segment on it in querycoord's distribution."""
        result: dict[int, set[str]] = {}
        for replica in self.replicas.values():
            for holding in replica.holdings():
                if self._in_view(holding):
                    assert holding.node is not None
                    result.setdefault(holding.node, set()).add(replica.collection)
        for node_id, leaked in self._leaked.items():
            if self._visible(node_id):
                for replica_id, _ in leaked:
                    owner = self.replicas.get(replica_id)
                    if owner is not None:
                        result.setdefault(node_id, set()).add(owner.collection)
        return result

    def _recover_replicas(self, collection: str | None = None) -> None:
        """meta/replica_manager.go `RecoverNodesInCollection` with replica_manager_helper.go (2.5), for every
        collection (or one). Per group of the collection's replicas: the group's nodes (`GetNodes`:
        filter-matching) not used by any replica of the collection, read-only ones and those of replicas in
        other groups included, are incoming; RW nodes outside the group become read-only; each replica
        expects an equal share of the group's nodes not used elsewhere (the remainder to the replicas with
        the most RW + recoverable nodes, then the highest id); a replica above its share turns the surplus
        read-only, one below takes back its read-only nodes that are in the group, then incoming ones. So a
        node still read-only in one replica of a collection joins no other replica of it until emptied
        and released. 2.6: then `RecoverSQNodesInCollection` (`_recover_streaming_query_nodes`)."""
        by_collection: dict[str, dict[str, list[Replica]]] = {}
        for replica in sorted(self.replicas.values(), key=lambda r: r.replica_id):
            if collection is None or replica.collection == collection:
                by_collection.setdefault(replica.collection, {}).setdefault(replica.resource_group, []).append(replica)
        for groups in by_collection.values():
            plans: list[tuple[Replica, list[int], list[int]]] = []
            for group_name, replicas in groups.items():
                in_group = self._replica_nodes_of(group_name)
                incoming = set(in_group)
                used_here = len(in_group)
                for other_group, others in groups.items():
                    for other in others:
                        for node_id in other.rw_nodes | other.ro_nodes.keys():
                            if node_id in incoming:
                                incoming.discard(node_id)
                                if other_group != group_name:
                                    used_here -= 1  # busy with a replica elsewhere: not shared here
                plans += self._plan_assignment(replicas, in_group, incoming, used_here, streaming=False)
            self._apply_assignment(plans, streaming=False)
            if self.milvus_version.streaming:
                self._recover_streaming_query_nodes([r for replicas in groups.values() for r in replicas])

    def _recover_streaming_query_nodes(self, replicas: list[Replica]) -> None:
        """2.6 replica_manager.go `RecoverSQNodesInCollection` with `newReplicaSQNAssignmentHelper`: the live
        streaming query nodes (not stopping) are shared among the collection's replicas as query nodes are
        (a node in one replica per collection; the share counts all the pool's nodes). Before 2.6.16 one
        pool for all replicas; from 2.6.16 (`buildSQNodeAssignmentHelpers`) a pool per resource group (the
        streaming node's RESOURCE_GROUP label; none: the default group, UNVERIFIED) when those cover every
        replica's group; otherwise one pool for all, or with `streaming.strictResourceGroupIsolation.enabled`
        only the covered replicas get streaming nodes."""
        pool = {n for n, node in self.nodes.items() if node.embedded and node.state is not NodeState.STOPPING}
        helpers: list[tuple[list[Replica], set[int]]] = [(replicas, pool)]
        if self.milvus_version.streaming_rg_isolation:
            by_group: dict[str, set[int]] = {}
            for node_id in pool:
                by_group.setdefault(self.nodes[node_id].labels.get(STATIC_RG_LABEL) or DEFAULT_RG, set()).add(node_id)
            covered = [r for r in replicas if r.resource_group in by_group]
            if len(covered) == len(replicas) or self.streaming_strict_rg_isolation:
                per_group: dict[str, list[Replica]] = {}
                for replica in covered:
                    per_group.setdefault(replica.resource_group, []).append(replica)
                helpers = [(members, by_group[name]) for name, members in per_group.items()]
        plans: list[tuple[Replica, list[int], list[int]]] = []
        for members, nodes in helpers:
            incoming = nodes - set().union(*(r.rw_sq_nodes | r.ro_sq_nodes.keys() for r in members))
            plans += self._plan_assignment(members, nodes, incoming, len(nodes), streaming=True)
        self._apply_assignment(plans, streaming=True)

    def _plan_assignment(
        self, replicas: list[Replica], in_pool: set[int], incoming: set[int], used: int, streaming: bool
    ) -> list[tuple[Replica, list[int], list[int]]]:
        """replica_manager_helper.go `GetNewRONodes` / `GetRecoverNodesAndIncomingNodeCount` /
        `AllocateIncomingNodes` for the replicas sharing one pool: (replica, to read-only, to read-write)."""
        expected = self._expected_node_counts(replicas, in_pool, used, streaming)
        available = sorted(incoming)
        plans = []
        for replica in replicas:
            read_write, read_only = self._slots(replica, streaming)
            keep = sorted(read_write & in_pool)
            to_read_only = sorted(read_write - in_pool)
            surplus = len(keep) - expected[replica.replica_id]
            if surplus > 0:
                to_read_only += self.rng.sample(keep, surplus)
            to_read_write: list[int] = []
            missing = expected[replica.replica_id] - len(keep)
            if missing > 0:
                to_read_write = sorted(n for n in read_only if n in in_pool)[:missing]
                missing -= len(to_read_write)
                to_read_write += available[:missing]
                del available[:missing]
            plans.append((replica, to_read_only, to_read_write))
        return plans

    def _apply_assignment(self, plans: list[tuple[Replica, list[int], list[int]]], streaming: bool) -> None:
        for replica, to_read_only, to_read_write in plans:
            read_write, read_only = self._slots(replica, streaming)
            for node_id in to_read_only:
                read_write.discard(node_id)
                read_only.setdefault(node_id, self._now)
            for node_id in to_read_write:
                read_only.pop(node_id, None)
                read_write.add(node_id)
                self._moves += 1

    @staticmethod
    def _slots(replica: Replica, streaming: bool) -> tuple[set[int], dict[int, float]]:
        """The replica's (RW, read-only) query nodes, or its streaming query nodes."""
        return (replica.rw_sq_nodes, replica.ro_sq_nodes) if streaming else (replica.rw_nodes, replica.ro_nodes)

    def _replica_nodes_of(self, group_name: str) -> set[int]:
        rg = self.groups.get(group_name)
        return (self._membership(rg).accepted & self.nodes.keys()) if rg is not None else set()

    @classmethod
    def _expected_node_counts(
        cls, replicas: list[Replica], in_pool: set[int], used: int, streaming: bool
    ) -> dict[int, int]:
        """replica_manager_helper.go `updateExpectedNodeCountForReplicas`."""
        share, remainder = divmod(used, len(replicas))

        def available_and_recoverable(replica: Replica) -> tuple[int, int]:
            read_write, read_only = cls._slots(replica, streaming)
            return len(read_write & in_pool) + len(read_only.keys() & in_pool), replica.replica_id

        ranked = sorted(replicas, key=available_and_recoverable, reverse=True)
        return {r.replica_id: share + (1 if index < remainder else 0) for index, r in enumerate(ranked)}

    def _serving_nodes(self, replica: Replica, channel: bool) -> set[int]:
        """Where the replica's channels (2.6: its RW streaming query nodes) or segments (RW query nodes) go."""
        return replica.rw_sq_nodes if channel and self.milvus_version.streaming else replica.rw_nodes

    def _targets(self, replica: Replica, channel: bool = False) -> list[int]:
        """RW nodes a task can load onto: known, process alive (a task on a dead node fails), not stopping,
        not suspended (up to 2.4.9 `nodeMgr.Suspend` blocks loads on the node), reachable (a node whose
        distribution pulls fail is taken as unreachable for tasks too: an assumption)."""
        return sorted(n for n in self._serving_nodes(replica, channel) if self._is_target(replica, n, channel))

    def _is_target(self, replica: Replica, node_id: int, channel: bool = False) -> bool:
        """`node_id in self._targets(replica, channel)` without building the list."""
        node = self.nodes.get(node_id) if node_id in self._serving_nodes(replica, channel) else None
        return node is not None and node.state is NodeState.HEALTHY and node_id not in self._unpulled_until

    def _least_loaded(
        self, replica: Replica, exclude: int | None = None, targets: list[int] | None = None, channel: bool = False
    ) -> int | None:
        """The first of `_targets` (passed in by a caller that has them) holding or loading the fewest items."""
        candidates = [n for n in (self._targets(replica, channel) if targets is None else targets) if n != exclude]
        if not candidates:
            return None
        loads: dict[int, int] = {}  # one pass over the holdings, not one per candidate
        for holding in replica.holdings():
            for node_id in {holding.node, holding.loading_on}:
                if node_id is not None:
                    loads[node_id] = loads.get(node_id, 0) + 1
        return min(candidates, key=lambda n: loads.get(n, 0))

    def _place_initial(self, replica: Replica) -> None:
        collection = self.collections[replica.collection]
        for channel in collection.channels:
            replica.channels[channel] = Holding(node=self._least_loaded(replica, channel=True))
        for segment in collection.segment_ids:
            replica.segments[segment] = Holding(node=self._least_loaded(replica))

    def _process_holds(self, node_id: int) -> bool:
        """The query node's own view (querynode `Stop` waits on its segment manager): anything loaded."""
        if self._leaked.get(node_id):
            return True
        return any(h.node == node_id for replica in self.replicas.values() for h in replica.holdings())

    def _settle(self, nodes_changed: bool) -> None:
        """After a change: the replica observer if a node joined or left a group (`nodeChangedNotifier`), the
        checkers start what is due, stopping nodes that hold nothing exit (their session going is a node
        change again)."""
        if nodes_changed:
            self._replica_observer_pass()
        self._schedule_tasks()
        if self._exit_drained_stopping_nodes():
            self._replica_observer_pass()
            self._schedule_tasks()

    def _schedule_tasks(self) -> None:
        """What the checkers start, from querycoord's distribution. checkers/segment_checker.go `checkReplica` /
        `getSealedSegmentDiff` and channel_checker.go (2.5): an item of a replica on none of its nodes in the
        distribution (`WithReplica`) is loaded onto the least loaded RW node (`load_time`); a copy a node
        holds twice for its own replica (its pull came back) is released. checkers/balance_checker.go
        `replicasToBalance` + the score-based balancer `BalanceReplica`: an RO node's channels first, then
        its segments, move one at a time (`balance_delay` each) to RW nodes, served by the source until the
        copy is loaded. That stopping balance runs whatever balance/suspend says: the switch
        (`checkerActivation`) only gates the normal rebalance between RW nodes, which is not modelled."""
        now = self._now
        self._release_duplicates()
        for replica in self.replicas.values():
            # RW nodes and node states do not change in this pass: the targets are built once per replica
            targets = {channel: self._targets(replica, channel) for channel in (True, False)}
            for item, holding in replica.items():
                channel = isinstance(item, str)
                if holding.loading_on is not None and not self._is_target(replica, holding.loading_on, channel):
                    holding.loading_on, holding.reload = None, False  # its task failed: the target left or died
            for item, holding in replica.items():
                if self._in_view(holding) or holding.loading_on is not None:
                    continue
                if holding.node not in self.nodes:
                    holding.node = None
                channel = isinstance(item, str)
                target = self._least_loaded(replica, targets=targets[channel], channel=channel)
                if target is not None:
                    holding.loading_on, holding.ready_at, holding.reload = target, now + self.load_time, True
            for node_id in sorted(replica.ro_nodes.keys() | replica.ro_sq_nodes.keys()):
                if not self._visible(node_id):
                    continue
                on_node = [(item, h) for item, h in replica.items() if h.node == node_id]
                if not on_node or any(h.loading_on is not None for _, h in on_node):
                    continue
                item, holding = on_node[0]  # channels first
                channel = isinstance(item, str)
                target = self._least_loaded(replica, targets=targets[channel], channel=channel)
                if target is not None:
                    holding.loading_on, holding.ready_at = target, now + self.balance_delay

    def _release_duplicates(self) -> None:
        """segment_checker.go `findRepeatedSealedSegments` / channel_checker.go `findRepeatedChannels`: a copy
        lost track of on a node of the same replica shows up twice in its distribution once that node's pull
        succeeds; the checker releases the one its delegator does not use (the lost copy)."""
        for node_id, leaked in list(self._leaked.items()):
            if not self._visible(node_id):
                continue
            for replica_id, item in list(leaked):
                replica = self.replicas.get(replica_id)
                if replica is None or node_id in replica.rw_nodes or node_id in replica.ro_nodes:
                    leaked.discard((replica_id, item))
            if not leaked:
                del self._leaked[node_id]

    def _visible(self, node_id: int) -> bool:
        """querycoord has the node's distribution (a crashed node's stays until its session expires)."""
        return node_id in self.nodes and node_id not in self._unpulled_until

    def _in_view(self, holding: Holding) -> bool:
        """In querycoord's distribution."""
        return holding.node is not None and self._visible(holding.node)

    def _exit_drained_stopping_nodes(self) -> bool:
        """A stopping query node exits once stopping balance moved everything off it; its session goes. True if
        one did."""
        exited = False
        for node in self._stopping_nodes():
            if not self._process_holds(node.node_id):
                self._session_down(node.node_id)
                exited = True
        return exited

    def _stopping_nodes(self) -> list[Node]:
        return [node for node in self._indexed_nodes(self._stopping) if node.state is NodeState.STOPPING]

    def _indexed_nodes(self, index: set[int]) -> list[Node]:
        """The live entries of a node index in `self.nodes` order (ids ascend: `add_node` is the only writer);
        the ids of nodes whose session is gone are dropped from the index."""
        nodes = []
        for node_id in sorted(index):
            node = self.nodes.get(node_id)
            if node is None:
                index.discard(node_id)
            else:
                nodes.append(node)
        return nodes

    def _crashed_nodes(self) -> list[Node]:
        return [node for node in self._indexed_nodes(self._crashed) if not node.alive]

    def move_data(
        self,
        replica: Replica,
        source: int,
        target: int | None = None,
        segment_id: int | None = None,
        channel_name: str | None = None,
        move_segments: bool = True,
        move_channels: bool = True,
    ) -> None:
        """A test's shortcut (no Milvus API): move (all or one) items `source` holds in `replica` to `target` or
        the least loaded RW node, at once (from querycoord's distribution: nothing of a node it has not pulled).
        The management routes transfer/segment and transfer/channel go through `transfer_data`."""
        self.advance()
        for holdings, wanted, enabled, channel in (
            (replica.channels, channel_name, move_channels, True),
            (replica.segments, segment_id, move_segments, False),
        ):
            if not enabled or not self._visible(source):
                continue
            for item, holding in holdings.items():
                if holding.node != source or (wanted is not None and item != wanted):
                    continue
                destination = target if target is not None else self._least_loaded(
                    replica, exclude=source, channel=channel)
                if destination is not None:
                    holding.node, holding.loading_on, holding.reload = destination, None, False
                    self._moves += 1
        self._settle(nodes_changed=False)

    # ----------------------------------------------------------------- balance
    def _balance_checker_pass(self) -> None:
        """checkers/balance_checker.go `Check` / `replicasToBalance` (2.5), each `balance_check_interval`: no normal
        balance while a replica has read-only nodes (the stopping balance, `_schedule_tasks`, comes first) or the
        checker is deactivated (`balance/suspend`); else the loaded collections by row count then name, one per
        round (`balancedCollectionInCurrentRound`), until one gives a plan or the round ends."""
        self.next_balance_check_at = self._now + self.balance_check_interval
        loaded = [c for c in self.collections.values() if c.loaded]
        if self.balance_suspended or not loaded:
            return
        if any(r.ro_nodes or r.ro_sq_nodes for r in self.replicas.values()):
            return
        order = [c.name for c in sorted(loaded, key=lambda c: (c.sealed_rows, c.collection_id))]
        while True:
            name = next((n for n in order if n not in self._balanced_in_round), None)
            if name is None:
                self._balanced_in_round.clear()
                return
            self._balanced_in_round.add(name)
            if len(self._balanced_in_round) >= len(order):
                self._balanced_in_round.clear()
            moves = [m for replica in self.replicas_of(name) for m in self.balancer.balance_replica(replica)]
            if moves:
                self._start_moves(moves, self.balance_delay)
                return
            if not self._balanced_in_round:
                return

    def _start_moves(self, moves: list[Move], delay: float, copy: bool = False) -> None:
        """Balance tasks (task.NewSegmentTask / NewChannelTask with a grow action on the target, then a reduce on
        the source unless in copy mode): the target serves the item once loaded, the source until then. A copy
        left on the source is released by the checker as a repeated copy (`_release_duplicates`)."""
        for move in moves:
            holding = self._holding(move)
            if holding is None or holding.node != move.source or holding.loading_on is not None:
                continue  # the scheduler refuses a task for an item that has one (or moved meanwhile)
            holding.loading_on, holding.ready_at, holding.reload = move.target, self._now + delay, copy

    def _holding(self, move: Move) -> Holding | None:
        replica = self.replicas.get(move.replica)
        if replica is None:
            return None
        return replica.channels.get(move.item) if isinstance(move.item, str) else replica.segments.get(move.item)

    def move_state(self, move: Move) -> bool | None:
        """True once the move's target serves the item, False if its task failed (the target went away or another
        node holds it), None while it runs."""
        holding = self._holding(move)
        if holding is None:
            return False
        if holding.loading_on == move.target:
            return None
        return holding.node == move.target

    def cancel_moves(self, moves: Iterable[Move]) -> None:
        """The tasks of `moves` that still run are cancelled (their context ended): nothing moves."""
        for move in moves:
            holding = self._holding(move)
            if holding is not None and holding.loading_on == move.target:
                holding.loading_on, holding.reload = None, False

    def load_balance(self, collection_name: str, source: int, targets: Iterable[int],
                     segment_ids: Iterable[int]) -> list[Move]:
        """proxy `LoadBalance` (the collection by name: 100 when unknown) -> querycoord services.go `LoadBalance`
        (2.5): the collection fully loaded (103), the source in one of its replicas (901) and not stopping, every
        target in that replica (901) and not stopping (target none: the replica's RW nodes); each segment id must
        be on the source in querycoord's distribution (600; none: all of them); handlers.go `balanceSegments`
        (sync, not copy mode) assigns each to the lowest-scored target (manual: no benefit check) as a move.
        Returns the moves started; the RPC waits for them (up to `queryCoord.segmentTaskTimeout`)."""
        self.advance()
        collection = self.get_collection(collection_name)
        if not collection.loaded:
            raise MilvusError(Code.COLLECTION_NOT_FULLY_LOADED,
                              f"collection not fully loaded[collection={collection.collection_id}]")
        replica = next((r for r in self.replicas_of(collection_name)
                        if source in r.rw_nodes or source in r.ro_nodes), None)
        if replica is None:
            raise node_not_found(source, f"source node not found in any replica of collection "
                                         f"{collection.collection_id}")
        self._check_not_stopping(source, "source")
        wanted = list(targets)
        for target in wanted:
            if target not in replica.rw_nodes and target not in replica.ro_nodes:
                raise node_not_found(target, "destination node not found in the same replica")
        destinations = wanted or sorted(replica.rw_nodes)
        for target in destinations:
            self._check_not_stopping(target, "destination")
        on_source = {s: h for s, h in replica.segments.items() if h.node == source and self._in_view(h)}
        chosen = list(segment_ids) or sorted(on_source)
        for segment in chosen:
            if segment not in on_source:
                raise MilvusError(Code.SEGMENT_NOT_FOUND,
                                  f"segment not found in source node: segment not found[segment={segment}]")
        moves = []
        for segment in chosen:  # each started before the next is assigned: its task counts in the scores
            chosen_target = self.balancer.least_scored(replica, [n for n in destinations if n != source])
            if chosen_target is not None:
                moves.append(Move(replica.replica_id, segment, source, chosen_target))
                self._start_moves(moves[-1:], self.balance_delay)
        self._settle(nodes_changed=False)
        return moves

    def _check_not_stopping(self, node_id: int, role: str) -> None:
        """services.go `isStoppingNode` inside LoadBalance: a plain error (65535), wrapped."""
        node = self.nodes.get(node_id)
        if node is not None and node.state is NodeState.STOPPING:
            raise MilvusError(Code.UNEXPECTED, f"can't balance, because the {role} node[{node_id}] is invalid: "
                                               f"failed to balance due to the source/destination node[{node_id}] "
                                               "is stopping")

    def transfer_data(self, source: int, target: int | None, item: str | int | None, channels: bool,
                      copy_mode: bool) -> None:
        """querycoord ops_services.go `TransferSegment` / `TransferChannel` (2.5; the management routes
        transfer/segment and transfer/channel): for every replica the source is in, its segments (channels) of
        that replica's collection in querycoord's distribution (`item`: only that one, else 600 "segment not found
        in source node" / "channel not found in source node"), to `target` (not checked to be in the replica) or
        the replica's RW nodes (`ToAllNodes`), the lowest-scored first; asynchronous (`balanceSegments` with
        sync false), a copy when `copy_mode`."""
        self.advance()
        for replica in self.replicas.values():
            members = (replica.rw_nodes | replica.ro_nodes.keys() | replica.rw_sq_nodes | replica.ro_sq_nodes.keys())
            if source not in members:
                continue
            holdings: Mapping[str | int, Holding] = replica.channels if channels else replica.segments  # type: ignore[assignment]
            on_source = [k for k, h in holdings.items() if h.node == source and self._in_view(h)]
            if item is not None:
                if item not in on_source:
                    kind = "channel" if channels else "segment"
                    raise MilvusError(501 if channels else Code.SEGMENT_NOT_FOUND,
                                      f"{kind} not found in source node: {kind} not found[{kind}={item}]")
                on_source = [item]
            wanted = [target] if target is not None else sorted(self._serving_nodes(replica, channels))
            destinations = [n for n in wanted if n != source]
            for key in on_source:  # each started before the next is assigned: its task counts in the scores
                chosen = self.balancer.least_scored(replica, destinations, channel=channels)
                if chosen is not None:
                    self._start_moves([Move(replica.replica_id, key, source, chosen)], self.balance_delay,
                                      copy=copy_mode)
        self._settle(nodes_changed=False)

    def _items_on(self, node_id: int) -> tuple[list[str], list[int]]:
        """(channels, segments) the node's process holds: its replicas' items and the copies lost track of."""
        channels = [c for r in self.replicas.values() for c, h in r.channels.items() if h.node == node_id]
        segments = [s for r in self.replicas.values() for s, h in r.segments.items() if h.node == node_id]
        for _, item in self._leaked.get(node_id, ()):
            if isinstance(item, str):
                channels.append(item)
            else:
                segments.append(item)
        return sorted(set(channels)), sorted(set(segments))

    def distribution(self, node_id: int) -> tuple[list[str], list[int]]:
        """services.go `GetQueryNodeDistribution`: (channel names, sealed segment ids) on `node_id` in
        querycoord's distribution (901 for a node the node manager does not know); empty for a node whose
        distribution it has not pulled since it started, whatever the node holds."""
        self.advance()
        if node_id not in self.nodes:
            raise node_not_found(node_id, "failed to get query node distribution")
        if not self._visible(node_id):
            return [], []
        return self._items_on(node_id)

    def held_by(self, node_id: int) -> tuple[list[str], list[int]]:
        """(channels, segments) the node's process really holds: the truth, whatever querycoord's distribution
        says (nothing for a dead or unknown process). A simulator measure, not a Milvus API."""
        self.advance()
        node = self.nodes.get(node_id)
        if node is None or not node.alive:
            return [], []
        return self._items_on(node_id)

    def query_segment_info(self, collection_name: str) -> list[SegmentInfo]:
        """proxy `GetQuerySegmentInfo` -> querycoord `GetSegmentInfo` / `getCollectionSegmentInfo` (2.5): the
        collection's sealed segments in the distribution, merged over replicas (`nodeIds` = every node that
        has it, a copy querycoord lost track of included). A segment on no node is left out; one some replicas
        lack has fewer nodeIds."""
        self.advance()
        collection = self.get_collection(collection_name)
        if not collection.loaded:
            raise MilvusError(Code.COLLECTION_NOT_LOADED, f"collection not loaded[collection={collection_name}]")
        replicas = {r.replica_id for r in self.replicas_of(collection_name)}
        lost: dict[int, list[int]] = {}
        for node_id, leaked in sorted(self._leaked.items()):
            if self._visible(node_id):
                for replica_id, item in leaked:
                    if replica_id in replicas and isinstance(item, int):
                        lost.setdefault(item, []).append(node_id)
        infos = []
        for segment in collection.segment_ids:
            nodes = [
                h.node for r in self.replicas_of(collection_name)
                if (h := r.segments.get(segment)) is not None and h.node is not None and self._in_view(h)
            ]
            nodes += [n for n in lost.get(segment, ()) if n not in nodes]
            if nodes:
                data = collection.segments[segment]
                infos.append(SegmentInfo(segment, collection.collection_id, collection.partition_id, tuple(nodes),
                                         data.rows, data.mem_size))
        return infos
