"""The resource types the sandbox API server serves: built-ins and those declared by CRDs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ScalePaths:
    """Where a resource keeps what its `/scale` subresource exposes (JSON paths like `.spec.replicas`)."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    scale: ScalePaths | None = None
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a custom resource version
    crd_name: str | None = None  # set for custom resources

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The identifier used by the in-process store API, e.g. `v1/pods`, `apps/v1/statefulsets`."""
        return f"{self.api_version}/{self.plural}"

    @property
    def storage_key(self) -> str:
        """Objects are shared by all versions of a resource (no conversion: all versions look alike)."""
        return f"{self.group}/{self.plural}"

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def discovery_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [
            {
                "name": self.plural,
                "singularName": self.singular or self.kind.lower(),
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(STANDARD_VERBS),
                "shortNames": list(self.short_names),
                "categories": list(self.categories),
            }
        ]
        if self.has_status:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.key == "v1/pods":  # kubectl drain looks for it to evict rather than delete
            entries.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                            "version": "v1", "kind": "Eviction", "verbs": ["create"]})
        if self.scale is not None:
            entries.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def builtin_resources() -> list[ResourceType]:
    return [
        ResourceType("", "v1", "namespaces", "Namespace", False, short_names=("ns",), has_status=True),
        ResourceType("", "v1", "pods", "Pod", True, short_names=("po",), categories=("all",), has_status=True),
        ResourceType("", "v1", "secrets", "Secret", True),
        ResourceType("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
        ResourceType("", "v1", "events", "Event", True, short_names=("ev",)),
        ResourceType("", "v1", "services", "Service", True, short_names=("svc",), categories=("all",),
                     has_status=True),
        ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        ResourceType("", "v1", "nodes", "Node", False, short_names=("no",), has_status=True),
        ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",),
                     categories=("all",), has_status=True, scale=ScalePaths()),
        ResourceType("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",),
                     categories=("all",), has_status=True, scale=ScalePaths()),
        ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",),
                     categories=("all",), has_status=True, scale=ScalePaths()),
        ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",),
                     has_status=True),
        ResourceType("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
        ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                     False, short_names=("crd", "crds"), categories=("api-extensions",), has_status=True),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ]


def resources_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of a CustomResourceDefinition as resource types."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    result: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale_spec = subresources.get("scale")
        scale = None
        if scale_spec is not None:
            scale = ScalePaths(
                spec_replicas=scale_spec.get("specReplicasPath", ".spec.replicas"),
                status_replicas=scale_spec.get("statusReplicasPath", ".status.replicas"),
                label_selector=scale_spec.get("labelSelectorPath"),
            )
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                has_status="status" in subresources,
                scale=scale,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                crd_name=crd["metadata"]["name"],
            )
        )
    return result


class ResourceRegistry:
    """Which resource types are served, indexed by group/version/plural."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for resource in builtin_resources():
            self.add(resource)

    def add(self, resource: ResourceType) -> None:
        self._types[(resource.group, resource.version, resource.plural)] = resource

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        removed = [resource for resource in self._types.values() if resource.crd_name == crd_name]
        for resource in removed:
            del self._types[(resource.group, resource.version, resource.plural)]
        return removed

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_key(self, key: str) -> ResourceType | None:
        """Resolve a store key like `v1/pods` or `apps/v1/statefulsets`."""
        *group_version, plural = key.split("/")
        if len(group_version) == 1:
            return self.find("", group_version[0], plural)
        if len(group_version) == 2:
            return self.find(group_version[0], group_version[1], plural)
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Non-core groups and their versions, in a stable order."""
        result: dict[str, list[str]] = {}
        for group, version, _ in sorted(self._types):
            if group and version not in result.setdefault(group, []):
                result[group].append(version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for (g, v, _), r in sorted(self._types.items()) if (g, v) == (group, version)]
