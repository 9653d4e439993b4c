"""Pure state machine of the Milvus query-coordinator resource manager (no I/O, no asyncio).

Follows milvus-rg-semantics.md section 1: quantities, the recovery loop with its source/target
priorities, validation with the merr codes and messages, node departure and node labels.
Go-map iteration order and unordered-set choices are modelled with a seeded `random.Random`.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

DEFAULT_RG = "__default_resource_group"
DEFAULT_RG_CAPACITY = 1_000_000
STATIC_RG_LIMIT = 1_000_000
MAX_RG_NUM = 1024
MAX_NAME_LENGTH = 255
LABEL_ENV_PREFIX = "MILVUS_SERVER_LABEL_"
STATIC_RG_LABEL = "RESOURCE_GROUP"
ROLE_TOKENS = frozenset({"querynode", "qn", "datanode", "dn", "streamingnode", "sn", "mixcoord", "coord", "proxy"})
QUERY_NODE_ROLES = frozenset({"querynode", "qn"})
NEW_LABEL_RULES_SINCE = (2, 6, 8)


class Code(IntEnum):
    """merr codes (pkg/util/merr/errors.go) used by the simulator."""

    COLLECTION_NOT_FOUND = 100
    COLLECTION_NOT_LOADED = 101
    RG_NOT_FOUND = 300
    RG_ALREADY_EXIST = 301
    RG_NUM_LIMIT = 302
    RG_ILLEGAL_CONFIG = 303
    RG_NODE_NOT_ENOUGH = 304
    NODE_NOT_FOUND = 901
    PARAMETER_INVALID = 1100
    PARAMETER_MISSING = 1101


class MilvusError(Exception):
    """An error a real Milvus server reports as `Status(code, reason)`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NodeState(Enum):
    HEALTHY = "Healthy"
    STOPPING = "Stopping"
    SUSPENDED = "Suspend"
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


@dataclass
class ResourceGroup:
    name: str
    config: RGConfig
    nodes: set[int] = field(default_factory=set)


@dataclass
class Collection:
    collection_id: int
    name: str
    channels: tuple[str, ...]
    segment_ids: tuple[int, ...]
    loaded: bool = False


@dataclass
class Replica:
    replica_id: int
    collection: str
    resource_group: str
    rw_nodes: set[int] = field(default_factory=set)
    ro_nodes: dict[int, float] = field(default_factory=dict)  # node -> time it became read-only
    channels: dict[str, int] = field(default_factory=dict)  # channel -> node holding it
    segments: dict[int, int] = field(default_factory=dict)  # segment -> node holding it


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


