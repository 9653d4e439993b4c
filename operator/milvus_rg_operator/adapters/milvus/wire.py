"""Resource-group configs and descriptions between the core's plain data and pymilvus' protobuf messages."""

from __future__ import annotations

from typing import Any

from pymilvus.client.types import ResourceGroupConfig

from milvus_rg_operator.core.types import DEFAULT_GROUP, DEFAULT_GROUP_LIMIT, GroupConfig, MilvusGroup


def to_pymilvus_config(config: GroupConfig) -> Any:
    return ResourceGroupConfig(
        requests={"node_num": config.requests},
        limits={"node_num": config.limits},
        transfer_from=[{"resource_group": name} for name in config.transfer_from],
        transfer_to=[{"resource_group": name} for name in config.transfer_to],
        node_filter={"node_labels": [{"key": k, "value": v} for k, v in config.node_labels]},
    )


def config_reported(config: Any) -> bool:
    """Milvus >= 2.4 always sets requests and limits (resource_group.go keeps both); Milvus 2.3 has no
    configs and answers an empty message."""
    return bool(config.HasField("requests") or config.HasField("limits"))


def from_pymilvus_config(config: Any) -> GroupConfig:
    return GroupConfig(
        requests=int(config.requests.node_num),
        limits=int(config.limits.node_num),
        transfer_from=tuple(sorted({t.resource_group for t in config.transfer_from})),
        transfer_to=tuple(sorted({t.resource_group for t in config.transfer_to})),
        node_labels=tuple(sorted((kv.key, kv.value) for kv in config.node_filter.node_labels)),
    )


def group_from_info(info: Any) -> MilvusGroup:
    """A `describe_resource_group` answer as a MilvusGroup. Without a reported config (Milvus < 2.4) the
    stand-in is what that Milvus enforces: the default group takes any node (requests 0, its capacity
    1,000,000 as limits), another group holds its capacity (the nodes transferred to it)."""
    if config_reported(info.config):
        config, known = from_pymilvus_config(info.config), True
    elif info.name == DEFAULT_GROUP:
        config, known = GroupConfig(0, int(info.capacity) or DEFAULT_GROUP_LIMIT), False
    else:
        config, known = GroupConfig(int(info.capacity), int(info.capacity)), False
    return MilvusGroup(
        name=info.name,
        config=config,
        node_ids=tuple(sorted(node.node_id for node in info.nodes)),
        loaded_replicas=dict(info.num_loaded_replica),
        incoming=dict(info.num_incoming_node),
        outgoing=dict(info.num_outgoing_node),
        config_known=known,
    )
