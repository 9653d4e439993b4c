"""Render the CustomResourceDefinitions from the pydantic models.

pydantic's JSON schema is turned into a Kubernetes *structural* schema: `$ref`s are inlined, `Optional`
becomes an omitted field (no `anyOf` with null), every node gets a `type`, and the Kubernetes extensions
declared on the models (`x-kubernetes-*`) are kept. Anything else pydantic emits is refused loudly, so a new
field type cannot slip an unsupported keyword into the CRDs.

`python -m milvus_rg_operator.api.crds --write` regenerates crds/, the chart's crds/ and docs/api.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from milvus_rg_operator.api.models import (
    API_GROUP,
    CATEGORY,
    POOL_KIND,
    POOL_PLURAL,
    RESOURCE_GROUP_KIND,
    RESOURCE_GROUP_PLURAL,
    VERSION,
    QueryNodePool,
    QueryNodePoolSpec,
    QueryNodePoolStatus,
    ResourceGroup,
    ResourceGroupSpec,
    ResourceGroupStatus,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
CRDS_DIR = Path("crds")
CHART_CRDS_DIR = Path("charts/milvus-rg-operator/crds")
API_REFERENCE = Path("docs/api.md")
GENERATED_HEADER = "# Generated from milvus_rg_operator/api/models.py by `make crds`. Do not edit.\n"

# Keywords a structural schema may carry that pydantic's output maps onto unchanged.
PASSTHROUGH_KEYWORDS = {
    "type", "description", "default", "format", "enum", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "maxProperties", "required",
    "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}
DROPPED_KEYWORDS = {"title", "$defs", "propertyNames"}  # propertyNames: Kubernetes has none; CEL checks map keys


@dataclass(frozen=True)
class Kind:
    """What a CRD adds to its models: names, printer columns, subresources."""

    kind: str
    plural: str
    short_name: str
    model: type[BaseModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: tuple[dict[str, str], ...]
    subresources: Mapping[str, Any]


def _column(name: str, json_path: str, description: str, type_: str = "string") -> dict[str, str]:
    return {"name": name, "type": type_, "jsonPath": json_path, "description": description}


AGE_COLUMN = _column("Age", ".metadata.creationTimestamp", "Time since creation.", "date")

KINDS = (
    Kind(
        kind=POOL_KIND, plural=POOL_PLURAL, short_name="qnp", model=QueryNodePool,
        spec=QueryNodePoolSpec, status=QueryNodePoolStatus,
        printer_columns=(
            _column("Desired", ".status.desiredReplicas", "Replicas the operator wants.", "integer"),
            _column("Current", ".status.currentReplicas", "Current replicas of the StatefulSet.", "integer"),
            _column("Ready", ".status.readyReplicas", "Ready replicas of the StatefulSet.", "integer"),
            _column("Status", '.status.conditions[?(@.type=="Ready")].reason', "Reason of the Ready condition."),
            AGE_COLUMN,
        ),
        subresources={"status": {}},
    ),
    Kind(
        kind=RESOURCE_GROUP_KIND, plural=RESOURCE_GROUP_PLURAL, short_name="mrg", model=ResourceGroup,
        spec=ResourceGroupSpec, status=ResourceGroupStatus,
        printer_columns=(
            _column("Group", ".status.groupName", "Name of the group in Milvus."),
            _column("Requests", ".spec.requests.nodeNum", "Requested query nodes.", "integer"),
            _column("Nodes", ".status.nodes", "Query nodes Milvus places in the group.", "integer"),
            _column("Ready", '.status.conditions[?(@.type=="Ready")].status', "Status of the Ready condition."),
            _column("Spread", ".status.balance.memorySpreadPercent",
                    "Largest memory difference between two nodes of one replica, in percent.", "integer"),
            AGE_COLUMN,
        ),
        subresources={"status": {}, "scale": {
            "specReplicasPath": ".spec.requests.nodeNum",
            "statusReplicasPath": ".status.nodes",
            "labelSelectorPath": ".status.selector",
        }},
    ),
)


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline `$ref` and unwrap `anyOf: [X, null]`; keywords next to them (the field's) win, rules add up."""
    base: Mapping[str, Any] | None = None
    if "$ref" in node:
        base = defs[node["$ref"].rsplit("/", 1)[-1]]
    elif "anyOf" in node:
        members = [m for m in node["anyOf"] if m != {"type": "null"}]
        if len(members) != 1:
            raise ValueError(f"a union cannot be expressed in a structural schema: {node['anyOf']}")
        base = members[0]
    if base is None:
        return dict(node)
    siblings = {k: v for k, v in node.items() if k not in ("$ref", "anyOf")}
    merged = {**_resolve(base, defs), **siblings}
    rules = [*_resolve(base, defs).get("x-kubernetes-validations", []),
             *siblings.get("x-kubernetes-validations", [])]
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def structural(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node -> a Kubernetes structural-schema node."""
    resolved = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if key in DROPPED_KEYWORDS or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: structural(child, defs) for name, child in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "patternProperties" and len(value) == 1:
            out["additionalProperties"] = structural(next(iter(value.values())), defs)
        elif key == "additionalProperties":
            if isinstance(value, Mapping) and value:
                out[key] = structural(value, defs)
            elif value is True and not resolved.get("x-kubernetes-preserve-unknown-fields"):
                raise ValueError(f"free-form object needs x-kubernetes-preserve-unknown-fields: {node}")
        elif key in PASSTHROUGH_KEYWORDS:
            out[key] = value
        else:
            raise ValueError(f"schema keyword {key!r} has no structural equivalent: {node}")
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise ValueError(f"schema node without a type: {node}")
    return _ordered(out)


KEY_ORDER = ("description", "type", "format", "enum", "default", "minimum", "maximum", "minLength",
             "maxLength", "pattern", "minItems", "maxItems", "maxProperties", "required", "properties",
             "additionalProperties", "items")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """A stable, readable key order: description first, extensions last."""
    known = [k for k in KEY_ORDER if k in node]
    return {k: node[k] for k in [*known, *sorted(k for k in node if k not in KEY_ORDER)]}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _open_api_schema(kind: Kind) -> dict[str, Any]:
    return {
        "description": (kind.model.__doc__ or "").strip().replace("\n    ", " "),
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"description": "APIVersion of the object: milvusrg.io/v1alpha1.", "type": "string"},
            "kind": {"description": f"Kind of the object: {kind.kind}.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(kind.spec),
            "status": model_schema(kind.status),
        },
    }


def render_crd(kind: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short_name],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "additionalPrinterColumns": list(kind.printer_columns),
                "subresources": dict(kind.subresources),
                "schema": {"openAPIV3Schema": _open_api_schema(kind)},
            }],
        },
    }


def render_crds() -> list[dict[str, Any]]:
    """The CRDs as dicts, QueryNodePool first."""
    return [render_crd(kind) for kind in KINDS]


def crd_file_name(crd: Mapping[str, Any]) -> str:
    """kubebuilder's naming: <group>_<plural>.yaml."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def render_crds_yaml() -> dict[str, str]:
    """File name -> YAML text, exactly what crds/ holds."""
    return {
        crd_file_name(crd): GENERATED_HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)
        for crd in render_crds()
    }


def generated_files() -> dict[Path, str]:
    """Every generated file (relative to the repository root) and its content."""
    from milvus_rg_operator.api.reference import render_api_reference

    files = {API_REFERENCE: render_api_reference()}
    for name, text in render_crds_yaml().items():
        files[CRDS_DIR / name] = text
        files[CHART_CRDS_DIR / name] = text
    return files


def write_generated(root: Path) -> list[Path]:
    """Write every generated file under `root`; return those that changed."""
    changed = []
    for relative, text in generated_files().items():
        path = root / relative
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milvus_rg_operator.api.crds",
                                     description="Print or regenerate the CRDs and docs/api.md.")
    parser.add_argument("--write", action="store_true",
                        help="write crds/, the chart's crds/ and docs/api.md instead of printing the CRDs")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write("---\n".join(render_crds_yaml().values()))
        return 0
    for path in write_generated(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
