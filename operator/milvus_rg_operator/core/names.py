"""Milvus resource-group names and their Kubernetes label values.

Label mapping (`milvusrg.io/resource-group` on pods): Milvus names may start or end with `_` and be up
to 255 characters, label values may not. The value is the group name with leading and trailing `_`
stripped (`__pending_nodes` -> `pending_nodes`, `__default_resource_group` -> `default_resource_group`);
a name longer than 63 characters after stripping becomes its first 52 characters, `-` and 10 hex
characters of its SHA-1. A name of only underscores becomes `x-` + 10 hex characters. Two names that
differ only by leading/trailing underscores share a label value; the exact name is always in the pod
annotation of the same key.
"""

from __future__ import annotations

import hashlib
import re

from milvus_rg_operator.core.types import GROUP_NODE_LABEL, DeclaredGroup

MAX_GROUP_NAME_LENGTH = 255  # Milvus proxy.maxNameLength: names must be shorter than 256
MAX_LABEL_VALUE_LENGTH = 63
_NAME_REST = re.compile(r"^[A-Za-z0-9_]*$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def validate_group_name(name: str) -> str | None:
    """Milvus' ValidateResourceGroupName; returns the reason a name is refused, or None."""
    if not name:
        return "resource group name couldn't be empty"
    if len(name) > MAX_GROUP_NAME_LENGTH:
        return f"the length of a resource group name must be less than {MAX_GROUP_NAME_LENGTH + 1} characters"
    first = name[0]
    if not (first == "_" or (first.isascii() and first.isalpha())):
        return "the first character of a resource group name must be an underscore or letter"
    if not _NAME_REST.match(name):
        return "resource group name can only contain numbers, letters and underscores"
    return None


def default_group_name(cr_name: str) -> str:
    return cr_name.replace("-", "_")


def resolve_group_name(group: DeclaredGroup) -> str:
    return group.group_name if group.group_name is not None else default_group_name(group.cr_name)


def node_filter(group: DeclaredGroup) -> tuple[tuple[str, str], ...]:
    """The group's Milvus node filter: its declared labels, or with its own workload the label its pods carry
    (`MILVUS_SERVER_LABEL_RESOURCE_GROUP=<group>`, read by Milvus >= 2.4.17 as the node label RESOURCE_GROUP)."""
    if group.node_labels or group.workload is None:
        return group.node_labels
    return ((GROUP_NODE_LABEL, resolve_group_name(group)),)


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:10]


def label_value(group_name: str) -> str:
    stripped = group_name.strip("_")
    if not stripped:
        return f"x-{_digest(group_name)}"
    if len(stripped) > MAX_LABEL_VALUE_LENGTH:
        return f"{stripped[:52]}-{_digest(group_name)}"
    return stripped
