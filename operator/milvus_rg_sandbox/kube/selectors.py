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


def format_match_labels(match_labels: Mapping[str, str]) -> str:
    """Render `matchLabels` as the selector string that `Scale.status.selector` carries."""
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))
