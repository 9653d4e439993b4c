"""Kubernetes objects and pods -> the core's plain data. Specs are parsed through the pydantic models,
so defaults hold even for manifests that never went through the API server (the `plan` command)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from milvus_rg_operator.api.models import ANNOTATION_BALANCE, FINALIZER, QueryNodePoolSpec, ResourceGroupSpec
from milvus_rg_operator.api.rules import RuleViolation
from milvus_rg_operator.core.types import (
    DEPLOYMENT,
    MILVUS,
    STATEFULSET,
    BalancePolicy,
    DeclaredGroup,
    DeclaredPool,
    DeclaredReplicas,
    DrainRecord,
    ObjectState,
    PodState,
    Removal,
    WorkloadRef,
    WorkloadState,
)

MILVUS_LABEL_ENV_PREFIX = "MILVUS_SERVER_LABEL_"


class SpecError(ValueError):
    """A spec the models refuse (only possible for objects that bypassed the API server's schema)."""

    def __init__(self, kind: str, name: str, error: ValidationError) -> None:
        first = error.errors()[0]
        broken = (first.get("ctx") or {}).get("error")
        if isinstance(broken, RuleViolation):  # a cross-field rule names the field to fix itself
            field = broken.field
        else:
            field = ".".join(["spec", *(str(part) for part in first["loc"])])
        super().__init__(f"{kind} {name}: {field}: {first['msg']}")
        self.kind, self.name, self.field, self.reason = kind, name, field, str(first["msg"])


SpecT = TypeVar("SpecT", bound=BaseModel)


def _spec(model: type[SpecT], kind: str, obj: Mapping[str, Any]) -> SpecT:
    """The object's spec as its typed model, defaults applied."""
    try:
        return model.model_validate(obj.get("spec", {}))
    except ValidationError as exc:
        raise SpecError(kind, obj["metadata"]["name"], exc) from exc


def pool_spec(obj: Mapping[str, Any]) -> QueryNodePoolSpec:
    return _spec(QueryNodePoolSpec, "QueryNodePool", obj)


def group_spec(obj: Mapping[str, Any]) -> ResourceGroupSpec:
    return _spec(ResourceGroupSpec, "ResourceGroup", obj)


def declared_pool(obj: Mapping[str, Any]) -> DeclaredPool:
    spec = pool_spec(obj)
    kind, name, field = spec.workload()
    return DeclaredPool(
        name=obj["metadata"]["name"],
        pending_group=spec.pending_group,
        spare_nodes=spec.spare_nodes,
        min_nodes=spec.min_nodes,
        max_nodes=spec.max_nodes,
        workload=WorkloadRef(kind, name),
        workload_field=field,
        max_unavailable=spec.scale_down.max_unavailable,
        drain_timeout_seconds=float(spec.scale_down.drain_timeout_seconds),
        force_after_timeout=spec.scale_down.force_after_timeout,
        pod_ready_timeout_seconds=float(spec.pod_ready_timeout_seconds),
        balance=BalancePolicy(spec.balance.max_memory_spread_percent, float(spec.balance.idle_node_seconds),
                              spec.balance.scale_out_waits_for_data, spec.balance.max_moves_per_pass),
    )


def _names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def declared_group(obj: Mapping[str, Any]) -> DeclaredGroup:
    spec = group_spec(obj)
    meta = obj["metadata"]
    return DeclaredGroup(
        cr_name=meta["name"],
        pool=spec.pool,
        group_name=spec.group_name,
        requests=spec.requests.node_num,
        limits=None if spec.limits is None else spec.limits.node_num,
        transfer_from=_names(spec.transfer_from),
        transfer_to=_names(spec.transfer_to),
        node_labels=tuple(sorted((spec.node_labels or {}).items())),
        deleting=bool(meta.get("deletionTimestamp")),
        previous_group_name=(obj.get("status") or {}).get("groupName"),
        created_at=parse_time(meta.get("creationTimestamp")),
        workload=group_workload(meta["name"], spec),
        owns_workload=spec.template is not None,
        collections=tuple(DeclaredReplicas(c.name, c.replicas, c.load_if_released) for c in spec.collections or ()),
        balance_token=(meta.get("annotations") or {}).get(ANNOTATION_BALANCE) or None,
    )


def group_workload(cr_name: str, spec: ResourceGroupSpec) -> WorkloadRef | None:
    """A group's own workload: the one it names, or the StatefulSet it owns from its template."""
    if spec.scale_target_ref is not None:
        return WorkloadRef(spec.scale_target_ref.kind, spec.scale_target_ref.name)
    if spec.template is not None:
        return WorkloadRef(STATEFULSET, owned_group_statefulset(cr_name))
    return None


def owned_group_statefulset(cr_name: str) -> str:
    return f"{cr_name}-querynode"


def parse_time(value: str | None) -> float:
    if not value:
        return 0.0
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def drain_records(pool_obj: Mapping[str, Any]) -> tuple[DrainRecord, ...]:
    draining = pool_obj.get("status", {}).get("scaleDown", {}).get("draining", [])
    return tuple(
        DrainRecord(pod=d["pod"], node_id=int(d["nodeId"]), group=d.get("group", ""),
                    started_at=parse_time(d.get("startedAt")), phase=d.get("phase", "Suspending"),
                    relocate=bool(d.get("relocate")))
        for d in draining
    )


def removal_records(pool_obj: Mapping[str, Any]) -> tuple[Removal, ...]:
    removing = (pool_obj.get("status", {}).get("scaleDown") or {}).get("removing") or []
    return tuple(Removal(int(r["replicas"]), tuple(r["pods"]), str(r.get("workload", ""))) for r in removing
                 if isinstance(r, Mapping))


def milvus_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """The node labels Milvus will read from this pod's env (role-free keys behave alike in all versions)."""
    labels: dict[str, str] = {}
    for container in pod.get("spec", {}).get("containers", []):
        for env in container.get("env") or []:
            name = env.get("name", "")
            if name.startswith(MILVUS_LABEL_ENV_PREFIX) and "value" in env:
                labels[name[len(MILVUS_LABEL_ENV_PREFIX):]] = str(env["value"])
    return labels


def pod_state(pod: Mapping[str, Any]) -> PodState:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    owner = controller_of(pod)
    ordinal = int(meta["name"].rsplit("-", 1)[1]) if owner is not None and owner.kind == STATEFULSET else None
    return PodState(
        name=meta["name"],
        ordinal=ordinal,
        ready=ready.get("status") == "True",
        terminating=bool(meta.get("deletionTimestamp")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        created_at=parse_time(meta.get("creationTimestamp")),
        milvus_labels=milvus_labels(pod),
        ip=str(status.get("podIP") or ""),
        phase=str(status.get("phase") or "Pending"),
        scheduled=bool(spec.get("nodeName")),
        ready_since=parse_time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else 0.0,
        restarts=sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []),
        node_name=str(spec.get("nodeName") or ""),
    )


def controller_of(pod: Mapping[str, Any]) -> WorkloadRef | None:
    """The pod's workload: its StatefulSet, or its ReplicaSet's Deployment (a ReplicaSet of a Deployment is
    named `<deployment>-<pod-template-hash>`, the hash being on the pod as a label)."""
    meta = pod["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == STATEFULSET and meta["name"].rsplit("-", 1)[-1].isdigit():
            return WorkloadRef(STATEFULSET, str(ref.get("name", "")))
        if ref.get("kind") == "ReplicaSet":
            template_hash = (meta.get("labels") or {}).get("pod-template-hash", "")
            name = str(ref.get("name", ""))
            if template_hash and name.endswith(f"-{template_hash}"):
                return WorkloadRef(DEPLOYMENT, name[:-len(template_hash) - 1])
    return None


def workload_keys(pod: Mapping[str, Any]) -> list[WorkloadRef]:
    """The workloads a pod belongs to, as a pool may name them: its controller, and for a Deployment of
    milvus-operator's (labelled managed-by milvus-operator), its `Milvus` too."""
    owner = controller_of(pod)
    if owner is None:
        return []
    labels = pod["metadata"].get("labels") or {}
    if (owner.kind == DEPLOYMENT and labels.get("app.kubernetes.io/managed-by") == "milvus-operator"
            and labels.get("app.kubernetes.io/instance")):
        return [owner, WorkloadRef(MILVUS, labels["app.kubernetes.io/instance"])]
    return [owner]


QUERY_NODE_COMPONENT_LABELS = ("app.kubernetes.io/component", "component")  # milvus-operator's, the Helm chart's


def looks_like_query_node(pod: Mapping[str, Any]) -> bool:
    """A Milvus query-node pod by the marks the Helm chart and milvus-operator give it: a component label
    `querynode`, or a container running `milvus run querynode`."""
    labels = pod["metadata"].get("labels") or {}
    if any(labels.get(key) == "querynode" for key in QUERY_NODE_COMPONENT_LABELS):
        return True
    return any("querynode" in (c.get("command") or []) + (c.get("args") or [])
               for c in (pod.get("spec") or {}).get("containers") or [])


MILVUS_ROLLING_LABEL = "milvus.io/querynode-rolling-id"  # milvus-operator, while its blue/green rollout runs


def workload_state(ref: WorkloadRef, obj: Mapping[str, Any], pods: Sequence[PodState]) -> WorkloadState:
    """The workload as the planner sees it. A Deployment is rolling out while some of its pods are not of the
    newest template (status.updatedReplicas below status.replicas); a Milvus while milvus-operator says so."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if ref.kind == MILVUS:  # components.go `GetReplicas`: 1 when unset; -1: an HPA owns them
        query_node = (spec.get("components") or {}).get("queryNode") or {}
        replicas = query_node.get("replicas")
        rolling = (obj["metadata"].get("labels") or {}).get(MILVUS_ROLLING_LABEL)
        return WorkloadState(ref, 1 if replicas is None else int(replicas),
                             sum(1 for p in pods if p.ready and not p.terminating),
                             f"rolling id {rolling}" if rolling else None)
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    rolling = None
    if ref.kind == DEPLOYMENT and int(status.get("updatedReplicas") or 0) < int(status.get("replicas") or 0):
        rolling = f"{status.get('updatedReplicas') or 0} of {status.get('replicas')} pods updated"
    return WorkloadState(ref, replicas, int(status.get("readyReplicas") or 0), rolling)


def object_state(obj: Mapping[str, Any]) -> ObjectState:
    meta = obj["metadata"]
    return ObjectState(name=meta["name"], generation=int(meta.get("generation") or 0),
                       status=dict(obj.get("status") or {}), finalized=FINALIZER in (meta.get("finalizers") or []),
                       deleting=bool(meta.get("deletionTimestamp")))
