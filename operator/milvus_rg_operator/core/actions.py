"""What a pass may write, as data: each action carries its reason, and its `summary` is the INFO log line
that reports it (the reconcile layer executes them in order, one log line and one metric each)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from milvus_rg_operator.core import labels
from milvus_rg_operator.core.types import GroupConfig
from milvus_rg_operator.core.workloads import DELETION_COST, WorkloadRef

KUBERNETES, MILVUS = "kubernetes", "milvus"


@dataclass(frozen=True)
class AddFinalizer:
    group: str  # ResourceGroup name
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "add_finalizer"

    @property
    def summary(self) -> str:
        return f"add finalizer to ResourceGroup {self.group}"


@dataclass(frozen=True)
class ReleaseGroup:
    group: str  # ResourceGroup name, deleting: its finalizer goes
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "remove_finalizer"

    @property
    def summary(self) -> str:
        return f"remove finalizer from ResourceGroup {self.group}"


@dataclass(frozen=True)
class CreateGroup:
    name: str
    config: GroupConfig
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "create_resource_group"

    @property
    def summary(self) -> str:
        return f"create_resource_group {self.name} {describe_config(self.config)}"


@dataclass(frozen=True)
class UpdateGroups:
    configs: Mapping[str, GroupConfig]
    changes: str  # e.g. "rg1 requests 2->3; rg2 transferFrom []->[__pending_nodes]"
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "update_resource_groups"

    @property
    def summary(self) -> str:
        return f"update_resource_groups {self.changes}"


@dataclass(frozen=True)
class DropGroup:
    name: str
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "drop_resource_group"

    @property
    def summary(self) -> str:
        return f"drop_resource_group {self.name}"


@dataclass(frozen=True)
class TransferReplica:
    source_group: str  # Milvus groups
    target_group: str
    collection: str
    replicas: int
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "transfer_replica"

    @property
    def summary(self) -> str:
        return f"transfer_replica {self.collection} x{self.replicas} {self.source_group} -> {self.target_group}"


@dataclass(frozen=True)
class LoadCollection:
    collection: str
    replicas: int
    groups: tuple[str, ...]  # as load_collection takes them: one group, or one entry per replica
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "load_collection"

    @property
    def summary(self) -> str:
        return f"load_collection {self.collection} replicas={self.replicas} resource_groups={list(self.groups)}"


@dataclass(frozen=True)
class LoadBalance:
    collection: str
    source_node: int
    target_node: int
    segment: int
    group: str  # Milvus group whose balance asked for it
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "load_balance"

    @property
    def summary(self) -> str:
        return (f"load_balance {self.collection} segment {self.segment} node {self.source_node} -> "
                f"{self.target_node} ({self.group})")


@dataclass(frozen=True)
class CreateStatefulSet:
    name: str
    replicas: int
    reason: str
    group: str | None = None  # the ResourceGroup that owns it (its spec.template); None: the pool
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "create_statefulset"

    @property
    def summary(self) -> str:
        return f"create StatefulSet {self.name} with {self.replicas} replicas"


@dataclass(frozen=True)
class RecordDrains:
    scale_down: Mapping[str, Any]  # status.scaleDown as written
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "record_drains"

    @property
    def summary(self) -> str:
        draining = ", ".join(f"{d['pod']} (node {d['nodeId']}, {d['phase']})" for d in self.scale_down["draining"])
        return f"record drains in status.scaleDown: {draining or 'none'}"


@dataclass(frozen=True)
class SuspendNode:
    node_id: int
    pod: str
    group: str
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "suspend_node"

    @property
    def summary(self) -> str:
        return f"suspend node {self.node_id} ({self.pod}, {self.group})"


@dataclass(frozen=True)
class ResumeNode:
    node_id: int
    pod: str
    reason: str
    target: ClassVar[str] = MILVUS
    verb: ClassVar[str] = "resume_node"

    @property
    def summary(self) -> str:
        return f"resume node {self.node_id} ({self.pod})"


@dataclass(frozen=True)
class LabelPod:
    pod: str
    patch: labels.PodPatch
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "label_pod"

    @property
    def summary(self) -> str:
        changed = [f"{k.split('/')[-1]}={v if v is not None else '-'}" for k, v in self.patch.labels.items()]
        cost = self.patch.annotations.get(DELETION_COST)
        if cost is not None:
            changed.append(f"pod-deletion-cost={cost}")
        return f"label pod {self.pod} {', '.join(changed) or 'annotations'}"


@dataclass(frozen=True)
class ScaleWorkload:
    workload: WorkloadRef
    current: int
    replicas: int
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "scale_workload"

    @property
    def summary(self) -> str:
        return f"scale {self.workload} {self.current}->{self.replicas}"


@dataclass(frozen=True)
class WriteStatus:
    kind: str  # QueryNodePool | ResourceGroup
    name: str
    status: Mapping[str, Any]  # only the keys that changed
    reason: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "patch_status"

    @property
    def summary(self) -> str:
        return f"status of {self.kind} {self.name}: {', '.join(sorted(self.status))}"


@dataclass(frozen=True)
class PostEvent:
    kind: str
    name: str
    type: str  # Normal | Warning
    event_reason: str
    message: str
    target: ClassVar[str] = KUBERNETES
    verb: ClassVar[str] = "event"

    @property
    def reason(self) -> str:
        return self.event_reason

    @property
    def summary(self) -> str:
        return f"event {self.type} {self.event_reason} on {self.kind} {self.name}: {self.message}"


Action = (AddFinalizer | ReleaseGroup | CreateGroup | UpdateGroups | DropGroup | CreateStatefulSet | RecordDrains
          | SuspendNode | ResumeNode | LabelPod | ScaleWorkload | WriteStatus | PostEvent | TransferReplica
          | LoadCollection | LoadBalance)
MILVUS_ACTIONS = (CreateGroup, UpdateGroups, DropGroup, SuspendNode, ResumeNode, TransferReplica, LoadCollection,
                  LoadBalance)



def describe_config(config: GroupConfig) -> str:
    parts = [f"requests={config.requests}", f"limits={config.limits}"]
    if config.transfer_from:
        parts.append(f"transferFrom={list(config.transfer_from)}")
    if config.transfer_to:
        parts.append(f"transferTo={list(config.transfer_to)}")
    if config.node_labels:
        parts.append(f"nodeLabels={dict(config.node_labels)}")
    return " ".join(parts)
