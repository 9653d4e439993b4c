"""Structural-schema processing of custom resources, as the Kubernetes API server does it.

Pure functions: defaulting, pruning (or strict rejection) of unknown fields, OpenAPI v3 checks
(types, enum, bounds, lengths, pattern, required, items, nullable, int-or-string) and
`x-kubernetes-validations` CEL rules (with `oldSelf` transition rules on updates).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import celpy
from celpy.adapter import json_to_cel

ROOT_FIELDS_KEPT = ("apiVersion", "kind", "metadata")
_OLD_SELF = re.compile(r"\boldSelf\b")


@dataclass(frozen=True)
class FieldError:
    """One invalid field, with the `reason` the API server puts into `Status.details.causes`."""

    field: str
    reason: str  # FieldValueInvalid | FieldValueRequired | FieldValueNotSupported | FieldValueForbidden | ...
    value: Any
    detail: str

    def message(self) -> str:
        if self.reason == "FieldValueTooLong":
            return f"{self.field}: Too long: {self.detail}"
        if self.reason == "FieldValueTooMany":
            return f"{self.field}: Too many: {self.value}: {self.detail}"
        if self.reason == "FieldValueRequired":
            return f"{self.field}: Required value" + (f": {self.detail}" if self.detail != "Required value" else "")
        if self.reason == "FieldValueForbidden":
            return f"{self.field}: Forbidden: {self.detail}"
        if self.reason == "FieldValueNotSupported":
            return f"{self.field}: Unsupported value: {_format_value(self.value)}: {self.detail}"
        if self.reason == "FieldValueUnknown":
            return f'unknown field "{self.field}"'
        if self.value is _NO_VALUE:
            return f"{self.field}: Invalid value: {self.detail}"
        return f"{self.field}: Invalid value: {_format_value(self.value)}: {self.detail}"

    def body(self) -> str:
        """The message without the field (`field.Error.ErrorBody`), as a `Status` cause carries it."""
        return self.message().removeprefix(f"{self.field}: ")


class _NoValue:
    """A CEL rule's failure names no value (Kubernetes 1.37: `spec.x: Invalid value: <message>`)."""


_NO_VALUE = _NoValue()
# Errors after which the API server runs no CEL rule at all (it then adds RULES_SKIPPED); observed on
# kube-apiserver 1.37: type, enum, maxLength, maxItems and required errors do so; bounds, pattern and
# minItems errors do not.
_BLOCKING_REASONS = frozenset({"FieldValueTypeInvalid", "FieldValueNotSupported", "FieldValueTooLong",
                               "FieldValueTooMany", "FieldValueRequired"})
RULES_SKIPPED = ("some validation rules were not checked because the object was invalid; "
                 "correct the existing errors to complete validation")


def _format_value(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def validate_custom_resource(
    schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None, *, strict: bool = False,
) -> tuple[dict[str, Any], list[FieldError]]:
    """Default, prune and validate `obj` against a CRD version's `openAPIV3Schema`.

    Returns the processed object (a copy) and the errors; `old` enables `oldSelf` transition rules;
    `strict` turns unknown fields into errors instead of silently pruning them.
    """
    validator = _Validator(strict)
    root = copy.deepcopy(obj)
    kept = {key: root.pop(key) for key in ROOT_FIELDS_KEPT if key in root}
    old_root = {key: value for key, value in (old or {}).items() if key not in ROOT_FIELDS_KEPT}
    processed = validator.visit(schema, root, "", old_root if old is not None else _MISSING)
    validator.run_rules()
    result = {**kept, **(processed if isinstance(processed, dict) else {})}
    return result, validator.errors


def unknown_fields(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """The fields of `obj` that its schema neither declares nor preserves: what kube-apiserver's strict
    decoding (fieldValidation=Strict) refuses before any validation."""
    validator = _Validator(strict=True)
    validator.visit(schema, {key: value for key, value in obj.items() if key not in ROOT_FIELDS_KEPT}, "", _MISSING)
    return [error.field for error in validator.errors if error.reason == "FieldValueUnknown"]


class _Missing:
    """The old value does not exist (create, or a field that is new in this update)."""


_MISSING = _Missing()

_TYPE_CHECKS: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}

_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}


@functools.lru_cache(maxsize=1)
def _cel_environment() -> celpy.Environment:
    return celpy.Environment()


