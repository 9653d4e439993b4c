"""The part of kube-apiserver's validation of built-in kinds the sandbox does (most built-in fields are not
checked: docs/sandbox.md)."""

from __future__ import annotations

import re
from typing import Any

from .crd_validation import FieldError

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# k8s.io/kubernetes v1.37.2 pkg/apis/core/helper/helpers.go `GetDeletionCostFromPodAnnotations`: validFirstDigit
# + strconv.ParseInt(value, 10, 32): "-" and digits, "0", or digits without a leading zero, within int32.
_DELETION_COST_SYNTAX = re.compile(r"(-[0-9]+|0|[1-9][0-9]*)\Z")
_INT32 = (-(2**31), 2**31 - 1)


def parse_deletion_cost(annotations: dict[str, Any]) -> int | None:
    """The pod's deletion cost: 0 when absent, None when invalid."""
    value = annotations.get(DELETION_COST)
    if value is None:
        return 0
    if not isinstance(value, str) or not _DELETION_COST_SYNTAX.match(value):
        return None
    cost = int(value)
    return cost if _INT32[0] <= cost <= _INT32[1] else None


def builtin_errors(storage_key: str, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """Pods: the deletion cost must be an int32 (`ValidatePodSpecificAnnotations`), unless an update keeps a value
    that was already invalid (`pkg/api/pod/util.go` `GetValidationOptionsFromPodSpecAndMeta`)."""
    if storage_key != "/pods":
        return []
    annotations = obj.get("metadata", {}).get("annotations") or {}
    if parse_deletion_cost(annotations) is not None:
        return []
    if old is not None and parse_deletion_cost(old.get("metadata", {}).get("annotations") or {}) is None:
        return []
    return [FieldError(f"metadata.annotations[{DELETION_COST}]", "FieldValueInvalid", annotations[DELETION_COST],
                       "must be a 32bit integer")]
