"""docs/api.md: the API reference, rendered from the CRDs (and so from the models)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from milvus_rg_operator.api.crds import render_crds

HEADER = """# API reference: milvusrg.io/v1alpha1

Generated from `operator/milvus_rg_operator/api/models.py` by `make crds`; do not edit by hand.
`[]` in a path means "every item of the list", `{}` "every value of the map".
Validation lists the OpenAPI constraints and the CEL rules (by their message) the API server enforces.
"""
COLUMNS = ("Field", "Type", "Default", "Required", "Validation", "Description")


def _type(node: Mapping[str, Any]) -> str:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    if node.get("type") == "array":
        return f"[]{_type(node['items'])}"
    if "additionalProperties" in node:
        return f"map[string]{_type(node['additionalProperties'])}"
    return f"{node['type']} ({node['format']})" if "format" in node else str(node["type"])


def _code(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _validation(node: Mapping[str, Any]) -> str:
    parts = []
    for keyword, label in (("minimum", "min"), ("maximum", "max"), ("minLength", "min length"),
                           ("maxLength", "max length"), ("maxItems", "max items"),
                           ("maxProperties", "max entries")):
        if keyword in node:
            parts.append(f"{label} {node[keyword]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    parts.extend(rule["message"] for rule in node.get("x-kubernetes-validations", []))
    # Scalar list items and map values get no row of their own: show their constraints here.
    for keyword, label in (("items", "each item"), ("additionalProperties", "each value")):
        element = node.get(keyword)
        if isinstance(element, Mapping) and element.get("type") != "object" and _validation(element):
            parts.append(f"{label}: {_validation(element)}")
    return "; ".join(parts)


def _rows(node: Mapping[str, Any], path: str, required: bool) -> Iterator[tuple[str, ...]]:
    yield (f"`{path}`", _type(node), _code(node["default"]) if "default" in node else "",
           "yes" if required else "", _validation(node), node.get("description", ""))
    yield from _children(node, path)


def _children(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, ...]]:
    if node.get("type") == "array":
        item = node["items"]
        if item.get("type") == "object":
            yield from _children(item, f"{path}[]")
        return
    if isinstance(node.get("additionalProperties"), Mapping):
        if node["additionalProperties"].get("type") == "object":
            yield from _children(node["additionalProperties"], path + "{}")
        return
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        yield from _rows(child, f"{path}.{name}" if path else name, name in required)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_api_reference() -> str:
    sections = [HEADER]
    for crd in render_crds():
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        sections.append(
            f"## {names['kind']}\n\n{schema['description']}\n\n"
            f"`kubectl get {names['plural']}` (short name `{names['shortNames'][0]}`, category "
            f"`{names['categories'][0]}`); subresources: {', '.join(sorted(version['subresources']))}.\n")
        for part in ("spec", "status"):
            sub = schema["properties"][part]
            sections.append(f"### {names['kind']} {part}\n\n{sub['description']}\n")
            rules = [rule["message"] for rule in sub.get("x-kubernetes-validations", [])]
            if rules:
                sections.append("Rules: " + "; ".join(rules) + ".\n")
            sections.append(_table(list(_children(sub, part))) + "\n")
    return "\n".join(sections)
