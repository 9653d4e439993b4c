"""What an API server does with a CRD schema, re-done small for tests: the structural-schema checks,
defaulting, and the CEL rules (with cel-python)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
from celpy.adapter import json_to_cel

# Keywords apiextensions.k8s.io/v1 forbids or that a structural schema may not contain.
FORBIDDEN_KEYWORDS = ("$ref", "anyOf", "oneOf", "allOf", "not", "patternProperties", "propertyNames",
                      "definitions", "$defs", "dependencies", "additionalItems", "const")


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its field path (`[]` for list items, `{}` for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def structural_violations(schema: Mapping[str, Any]) -> list[str]:
    """The reasons this openAPIV3Schema is not a structural schema (empty when it is)."""
    problems = []
    for path, node in walk(schema):
        where = path or "<root>"
        preserves = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "type" not in node and not preserves and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{where}: no type")
        problems += [f"{where}: {keyword}" for keyword in FORBIDDEN_KEYWORDS if keyword in node]
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: both properties and additionalProperties")
        if node.get("additionalProperties") is False or node.get("additionalProperties") is True:
            problems.append(f"{where}: boolean additionalProperties")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: array without items")
        for rule in node.get("x-kubernetes-validations", []):
            if not rule.get("rule") or not rule.get("message"):
                problems.append(f"{where}: a CEL rule without rule or message")
    metadata = schema.get("properties", {}).get("metadata", {})
    if set(metadata) - {"type"}:
        problems.append("metadata: only `type: object` is allowed at the root")
    return problems


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Kubernetes defaulting: missing properties with a default are set, top-down (so `{}` gets its own)."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in schema:
        for name, child in schema["properties"].items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif isinstance(value, list) and "items" in schema:
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


@dataclass(frozen=True)
class Rule:
    path: str
    rule: str
    message: str


def cel_rules(schema: Mapping[str, Any]) -> list[Rule]:
    return [Rule(path, r["rule"], r["message"])
            for path, node in walk(schema) for r in node.get("x-kubernetes-validations", [])]


def evaluate(rule: str, self_value: Any, old_self: Any = None) -> bool:
    """Run one CEL rule the way the API server binds it (`self`, and `oldSelf` on updates)."""
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    activation = {"self": json_to_cel(self_value)}
    if old_self is not None:
        activation["oldSelf"] = json_to_cel(old_self)
    return bool(program.evaluate(activation))


def rule_holds(rule: Rule, self_value: Any, old_self: Any = None) -> bool:
    """Transition rules (using oldSelf) only run on updates: on create they hold by definition."""
    if "oldSelf" in rule.rule and old_self is None:
        return True
    return evaluate(rule.rule, self_value, old_self)


def node_at(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    for found, node in walk(schema):
        if found == path:
            return node
    raise KeyError(path)


def values_at(obj: Any, path: str) -> list[Any]:
    """The values a schema path designates in an object (several for lists and maps)."""
    values = [obj]
    for part in path.replace("[]", ".[]").replace("{}", ".{}").split(".")[1:]:
        if part in ("[]", "{}"):
            values = [v for value in values for v in (value if part == "[]" else value.values())]
        else:
            values = [value[part] for value in values if isinstance(value, dict) and part in value]
    return values


def cel_errors(schema: Mapping[str, Any], obj: Any, old: Any = None) -> list[str]:
    """Messages of the CEL rules `obj` breaks (the API server's admission, for these rules)."""
    errors = []
    for rule in cel_rules(schema):
        old_values = values_at(old, rule.path) if old is not None else []
        for index, value in enumerate(values_at(obj, rule.path)):
            old_value = old_values[index] if index < len(old_values) and "[]" not in rule.path else None
            if not rule_holds(rule, value, old_value):
                errors.append(f"{rule.path}: {rule.message}")
    return errors
