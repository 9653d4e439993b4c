"""The StatefulSets the operator creates and owns: the pool's (`spec.template` of the QueryNodePool) and a
group's own (`spec.template` of a ResourceGroup), each deleted with its owner."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from milvus_rg_operator.api.models import PodTemplate

GROUP_ENV = "MILVUS_SERVER_LABEL_RESOURCE_GROUP"  # the node label RESOURCE_GROUP: Milvus keeps the node in it


def statefulset_manifest(owner: Mapping[str, Any], template: PodTemplate | None, namespace: str, name: str,
                         replicas: int, group: str | None = None) -> dict[str, Any]:
    """`group`: the Milvus group whose own workload this is; its containers get `MILVUS_SERVER_LABEL_RESOURCE_GROUP`
    (Milvus >= 2.4.17 reads it as the node label the group's node filter asks for; 2.6.8 also places the node)."""
    template_meta = (template.metadata.model_dump(exclude_none=True) if template and template.metadata else {})
    labels = dict(template_meta.get("labels") or {}) or {
        "app.kubernetes.io/name": "milvus", "app.kubernetes.io/component": "querynode",
        "app.kubernetes.io/instance": name}
    pod_spec = copy.deepcopy(template.spec) if template else {}
    if group is not None:
        for container in pod_spec.get("containers") or []:
            env = container.setdefault("env", [])
            if not any(item.get("name") == GROUP_ENV for item in env):
                env.append({"name": GROUP_ENV, "value": group})
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {
            "name": name, "namespace": namespace, "labels": labels,
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {**template_meta, "labels": labels}, "spec": pod_spec},
        },
    }