def parse_version(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def node_labels_from_env(env: Mapping[str, str], version: str = "2.5") -> dict[str, str]:
    """Labels a query node reads from `MILVUS_SERVER_LABEL_*` (rules differ before/after 2.6.8)."""
    role_aware = parse_version(version) >= NEW_LABEL_RULES_SINCE
    generic: dict[str, str] = {}
    role_specific: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(LABEL_ENV_PREFIX):
            continue
        label = key[len(LABEL_ENV_PREFIX) :]
        role, _, rest = label.partition("_")
        if role_aware and role.lower() in ROLE_TOKENS and rest:
            if role.lower() in QUERY_NODE_ROLES:
                role_specific[rest] = value
            continue
        if label:
            generic[label] = value
    return generic | role_specific  # a role-specific label wins over the generic one


def validate_rg_name(name: str) -> None:
    """proxy `ValidateResourceGroupName`."""
    if not name:
        raise MilvusError(Code.PARAMETER_MISSING, "resource group name couldn't be empty")
    invalid = f"Invalid resource group name {name}."
    if len(name) > MAX_NAME_LENGTH:
        raise MilvusError(
            Code.PARAMETER_INVALID,
            f"{invalid} the length of a resource group name must be less than {MAX_NAME_LENGTH} characters",
        )
    if not (name[0] == "_" or (name[0].isascii() and name[0].isalpha())):
        raise MilvusError(
            Code.PARAMETER_INVALID,
            f"{invalid} the first character of a resource group name must be an underscore or letter",
        )
    if not re.fullmatch(r"[A-Za-z0-9_]*", name[1:]):
        raise MilvusError(
            Code.PARAMETER_INVALID,
            f"{invalid} resource group name can only contain numbers, letters and underscores",
        )


def _illegal(name: str, message: str) -> MilvusError:
    return MilvusError(Code.RG_ILLEGAL_CONFIG, f"{message}: resource group illegal config[rg={name}]")


def rg_not_found(name: str) -> MilvusError:
    return MilvusError(Code.RG_NOT_FOUND, f"resource group not found[rg={name}]")


class ResourceManager:
    """querycoordv2 ResourceManager + ResourceObserver + the replica/balance side it drives."""

    def __init__(
        self,
        seed: int | None = None,
        version: str = "2.5",
        session_ttl: float = 30.0,
        balance_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        num_channels: int = 2,
        num_segments: int = 4,
    ) -> None:
        self.rng = random.Random(seed)
        self.version = version
        self.session_ttl = session_ttl
        self.balance_delay = balance_delay
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
        self._incoming: set[int] = set()
        self._node_ids = itertools.count(1)
        self._object_ids = itertools.count(1000)
        self._moves = 0

    # ----------------------------------------------------------------- quantities
    @property
    def role_aware_labels(self) -> bool:
        return parse_version(self.version) >= NEW_LABEL_RULES_SINCE

    def accept(self, rg: ResourceGroup, node_id: int) -> bool:
        if rg.name == DEFAULT_RG:
            return True
        node = self.nodes.get(node_id)
        if node is None:
            return False
        static_rg = node.labels.get(STATIC_RG_LABEL) if self.role_aware_labels else None
        if static_rg and static_rg != rg.name:
            return False  # assumption: a statically labelled node is pinned to its RG
        return all(node.labels.get(key) == value for key, value in rg.config.node_labels)

    def _dirty(self, rg: ResourceGroup) -> list[int]:
        return [n for n in rg.nodes if not self.accept(rg, n)]

    def node_num(self, rg: ResourceGroup) -> int:
        return sum(1 for n in rg.nodes if self.accept(rg, n))

    def missing(self, rg: ResourceGroup) -> int:
        return max(0, rg.config.req - self.node_num(rg))

    def oversized(self, rg: ResourceGroup) -> int:
        return max(0, self.node_num(rg) - rg.config.req) + len(self._dirty(rg))

    def room(self, rg: ResourceGroup) -> int:
        return max(0, rg.config.lim - self.node_num(rg))

    def redundant(self, rg: ResourceGroup) -> int:
        return max(0, self.node_num(rg) - rg.config.lim) + len(self._dirty(rg))

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

    # ----------------------------------------------------------------- config API
    def _validate_config(self, name: str, config: RGConfig, known: Iterable[str]) -> None:
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
        validate_rg_name(name)
        config = config or RGConfig(0, 0)
        existing = self.groups.get(name)
        if existing is not None:
            if existing.config == config:
                return
            raise MilvusError(
                Code.RG_ALREADY_EXIST,
                f"resource group already exist, but create with different config[rg={name}]",
            )
        if len(self.groups) >= MAX_RG_NUM:
            raise MilvusError(Code.RG_NUM_LIMIT, f"resource group num reach limit[limit={MAX_RG_NUM}]")
        self._validate_config(name, config, self.groups)
        self.groups[name] = ResourceGroup(name, config)

    def update_resource_groups(self, configs: Mapping[str, RGConfig]) -> None:
        for name in configs:
            validate_rg_name(name)
            self._group(name)
        for name, config in configs.items():
            self._validate_config(name, config, self.groups)
        for name, config in configs.items():  # one atomic catalog write, full replace
            self.groups[name].config = config

    def drop_resource_group(self, name: str) -> None:
        if any(replica.resource_group == name for replica in self.replicas.values()):
            raise MilvusError(
                Code.PARAMETER_INVALID,
                f"some replicas still loaded in resource group[{name}], release it first",
            )
        if name == DEFAULT_RG:
            raise MilvusError(Code.PARAMETER_INVALID, "default resource group is not deletable")
        rg = self.groups.get(name)
        if rg is None:
            return
        if rg.config.lim != 0:
            raise MilvusError(Code.PARAMETER_INVALID, "resource group's limits node num is not 0")
        for other in self.groups.values():
            for field_name, targets in (
                ("TransferFrom", other.config.transfer_from),
                ("TransferTo", other.config.transfer_to),
            ):
                if name in targets:
                    raise MilvusError(
                        Code.PARAMETER_INVALID,
                        f"resource group {name} is used by {other.name}'s `{field_name}`, "
                        "remove that configuration first",
                    )
        if self.role_aware_labels:
            for node in self.nodes.values():
                if node.labels.get(STATIC_RG_LABEL) == name and node.state is not NodeState.OFFLINE:
                    raise MilvusError(
                        Code.PARAMETER_INVALID, f"node {node.node_id} is still in the resource group"
                    )
        self._recover_redundant(rg)
        for node_id in list(rg.nodes):  # whatever recovery could not place goes to the default RG
            self._move(node_id, rg, self.groups[DEFAULT_RG])
        del self.groups[name]

    def transfer_node(self, source: str, target: str, num_node: int) -> None:
        """Deprecated TransferNode: rewrites requests/limits like Milvus 2.4+."""
        if source == target:
            raise MilvusError(
                Code.PARAMETER_INVALID,
                "source resource group and target resource group should not be the same, "
                f"resource group: {source}",
            )
        if num_node <= 0:
            raise MilvusError(Code.PARAMETER_INVALID, f"invalid parameter[expected=NumNode > 0][actual={num_node}]")
        source_rg, target_rg = self._group(source), self._group(target)
        if len(source_rg.nodes) < num_node:
            raise MilvusError(Code.RG_NODE_NOT_ENOUGH, f"resource group node not enough[rg={source}]")
        src, dst = source_rg.config, target_rg.config
        src_limits = src.lim if source == DEFAULT_RG else max(0, src.lim - num_node)
        dst_requests = dst.req + num_node
        transfer_from = dst.transfer_from if source in dst.transfer_from else (*dst.transfer_from, source)
        self.update_resource_groups(
            {
                source: RGConfig(max(0, src.req - num_node), src_limits, src.transfer_from, src.transfer_to,
                                 src.node_labels),
                target: RGConfig(dst_requests, max(dst.lim, dst_requests), transfer_from, dst.transfer_to,
                                 dst.node_labels),
            }
        )

    def list_resource_groups(self) -> list[str]:
        return list(self.groups)

    def describe_resource_group(self, name: str) -> ResourceGroupDescription:
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
        members = tuple(self.nodes[n] for n in sorted(rg.nodes))
        return ResourceGroupDescription(
            name=name,
            capacity=DEFAULT_RG_CAPACITY if name == DEFAULT_RG else rg.config.req,
            num_available_node=len(members),
            num_loaded_replica=loaded,
            num_outgoing_node=outgoing,
            num_incoming_node=incoming,
            config=rg.config,
            nodes=members,
        )

    # ----------------------------------------------------------------- node lifecycle
    def add_node(self, hostname: str, address: str, env: Mapping[str, str] | None = None) -> int:
        node_id = next(self._node_ids)
        self.nodes[node_id] = Node(node_id, hostname, address, node_labels_from_env(env or {}, self.version))
        self._incoming.add(node_id)
        return node_id

    def _node(self, node_id: int) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            raise MilvusError(Code.NODE_NOT_FOUND, f"node not found[node={node_id}]")
        return node

    def _leave_group(self, node_id: int) -> None:
        """handleNodeDown / handleNodeStopping: the node leaves its RG at once."""
        self._incoming.discard(node_id)
        for rg in self.groups.values():
            if node_id in rg.nodes:
                rg.nodes.discard(node_id)
                self._moves += 1

    def stop_node(self, node_id: int) -> None:
        node = self._node(node_id)
        node.state = NodeState.STOPPING
        self._leave_group(node_id)
        self._sync_replicas()
        self._forget_drained_stopping_nodes()

    def crash_node(self, node_id: int) -> None:
        node = self._node(node_id)
        node.state = NodeState.OFFLINE
        node.crashed_at = self.clock()
        self._incoming.discard(node_id)

    def suspend_node(self, node_id: int) -> None:
        node = self._node(node_id)
        if node.state in (NodeState.STOPPING, NodeState.OFFLINE):
            raise MilvusError(Code.PARAMETER_INVALID, f"node {node_id} is not healthy")
        node.state = NodeState.SUSPENDED
        self._leave_group(node_id)
        self._sync_replicas()

    def resume_node(self, node_id: int) -> None:
        node = self._node(node_id)
        if node.state is NodeState.SUSPENDED:
            node.state = NodeState.HEALTHY
        if node.state is NodeState.HEALTHY and self.group_of(node_id) is None:
            self._incoming.add(node_id)

    def node_gone(self, node_id: int) -> bool:
        return node_id not in self.nodes

    def _expire_sessions(self) -> None:
        now = self.clock()
        for node in list(self.nodes.values()):
            if node.state is NodeState.OFFLINE and now - node.crashed_at >= self.session_ttl:
                self._leave_group(node.node_id)
                for replica in self.replicas.values():
                    # a dead node's data is reloaded elsewhere, no balance wait
                    replica.rw_nodes.discard(node.node_id)
                    replica.ro_nodes.pop(node.node_id, None)
                del self.nodes[node.node_id]

    def _forget_drained_stopping_nodes(self) -> None:
        for node in list(self.nodes.values()):
            if node.state is NodeState.STOPPING and not self._holds_anything(node.node_id):
                del self.nodes[node.node_id]

    # ----------------------------------------------------------------- recovery loop
    def recover(self) -> bool:
        """One ResourceObserver pass plus the replica and balance observers; True if anything changed."""
        before = self._moves
        self._expire_sessions()
        self.assign_pending_incoming()
        for rg in self._shuffled_groups():
            if rg.name in self.groups and not self.meets_requirement(rg):
                self._auto_recover(rg)
        self._sync_replicas()
        self._balance()
        self._forget_drained_stopping_nodes()
        return self._moves != before

    def next_timed_event(self) -> float | None:
        """Clock time of the next session expiry or balance of a read-only node, if any."""
        deadlines = [
            node.crashed_at + self.session_ttl for node in self.nodes.values() if node.state is NodeState.OFFLINE
        ]
        if not self.balance_suspended:
            deadlines += [
                since + self.balance_delay
                for replica in self.replicas.values()
                if replica.rw_nodes
                for since in replica.ro_nodes.values()
            ]
        return min(deadlines, default=None)

    def recover_until_stable(self, max_passes: int = 100) -> int:
        for passes in range(1, max_passes + 1):
            if not self.recover():
                return passes
        return max_passes

    def assign_pending_incoming(self) -> None:
        for node_id in sorted(self._incoming):
            node = self.nodes.get(node_id)
            if node is None or node.state is not NodeState.HEALTHY:
                continue
            self._incoming.discard(node_id)
            if self.group_of(node_id) is None:
                self._assign_incoming(node)

    def _assign_incoming(self, node: Node) -> None:
        static_rg = node.labels.get(STATIC_RG_LABEL) if self.role_aware_labels else None
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
        target.nodes.add(node.node_id)
        self._moves += 1

    def _argmax(self, quantity: Callable[[ResourceGroup], int], node_id: int) -> ResourceGroup | None:
        best: ResourceGroup | None = None
        best_value = 0
        for rg in self._shuffled_groups():
            value = quantity(rg)
            if value > best_value and self.accept(rg, node_id):
                best, best_value = rg, value
        return best

    def _auto_recover(self, rg: ResourceGroup) -> None:
        if self.missing(rg) > 0:
            self._recover_missing(rg)
        else:
            self._recover_redundant(rg)

    def _select(self, source: ResourceGroup, target: ResourceGroup) -> int:
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
        source.nodes.discard(node_id)
        target.nodes.add(node_id)
        self._moves += 1

    def _recover_missing(self, target: ResourceGroup) -> None:
        while self.missing(target) > 0:
            best: tuple[ResourceGroup, int] | None = None
            best_priority = -1.0
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
                self.last_errors[target.name] = f"nodes not enough[rg={target.name}]"
                return
            self._move(best[1], best[0], target)
        self.last_errors.pop(target.name, None)

    def _recover_redundant(self, source: ResourceGroup) -> None:
        while self.redundant(source) > 0:
            best: tuple[ResourceGroup, int] | None = None
            best_priority = -1.0
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

    # ----------------------------------------------------------------- collections and replicas
    def create_collection(self, name: str) -> int:
        existing = self.collections.get(name)
        if existing is not None:
            return existing.collection_id
        collection_id = next(self._object_ids)
        channels = tuple(f"by-dev-rootcoord-dml_{i}_{collection_id}v{i}" for i in range(self.num_channels))
        segments = tuple(next(self._object_ids) for _ in range(self.num_segments))
        self.collections[name] = Collection(collection_id, name, channels, segments)
        return collection_id

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
        collection = self.get_collection(name)
        replica_number = max(1, replica_number)
        groups = list(resource_groups) or [DEFAULT_RG]
        if len(groups) not in (1, replica_number):
            raise MilvusError(
                Code.PARAMETER_INVALID,
                "resource group num can only be 0, 1 or same as replica number",
            )
        if collection.loaded:
            current = self.replicas_of(name)
            if len(current) == replica_number and {r.resource_group for r in current} == set(groups):
                return
            raise MilvusError(
                Code.PARAMETER_INVALID,
                f"can't change the replica number for loaded collection: expected={len(current)}, "
                f"actual={replica_number}",
            )
        per_group = {groups[0]: replica_number} if len(groups) == 1 else dict.fromkeys(groups, 1)
        for group_name, count in per_group.items():
            available = self.node_num(self._group(group_name))
            if available < count:
                raise MilvusError(
                    Code.RG_NODE_NOT_ENOUGH,
                    f"resource group node not enough[rg={group_name}][available={available}][expected={count}]",
                )
        for group_name, count in per_group.items():
            for _ in range(count):
                replica_id = next(self._object_ids)
                self.replicas[replica_id] = Replica(replica_id, name, group_name)
        collection.loaded = True
        self._sync_replicas()
        self._balance()

    def release_collection(self, name: str) -> None:
        collection = self.get_collection(name)
        for replica in self.replicas_of(name):
            del self.replicas[replica.replica_id]
        collection.loaded = False
        self._forget_drained_stopping_nodes()

    def transfer_replica(self, source: str, target: str, collection_name: str, num_replica: int) -> None:
        self._group(source)
        self._group(target)
        collection = self.get_collection(collection_name)
        if not collection.loaded:
            raise MilvusError(Code.COLLECTION_NOT_LOADED, f"collection not loaded[collection={collection_name}]")
        if num_replica <= 0:
            raise MilvusError(
                Code.PARAMETER_INVALID, f"invalid parameter[expected=NumReplica > 0][actual={num_replica}]"
            )
        if source == target:
            raise MilvusError(
                Code.PARAMETER_INVALID,
                "source resource group and target resource group should not be the same, "
                f"resource group: {source}",
            )
        in_source = [r for r in self.replicas_of(collection_name) if r.resource_group == source]
        if len(in_source) < num_replica:
            raise MilvusError(
                Code.PARAMETER_INVALID,
                f"only found [{len(in_source)}] replicas of [{collection_name}] in source resource group"
                f"[{source}], but want to transfer [{num_replica}]",
            )
        in_target = sum(1 for r in self.replicas_of(collection_name) if r.resource_group == target)
        available = self.node_num(self.groups[target])
        if available < in_target + num_replica:
            raise MilvusError(
                Code.RG_NODE_NOT_ENOUGH,
                f"resource group node not enough[rg={target}][available={available}]"
                f"[expected={in_target + num_replica}]",
            )
        for replica in in_source[:num_replica]:
            replica.resource_group = target
        self._sync_replicas()
        self._balance()

    def _make_read_only(self, replica: Replica, node_id: int) -> None:
        replica.rw_nodes.discard(node_id)
        replica.ro_nodes.setdefault(node_id, self.clock())

    def _sync_replicas(self) -> None:
        """replica_observer: RG membership -> replica RW/RO nodes, spread evenly (diff <= 1)."""
        by_key: dict[tuple[str, str], list[Replica]] = {}
        for replica in self.replicas.values():
            by_key.setdefault((replica.collection, replica.resource_group), []).append(replica)
        for (_, group_name), replicas in by_key.items():
            members = self.groups[group_name].nodes if group_name in self.groups else set()
            for replica in replicas:
                for node_id in list(replica.rw_nodes):
                    if node_id not in members:
                        self._make_read_only(replica, node_id)
            used = set().union(*(r.rw_nodes for r in replicas))
            for node_id in sorted(members - used):
                smallest = min(replicas, key=lambda r: (len(r.rw_nodes), r.replica_id))
                smallest.rw_nodes.add(node_id)
                smallest.ro_nodes.pop(node_id, None)
                self._moves += 1
            while True:
                largest = max(replicas, key=lambda r: (len(r.rw_nodes), -r.replica_id))
                smallest = min(replicas, key=lambda r: (len(r.rw_nodes), r.replica_id))
                if len(largest.rw_nodes) - len(smallest.rw_nodes) <= 1:
                    break
                node_id = self.rng.choice(sorted(largest.rw_nodes))
                self._make_read_only(largest, node_id)
                smallest.rw_nodes.add(node_id)
                smallest.ro_nodes.pop(node_id, None)
                self._moves += 1
        for replica in self.replicas.values():
            self._place_unassigned(replica)
            for node_id in [n for n in replica.ro_nodes if not self._holds(replica, n)]:
                del replica.ro_nodes[node_id]

    def _place_unassigned(self, replica: Replica) -> None:
        """Channels/segments with no live holder (new load, dead node) go to the least loaded RW node."""
        collection = self.collections[replica.collection]
        holders = replica.rw_nodes | set(replica.ro_nodes)
        for channel in collection.channels:
            if replica.channels.get(channel) not in holders:
                replica.channels.pop(channel, None)
                target = self._least_loaded(replica)
                if target is not None:
                    replica.channels[channel] = target
        for segment in collection.segment_ids:
            if replica.segments.get(segment) not in holders:
                replica.segments.pop(segment, None)
                target = self._least_loaded(replica)
                if target is not None:
                    replica.segments[segment] = target

    def _load_of(self, replica: Replica, node_id: int) -> int:
        return sum(1 for n in replica.channels.values() if n == node_id) + sum(
            1 for n in replica.segments.values() if n == node_id
        )

    def _least_loaded(self, replica: Replica, exclude: int | None = None) -> int | None:
        candidates = sorted(n for n in replica.rw_nodes if n != exclude)
        if not candidates:
            return None
        return min(candidates, key=lambda n: self._load_of(replica, n))

    def _holds(self, replica: Replica, node_id: int) -> bool:
        return node_id in replica.channels.values() or node_id in replica.segments.values()

    def _holds_anything(self, node_id: int) -> bool:
        return any(self._holds(replica, node_id) for replica in self.replicas.values())

    def _balance(self) -> None:
        """Balance checker: after `balance_delay`, data leaves read-only nodes for RW nodes of the replica."""
        if self.balance_suspended:
            return
        now = self.clock()
        for replica in self.replicas.values():
            for node_id, since in list(replica.ro_nodes.items()):
                if now - since >= self.balance_delay and replica.rw_nodes:
                    self.move_data(replica, node_id)
                    del replica.ro_nodes[node_id]

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
        """Move (all or one) channels/segments held by `source` in `replica` to `target` or the least loaded."""
        for holdings, wanted, enabled in (
            (replica.channels, channel_name, move_channels),
            (replica.segments, segment_id, move_segments),
        ):
            if not enabled:
                continue
            for item, holder in list(holdings.items()):
                if holder != source or (wanted is not None and item != wanted):
                    continue
                destination = target if target is not None else self._least_loaded(replica, exclude=source)
                if destination is not None:
                    holdings[item] = destination  # type: ignore[index]
                    self._moves += 1

    def distribution(self, node_id: int) -> tuple[list[str], list[int]]:
        """(channel names, sealed segment ids) held by `node_id`."""
        channels = sorted(c for r in self.replicas.values() for c, n in r.channels.items() if n == node_id)
        segments = sorted(s for r in self.replicas.values() for s, n in r.segments.items() if n == node_id)
        return channels, segments
