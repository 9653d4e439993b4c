"""Names every part of the operator shares: the API's group, kinds and plurals, the labels and annotations
it writes, Milvus's default group and ports, the leader-election Lease's defaults. No imports: the pure core,
the models and the adapters all take them from here."""

from __future__ import annotations

__all__ = [
    "ANNOTATION_BALANCE",
    "ANNOTATION_PAUSED",
    "API_GROUP",
    "API_VERSION",
    "CATEGORY",
    "DEFAULT_GROUP_LIMIT",
    "DEFAULT_LEASE_DURATION",
    "DEFAULT_LEASE_NAME",
    "DEFAULT_MANAGEMENT_PORT",
    "DEFAULT_PENDING_GROUP",
    "DEFAULT_RENEW_DEADLINE",
    "DEFAULT_RESOURCE_GROUP",
    "DEFAULT_RETRY_PERIOD",
    "FINALIZER",
    "LABEL_NODE_ID",
    "LABEL_RESOURCE_GROUP",
    "LABEL_STATE",
    "OPERATOR_NAME",
    "PENDING_GROUP_LIMIT",
    "POOL_KIND",
    "POOL_PLURAL",
    "RESOURCE_GROUP_KIND",
    "RESOURCE_GROUP_PLURAL",
    "VERSION",
]

OPERATOR_NAME = "milvus-rg-operator"

API_GROUP = "milvusrg.io"
VERSION = "v1alpha1"
API_VERSION = f"{API_GROUP}/{VERSION}"
POOL_KIND = "QueryNodePool"
POOL_PLURAL = "querynodepools"
RESOURCE_GROUP_KIND = "ResourceGroup"
RESOURCE_GROUP_PLURAL = "resourcegroups"
CATEGORY = "milvus"

LABEL_RESOURCE_GROUP = f"{API_GROUP}/resource-group"
LABEL_NODE_ID = f"{API_GROUP}/node-id"
LABEL_STATE = f"{API_GROUP}/state"
ANNOTATION_PAUSED = f"{API_GROUP}/paused"
# On a ResourceGroup: a token; each new value asks the operator for one balance of the group's replicas.
ANNOTATION_BALANCE = f"{API_GROUP}/balance"
FINALIZER = f"{API_GROUP}/finalizer"

DEFAULT_RESOURCE_GROUP = "__default_resource_group"
DEFAULT_PENDING_GROUP = "__pending_nodes"
DEFAULT_GROUP_LIMIT = 1_000_000  # the default group's limits in a new Milvus (its requests are 0)
# Larger than the default group's limits so that Milvus' "argmax room" sends incoming nodes that no group is
# missing to the pending group rather than to the default group.
PENDING_GROUP_LIMIT = 10 * DEFAULT_GROUP_LIMIT
DEFAULT_MANAGEMENT_PORT = 9091  # the proxy's management HTTP API (next to gRPC on 19530)

DEFAULT_LEASE_NAME = OPERATOR_NAME
# controller-runtime's defaults (pkg/manager: defaultLeaseDuration, defaultRenewDeadline, defaultRetryPeriod), s.
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
