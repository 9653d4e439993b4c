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
DESIGN_NOTES = """## Design notes

### Replica placement is a field of the ResourceGroup (`spec.collections`), not a third kind

Which collections a group serves, and with how many replicas, is declared on the group itself:

```yaml
spec:
  requests: {nodeNum: 3}
  collections:
    - {name: books, replicas: 2}
```

Why a field:

- **It is the tenant's own object.** A tenant's isolation is its group: its nodes and the replicas they serve. One
  object, owned by one team and reviewed in one pull request, says both. A separate kind would split one tenant's
  intent over two objects that must agree.
- **Every ordering rule is about one group.** A group gets its nodes before replicas move in, and a scale-in
  never takes it below what its replicas need. It is not dropped while it holds replicas. The operator already
  plans a group's requests, drains and deletion in one pass from this object; its replicas are planned in the
  same pass, with no second object to look up or wait for. `spec.requests.nodeNum` and
  `spec.collections[].replicas` are validated against each other on the same object.
- **Milvus's own API is per group.** `describe_resource_group` reports `num_loaded_replica`, `num_outgoing_node`
  and `num_incoming_node` per collection, and `transfer_replica(source, target, collection, n)` moves replicas
  between groups. The status shows those counts next to the declared ones (`status.collections`).
- **Nothing new to install or watch.** A third kind would need a CRD, RBAC, a watch, a finalizer story and a
  status of its own; `kubectl get mrg` already shows the group.

The cost is that one collection's replicas are spread over several objects. The operator checks them together:

- two groups must not claim more replicas than are loaded (the group created last is refused, as with two
  claims on one Milvus name);
- a collection that exists nowhere, or a group declaring more replicas than it has nodes, is refused on that group.

Both are reported as `Degraded` and `Stalled`, with one Warning event naming the field, and nothing is moved.
A collection is loaded only when every group declaring it sets `loadIfReleased`: loading costs memory in each of
them. The operator never releases a collection. Replicas in groups that declare nothing for a collection are free
to be moved into a group that declares it.

### Balance is judged per replica and started by an annotation

`Balanced` (a condition of each group) compares the nodes **of one replica**: Milvus balances data within a
replica and never across replicas. The figures come from `GetQuerySegmentInfo` (segments, rows, `mem_size`),
and `status.members` carries them per node.

A balance is asked for by setting the annotation `milvusrg.io/balance` to a new token; `status.balanceRequest`
answers that token. A spec field would make "balance now" a desired state that is never reached, whereas a token
is an event that can be repeated.

The moves use the gRPC `LoadBalance`, not the management API's `transfer/segment`. In Milvus 2.5
(`services.go` `LoadBalance`), it:

- is scoped to one collection;
- refuses a target outside the source's replica, and a stopping source or target;
- moves rather than copies;
- waits until the move is done (`balanceSegments` with sync), so a pass knows what it did.

`transfer/segment` (`ops_services.go`) acts on every replica of the source node and does not check that the
target is in the replica. It copies by default (`copy_mode` true) and returns before anything has moved. It is
also served only on the management port, without Milvus's authentication.
"""


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
    sections.append(DESIGN_NOTES)
    return "\n".join(sections)
