"""Kubernetes objects and pods -> the core's plain data. Specs are parsed through the pydantic models,
so defaults hold even for manifests that never went through the API server (the `plan` command)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from milvus_rg_operator.api.models import FINALIZER, QueryNodePoolSpec, ResourceGroupSpec
from milvus_rg_operator.api.rules import RuleViolation
from milvus_rg_operator.core.types import (
    DeclaredGroup,
    DeclaredPool,
    DrainRecord,
    ObjectState,
    PodState,
    StatefulSetState,
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
    return DeclaredPool(
        name=obj["metadata"]["name"],
        pending_group=spec.pending_group,
        spare_nodes=spec.spare_nodes,
        min_nodes=spec.min_nodes,
        max_nodes=spec.max_nodes,
        stateful_set_name=spec.stateful_set_name,
        max_unavailable=spec.scale_down.max_unavailable,
        drain_timeout_seconds=float(spec.scale_down.drain_timeout_seconds),
        force_after_timeout=spec.scale_down.force_after_timeout,
        pod_ready_timeout_seconds=float(spec.pod_ready_timeout_seconds),
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
    )


def parse_time(value: str | None) -> float:
    if not value:
        return 0.0
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def drain_records(pool_obj: Mapping[str, Any]) -> tuple[DrainRecord, ...]:
    draining = pool_obj.get("status", {}).get("scaleDown", {}).get("draining", [])
    return tuple(
        DrainRecord(pod=d["pod"], node_id=int(d["nodeId"]), group=d.get("group", ""),
                    started_at=parse_time(d.get("startedAt")), phase=d.get("phase", "Suspending"))
        for d in draining
    )


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
    meta = pod["metadata"]
    conditions = pod.get("status", {}).get("conditions") or []
    return PodState(
        name=meta["name"],
        ordinal=int(meta["name"].rsplit("-", 1)[1]),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        terminating=bool(meta.get("deletionTimestamp")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        created_at=parse_time(meta.get("creationTimestamp")),
        milvus_labels=milvus_labels(pod),
        ip=str(pod.get("status", {}).get("podIP") or ""),
    )


def statefulset_state(sts: Mapping[str, Any]) -> StatefulSetState:
    status = sts.get("status") or {}
    return StatefulSetState(
        name=sts["metadata"]["name"],
        replicas=int(sts.get("spec", {}).get("replicas", 1) or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
    )


def object_state(obj: Mapping[str, Any]) -> ObjectState:
    meta = obj["metadata"]
    return ObjectState(name=meta["name"], generation=int(meta.get("generation") or 0),
                       status=dict(obj.get("status") or {}), finalized=FINALIZER in (meta.get("finalizers") or []),
                       deleting=bool(meta.get("deletionTimestamp")))


def owned_by(pod: Mapping[str, Any], sts_name: str) -> bool:
    return any(ref.get("kind") == "StatefulSet" and ref.get("name") == sts_name
               for ref in pod["metadata"].get("ownerReferences") or [])
