"""Label and field selectors as understood by the Kubernetes API (`?labelSelector=`, `?fieldSelector=`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^\s*([^\s!=]+)\s*(==|!=|=)\s*([^\s]*)\s*$")


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside the parentheses of `in (...)`/`notin (...)`."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in (p.strip() for p in parts) if part]


def _label_requirement(requirement: str) -> Callable[[Mapping[str, str]], bool]:
    if match := _SET_REQUIREMENT.match(requirement):
        key, operator, raw_values = match.groups()
        values = {value.strip() for value in raw_values.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY_REQUIREMENT.match(requirement):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if requirement.startswith("!") and re.fullmatch(r"![^\s!=(),]+", requirement):
        absent_key = requirement[1:]
        return lambda labels: absent_key not in labels
    if re.fullmatch(r"[^\s!=(),]+", requirement):
        return lambda labels: requirement in labels
    raise bad_request(f"unable to parse requirement: {requirement!r}")


def parse_label_selector(selector: str | None) -> Predicate:
    """Compile a label selector (=, ==, !=, in, notin, exists, !exists) into a predicate on objects."""
    requirements = [_label_requirement(part) for part in _split_requirements(selector or "")]

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def _field_value(obj: dict[str, Any], dotted_path: str) -> str:
    value: Any = obj
    for key in dotted_path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(selector: str | None) -> Predicate:
    """Compile a field selector (`path=value`, `path==value`, `path!=value`) into a predicate."""
    checks: list[tuple[str, bool, str]] = []
    for part in _split_requirements(selector or ""):
        match = _EQUALITY_REQUIREMENT.match(part)
        if match is None:
            raise bad_request(f"invalid field selector: {part!r}")
        path, operator, value = match.groups()
        checks.append((path, operator != "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in checks)

    return matches


LabelMatcher = Callable[[Mapping[str, str]], bool]


def label_selector_matcher(selector: Mapping[str, Any] | None) -> LabelMatcher:
    """A `metav1.LabelSelector` (matchLabels and matchExpressions: In, NotIn, Exists, DoesNotExist) as a test of
    a label map; no selector matches nothing and an empty one everything (k8s.io/apimachinery
    `pkg/apis/meta/v1/helpers.go` `LabelSelectorAsSelector`)."""
    if selector is None:
        return lambda _labels: False
    requirements = [(str(key), "In", frozenset([value]))
                    for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        operator = str(expression.get("operator"))
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise bad_request(f"{operator!r} is not a valid label selector operator")
        requirements.append((str(expression.get("key")), operator, frozenset(expression.get("values") or [])))

    def matches(labels: Mapping[str, str]) -> bool:
        for key, operator, values in requirements:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if (operator == "Exists") != present and operator in ("Exists", "DoesNotExist"):
                return False
        return True

    return matches


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """A `metav1.LabelSelector` as a selector string, requirements sorted by key (`FormatLabelSelector`)."""
    if not selector:
        return ""
    requirements: list[tuple[str, str]] = [
        (key, f"{key}={value}") for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(expression.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}",
                "DoesNotExist": f"!{key}"}.get(str(operator), "")
        requirements.append((str(key), text))
    return ",".join(text for _, text in sorted(requirements))
