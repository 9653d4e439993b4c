"""A minimal OpenAPI discovery, enough for kubectl to use server-side field validation.

kubectl (since 1.27, `--validate=strict` by default) refuses to apply unless it can tell from
`/openapi/v3` that the PATCH operation of the resource accepts the `fieldValidation` query parameter.
The documents list only the write operations and their group/version/kind; there are no schemas, so
kubectl falls back to its compiled-in types for strategic merge patches.

For a kind no server serves, such as the `v1 List` that `kubectl get -o json` prints, kubectl validates
on the client instead, against `/openapi/v2` (kubectl 1.32 `validation.paramVerifyingSchema`). That
document has no definitions here: kubectl finds none for the kind, skips that check
(`validation.SchemaValidation.ValidateBytes`), and the server validates each item as it is applied.
"""

from __future__ import annotations

import json
from typing import Any

from .resources import ResourceRegistry, ResourceType

_QUERY_PARAMETERS = [
    {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for name in ("dryRun", "fieldManager", "fieldValidation")
]


# The content type kube-openapi's v2 handler answers a protobuf request with (pkg/handler/handler.go,
# `subTypeProtobuf`), whether client-go asked with it or with the deprecated "...spec.v2@v1.0+protobuf".
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def openapi_v2(accept: str) -> tuple[bytes, str]:
    """/openapi/v2 without definitions, as (body, content type): protobuf when asked for it (an empty
    message is an empty openapi_v2.Document), else JSON."""
    if "protobuf" in accept:
        return b"", OPENAPI_V2_PROTOBUF
    document = {"swagger": "2.0", "info": {"title": "Kubernetes (sandbox)", "version": "v1.32.0"},
                "paths": {}, "definitions": {}}
    return json.dumps(document).encode(), "application/json"


def _group_version_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(registry: ResourceRegistry) -> dict[str, Any]:
    group_versions = {(r.group, r.version) for r in registry.all()}
    return {
        "paths": {
            _group_version_path(group, version): {
                "serverRelativeURL": f"/openapi/v3/{_group_version_path(group, version)}?hash={_hash(registry)}"
            }
            for group, version in sorted(group_versions)
        }
    }


def openapi_v3_group_version(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    paths: dict[str, Any] = {}
    for resource in resources:
        paths[_object_path(resource)] = {
            verb: _operation(resource, verb) for verb in ("get", "put", "patch", "delete")
        }
        paths[_object_path(resource).removesuffix("/{name}")] = {
            verb: _operation(resource, verb) for verb in ("get", "post")
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (sandbox)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _object_path(resource: ResourceType) -> str:
    namespace = "/namespaces/{namespace}" if resource.namespaced else ""
    return f"/{_group_version_path(resource.group, resource.version)}{namespace}/{resource.plural}/{{name}}"


def _operation(resource: ResourceType, verb: str) -> dict[str, Any]:
    return {
        "operationId": f"{verb}{resource.kind}",
        "parameters": _QUERY_PARAMETERS if verb in ("put", "patch", "post") else [],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {
            "group": resource.group, "version": resource.version, "kind": resource.kind,
        },
    }


def _hash(registry: ResourceRegistry) -> str:
    """Changes whenever the served resources change, so that kubectl's cache is refreshed."""
    return format(abs(hash(tuple(sorted(r.key for r in registry.all())))), "x")
