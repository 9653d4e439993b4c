"""Cross-field rules of one object's spec, each written once: rendered as a CEL `x-kubernetes-validations`
entry for the API server (admission) and evaluated in Python by the pydantic models (manifests that never
went through an API server: `plan -f`, objects created before the CRD had the rule).

A rule is a small expression over the spec as it travels on the wire (camelCase, defaults applied):
`Path("minNodes").at_most(Path("maxNodes"))` renders as `self.minNodes <= self.maxNodes`; `unless_absent` names the
optional fields without which the rule holds (`!has(self.maxNodes) || ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic.config import JsonDict, JsonValue

_ABSENT = object()


class Expr:
    """An expression that renders as CEL and evaluates over a spec."""

    def cel(self) -> str:
        raise NotImplementedError

    def evaluate(self, spec: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _compare(self, op: str, other: Expr | int | str | bool) -> Compare:
        return Compare(op, self, other if isinstance(other, Expr) else Const(other))

    def at_most(self, other: Expr | int | str) -> Compare:
        return self._compare("<=", other)

    def at_least(self, other: Expr | int | str) -> Compare:
        return self._compare(">=", other)

    def differs_from(self, other: Expr | int | str | bool) -> Compare:
        return self._compare("!=", other)

    def equals(self, other: Expr | int | str | bool) -> Compare:
        return self._compare("==", other)

    def not_in(self, other: Expr) -> Compare:
        return self._compare("not in", other)

    def starts_with(self, prefix: str) -> Compare:
        return self._compare("startsWith", prefix)

    def unique_by(self, key: str) -> UniqueBy:
        """Every item of this list has a different `key`."""
        return UniqueBy(self, key)


@dataclass(frozen=True)
class Path(Expr):
    """A field of the spec, dotted: `limits.nodeNum`."""

    dotted: str

    def cel(self) -> str:
        return f"self.{self.dotted}"

    def evaluate(self, spec: Mapping[str, Any]) -> Any:
        value: Any = spec
        for part in self.dotted.split("."):
            if not isinstance(value, Mapping) or value.get(part) is None:
                return _ABSENT
            value = value[part]
        return value


@dataclass(frozen=True)
class Has(Expr):
    """Whether a field of the spec is set (CEL `has()`)."""

    dotted: str

    def cel(self) -> str:
        return f"has(self.{self.dotted})"

    def evaluate(self, spec: Mapping[str, Any]) -> Any:
        return Path(self.dotted).evaluate(spec) is not _ABSENT


@dataclass(frozen=True)
class Const(Expr):
    value: int | str | bool

    def cel(self) -> str:
        if isinstance(self.value, bool):
            return str(self.value).lower()
        return f"'{self.value}'" if isinstance(self.value, str) else str(self.value)

    def evaluate(self, spec: Mapping[str, Any]) -> Any:
        return self.value


_OPERATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "!=": lambda a, b: a != b, "==": lambda a, b: a == b,
    "not in": lambda a, b: a not in b, "startsWith": lambda a, b: isinstance(a, str) and a.startswith(b),
}


@dataclass(frozen=True)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr

    def cel(self) -> str:
        if self.op == "not in":
            return f"!({self.left.cel()} in {self.right.cel()})"
        if self.op == "startsWith":
            return f"{self.left.cel()}.startsWith({self.right.cel()})"
        return f"{self.left.cel()} {self.op} {self.right.cel()}"

    def evaluate(self, spec: Mapping[str, Any]) -> Any:
        return _OPERATORS[self.op](self.left.evaluate(spec), self.right.evaluate(spec))


@dataclass(frozen=True)
class UniqueBy(Expr):
    """No two items of the list at `items` share their `key` (a list keyed like a map, checked with CEL, as the
    sandbox's API server does not enforce x-kubernetes-list-type: map)."""

    items: Expr
    key: str

    def cel(self) -> str:
        items = self.items.cel()
        return f"{items}.all(a, {items}.exists_one(b, b.{self.key} == a.{self.key}))"

    def evaluate(self, spec: Mapping[str, Any]) -> Any:
        items = self.items.evaluate(spec)
        keys = [] if items is _ABSENT else [item.get(self.key) for item in items]
        return len(keys) == len(set(keys))


@dataclass(frozen=True)
class Rule:
    """`holds` must be true of the spec unless one of `unless_absent` is absent, or `only_if` is false; `field`
    (relative to the spec, as `.minNodes`) is the field the message is about."""

    holds: Expr
    message: str
    field: str
    unless_absent: tuple[str, ...] = ()
    only_if: Compare | None = None

    def cel(self) -> str:
        guards = [f"!has(self.{path})" for path in self.unless_absent]
        if self.only_if is not None:
            guards.append(f"!({self.only_if.cel()})")
        return " || ".join([*guards, self.holds.cel()])

    def x_kubernetes_validation(self) -> JsonDict:
        return {"rule": self.cel(), "message": self.message, "fieldPath": self.field}

    def violated_by(self, spec: Mapping[str, Any]) -> bool:
        if any(Path(path).evaluate(spec) is _ABSENT for path in self.unless_absent):
            return False
        if self.only_if is not None and not self.only_if.evaluate(spec):
            return False
        return not self.holds.evaluate(spec)


class RuleViolation(ValueError):
    """A spec breaks a rule; `field` is the spec field to fix (as `spec.minNodes`)."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule.message)
        self.field = "spec" + rule.field


def check(rules: Sequence[Rule], spec: Mapping[str, Any]) -> None:
    """Raise RuleViolation for the first rule `spec` (camelCase, defaults applied) breaks."""
    for rule in rules:
        if rule.violated_by(spec):
            raise RuleViolation(rule)


def validations(rules: Sequence[Rule]) -> list[JsonValue]:
    return [rule.x_kubernetes_validation() for rule in rules]
