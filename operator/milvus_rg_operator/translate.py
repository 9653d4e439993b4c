"""Kubernetes objects and pods -> the core's plain data. Specs are parsed through the pydantic models,
so defaults hold even for manifests that never went through the API server (the `plan` command)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from milvus_rg_operator.api.models import QueryNodePoolSpec, ResourceGroupSpec
from milvus_rg_operator.core.types import DeclaredGroup, DeclaredPool, DrainRecord, PodState, StatefulSetState

MILVUS_LABEL_ENV_PREFIX = "MILVUS_SERVER_LABEL_"


class SpecError(ValueError):
    """A spec the models refuse (only possible for objects that bypassed the API server's schema)."""

    def __init__(self, kind: str, name: str, error: ValidationError) -> None:
        first = error.errors()[0]
        field = "spec." + ".".join(str(part) for part in first["loc"])
        super().__init__(f"{kind} {name}: {field}: {first['msg']}")
        self.kind, self.name, self.field, self.reason = kind, name, field, str(first["msg"])


def _spec(model: type[BaseModel], kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object's spec with the models' defaults applied (camelCase keys)."""
    try:
        spec = model.model_validate(obj.get("spec", {}))
    except ValidationError as exc:
        raise SpecError(kind, obj["metadata"]["name"], exc) from exc
    return spec.model_dump(by_alias=True, exclude_none=True)


def pool_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _spec(QueryNodePoolSpec, "QueryNodePool", obj)


def group_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _spec(ResourceGroupSpec, "ResourceGroup", obj)


def declared_pool(obj: Mapping[str, Any]) -> DeclaredPool:
    spec = pool_spec(obj)
    scale_down = spec.get("scaleDown", {})
    return DeclaredPool(
        name=obj["metadata"]["name"],
        pending_group=spec["pendingGroup"],
        spare_nodes=spec["spareNodes"],
        min_nodes=spec["minNodes"],
        max_nodes=spec.get("maxNodes"),
        stateful_set_name=spec["statefulSetName"],
        max_unavailable=scale_down.get("maxUnavailable", 1),
        drain_timeout_seconds=float(scale_down.get("drainTimeoutSeconds", 600)),
        force_after_timeout=bool(scale_down.get("forceAfterTimeout", False)),
        pod_ready_timeout_seconds=float(spec.get("podReadyTimeoutSeconds", 300)),
    )


def _names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def declared_group(obj: Mapping[str, Any]) -> DeclaredGroup:
    spec = group_spec(obj)
    meta = obj["metadata"]
    limits = spec.get("limits")
    return DeclaredGroup(
        cr_name=meta["name"],
        pool=spec["pool"],
        group_name=spec.get("groupName"),
        requests=spec.get("requests", {}).get("nodeNum", 0),
        limits=None if limits is None else limits.get("nodeNum"),
        transfer_from=_names(spec.get("transferFrom")),
        transfer_to=_names(spec.get("transferTo")),
        node_labels=tuple(sorted(spec.get("nodeLabels", {}).items())),
        deleting=bool(meta.get("deletionTimestamp")),
        previous_group_name=obj.get("status", {}).get("groupName"),
    )


def parse_time(value: str | None) -> float:
    if not value:
        return 0.0
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def format_time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def drain_records(pool_obj: Mapping[str, Any]) -> tuple[DrainRecord, ...]:
    draining = pool_obj.get("status", {}).get("scaleDown", {}).get("draining", [])
    return tuple(
        DrainRecord(pod=d["pod"], node_id=int(d["nodeId"]), group=d.get("group", ""),
                    started_at=parse_time(d.get("startedAt")), phase=d.get("phase", "Suspending"))
        for d in draining
    )


def drain_status(records: Sequence[DrainRecord]) -> list[dict[str, Any]]:
    return [{"pod": r.pod, "nodeId": r.node_id, "group": r.group, "startedAt": format_time(r.started_at),
             "phase": r.phase} for r in records]


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
    )


def statefulset_state(sts: Mapping[str, Any]) -> StatefulSetState:
    status = sts.get("status") or {}
    return StatefulSetState(
        name=sts["metadata"]["name"],
        replicas=int(sts.get("spec", {}).get("replicas", 1) or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        current_replicas=int(status.get("currentReplicas") or 0),
    )


def owned_by(pod: Mapping[str, Any], sts_name: str) -> bool:
    return any(ref.get("kind") == "StatefulSet" and ref.get("name") == sts_name
               for ref in pod["metadata"].get("ownerReferences") or [])