@functools.lru_cache(maxsize=512)
def _cel_program(expression: str) -> Any:
    environment = _cel_environment()
    return environment.program(environment.compile(expression))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Validator:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.errors: list[FieldError] = []
        self.pending_rules: list[tuple[dict[str, Any], Any, str, Any]] = []

    def error(self, path: str, reason: str, value: Any, detail: str) -> None:
        self.errors.append(FieldError(path or "<root>", reason, value, detail))

    def visit(self, schema: dict[str, Any], value: Any, path: str, old: Any) -> Any:
        if value is None and schema.get("nullable"):
            return None
        errors_before = len(self.errors)
        if schema.get("x-kubernetes-int-or-string"):
            if not isinstance(value, (int, str)) or isinstance(value, bool):
                self.error(path, "FieldValueTypeInvalid", _type_name(value),
                           f"{path} in body must be of type integer,string: {json.dumps(_type_name(value))}")
            result = value
        else:
            expected = schema.get("type")
            if expected and not _TYPE_CHECKS[expected](value):
                self.error(path, "FieldValueTypeInvalid", _type_name(value),
                           f"{path} in body must be of type {expected}: {json.dumps(_type_name(value))}")
                return value
            if isinstance(value, dict):
                result = self.visit_object(schema, value, path, old)
            elif isinstance(value, list):
                result = self.visit_array(schema, value, path, old)
            else:
                self.check_scalar(schema, value, path)
                result = value
        if "enum" in schema and result not in schema["enum"]:
            supported = ", ".join(json.dumps(option) for option in schema["enum"])
            self.error(path, "FieldValueNotSupported", result, f"supported values: {supported}")
        if len(self.errors) == errors_before and schema.get("x-kubernetes-validations"):
            self.pending_rules.append((schema, result, path, old))  # run after the schema checks
        return result

    def run_rules(self) -> None:
        """CEL rules assume a schema-valid value: after a blocking schema error none runs (as in Kubernetes,
        which says so in one more cause)."""
        if any(error.reason in _BLOCKING_REASONS for error in self.errors):
            self.errors.append(FieldError("<nil>", "FieldValueInvalid", None, RULES_SKIPPED))
            return
        for schema, value, path, old in self.pending_rules:
            self.check_rules(schema, value, path, old)

    def visit_object(self, schema: dict[str, Any], value: dict[str, Any], path: str, old: Any) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        old_object = old if isinstance(old, dict) else {}
        result: dict[str, Any] = {}
        for key, child in value.items():
            child_path = _join(path, key)
            child_schema = properties.get(key, additional if isinstance(additional, dict) else None)
            if child is None and not (child_schema or {}).get("nullable"):
                continue  # null on a non-nullable field is pruned (then possibly defaulted)
            if child_schema is not None:
                result[key] = self.visit(child_schema, child, child_path, old_object.get(key, _MISSING))
            elif preserve or additional is True:
                result[key] = child
            elif self.strict:
                self.error(child_path, "FieldValueUnknown", child, "field not declared in schema")
        for key, child_schema in properties.items():
            if key not in result and "default" in child_schema:
                result[key] = self.visit(child_schema, copy.deepcopy(child_schema["default"]),
                                         _join(path, key), old_object.get(key, _MISSING))
        for key in schema.get("required") or []:
            if key not in result:
                self.error(_join(path, key), "FieldValueRequired", None, "Required value")
        return result

    def visit_array(self, schema: dict[str, Any], value: list[Any], path: str, old: Any) -> list[Any]:
        items = schema.get("items")
        result = [
            self.visit(items, item, f"{path}[{index}]", _MISSING) if isinstance(items, dict) else item
            for index, item in enumerate(value)
        ]
        if "minItems" in schema and len(result) < schema["minItems"]:
            self.error(path, "FieldValueInvalid", len(result),
                       f"{path} in body should have at least {schema['minItems']} items")
        if "maxItems" in schema and len(result) > schema["maxItems"]:
            self.error(path, "FieldValueTooMany", len(result), f"must have at most {schema['maxItems']} items")
        return result

    def check_scalar(self, schema: dict[str, Any], value: Any, path: str) -> None:
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.error(path, "FieldValueInvalid", value,
                           f"{path} in body should be at least {schema['minLength']} chars long")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.error(path, "FieldValueTooLong", value, f"may not be more than {schema['maxLength']} bytes")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                self.error(path, "FieldValueInvalid", value,
                           f"{path} in body should match '{schema['pattern']}'")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            minimum, maximum = schema.get("minimum"), schema.get("maximum")
            if minimum is not None:
                if schema.get("exclusiveMinimum") and value <= minimum:
                    self.error(path, "FieldValueInvalid", value, f"{path} in body should be greater than {minimum}")
                elif value < minimum:
                    self.error(path, "FieldValueInvalid", value,
                               f"{path} in body should be greater than or equal to {minimum}")
            if maximum is not None:
                if schema.get("exclusiveMaximum") and value >= maximum:
                    self.error(path, "FieldValueInvalid", value, f"{path} in body should be less than {maximum}")
                elif value > maximum:
                    self.error(path, "FieldValueInvalid", value,
                               f"{path} in body should be less than or equal to {maximum}")

    def check_rules(self, schema: dict[str, Any], value: Any, path: str, old: Any) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            expression = rule["rule"]
            activation = {"self": json_to_cel(value)}
            if _OLD_SELF.search(expression):
                if isinstance(old, _Missing):
                    continue  # transition rules only run on updates of an existing value
                activation["oldSelf"] = json_to_cel(old)
            try:
                passed = _cel_program(expression).evaluate(activation)
            except Exception as exc:  # celpy raises CELEvalError for e.g. a missing field
                self.error(path, "FieldValueInvalid", value, f"rule evaluation error: {exc}")
                continue
            if not (isinstance(passed, celpy.celtypes.BoolType) and bool(passed)):
                field_path = _join(path, rule["fieldPath"].lstrip(".")) if rule.get("fieldPath") else path
                self.error(field_path, rule.get("reason", "FieldValueInvalid"), _NO_VALUE,
                           self.rule_message(rule, activation))

    @staticmethod
    def rule_message(rule: dict[str, Any], activation: dict[str, Any]) -> str:
        if rule.get("messageExpression"):
            try:
                return str(_cel_program(rule["messageExpression"]).evaluate(activation))
            except Exception:  # Kubernetes falls back to `message` when messageExpression fails
                pass
        return str(rule.get("message") or f"failed rule: {rule['rule']}")


def _type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
