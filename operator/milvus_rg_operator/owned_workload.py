"""The StatefulSet the operator creates for a pool with `spec.template`, owned by the pool (deleted with it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from milvus_rg_operator.api.models import QueryNodePoolSpec
from milvus_rg_operator.constants import POOL_KIND

DEFAULT_POD_LABELS = {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/component": "querynode"}


def statefulset_manifest(pool_obj: Mapping[str, Any], spec: QueryNodePoolSpec, namespace: str, name: str,
                         replicas: int) -> dict[str, Any]:
    template = spec.template
    template_meta = (template.metadata.model_dump(exclude_none=True) if template and template.metadata else {})
    labels = dict(template_meta.get("labels") or {}) or dict(DEFAULT_POD_LABELS)
    meta = pool_obj["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {
            "name": name, "namespace": namespace, "labels": labels,
            "ownerReferences": [{"apiVersion": pool_obj["apiVersion"], "kind": POOL_KIND, "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {**template_meta, "labels": labels}, "spec": template.spec if template else {}},
        },
    }
