"""Reading manifests from files and applying them like `kubectl apply` (create, else merge-patch)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from milvus_rg_operator.api.models import API_GROUP


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every YAML document in the files (folders: their *.yaml/*.yml files, sorted by name)."""
    documents: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"}) if path.is_dir() else [path]
        for file in files:
            documents.extend(doc for doc in yaml.safe_load_all(file.read_text()) if doc)
    return documents


def _plural(kind: str) -> str:
    return kind.lower() + "s"


def _apply_one(api_client: ApiClient, obj: dict[str, Any], namespace: str) -> str:
    kind = obj["kind"]
    name = obj["metadata"]["name"]
    if kind == "CustomResourceDefinition":
        crds = ApiextensionsV1Api(api_client)
        try:
            crds.create_custom_resource_definition(obj)
            return f"customresourcedefinition/{name} created"
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = crds.read_custom_resource_definition(name)
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current.metadata.resource_version}}
            crds.replace_custom_resource_definition(name, obj)
            return f"customresourcedefinition/{name} configured"
    group, version = obj["apiVersion"].split("/")
    if group != API_GROUP:
        raise ValueError(f"{kind}/{name}: only {API_GROUP} objects and CRDs are applied here")
    custom = CustomObjectsApi(api_client)
    ns = obj["metadata"].get("namespace", namespace)
    try:
        custom.create_namespaced_custom_object(group, version, ns, _plural(kind), obj)
        return f"{kind.lower()}/{name} created"
    except ApiException as exc:
        if exc.status != 409:
            raise
    custom.patch_namespaced_custom_object(group, version, ns, _plural(kind), name, {"spec": obj.get("spec", {})})
    return f"{kind.lower()}/{name} configured"


async def apply_manifests(api_client: ApiClient, objects: Iterable[dict[str, Any]],
                          namespace: str = "default") -> list[str]:
    """Apply in order; returns kubectl-style lines ("rg1 configured"). API errors propagate."""
    results = []
    for obj in objects:
        results.append(await asyncio.to_thread(_apply_one, api_client, obj, namespace))
    return results
