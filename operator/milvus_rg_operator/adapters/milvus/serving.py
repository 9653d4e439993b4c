"""Collections, replicas and segments over pymilvus: what replica placement and data balance read and write.

pymilvus 3.0.2's AsyncMilvusClient has no `list_loaded_segments` (GetQuerySegmentInfo) and no `load_balance`,
and its `load_collection` waits for the whole load; those three RPCs go over the client's own connection (its
channel, credentials and interceptors) with the request messages pymilvus' `Prepare` builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymilvus import AsyncMilvusClient
from pymilvus.client.prepare import Prepare
from pymilvus.client.utils import check_status

from milvus_rg_operator.core.types import CollectionInfo, LoadedSegment, ReplicaInfo


async def _stub(client: AsyncMilvusClient) -> Any:
    handler = await client._get_connection()
    return handler._async_stub


async def query_segment_info(client: AsyncMilvusClient, collection: str, *, timeout: float) -> Any:
    """GetQuerySegmentInfo: the loaded sealed segments, with their rows, memory and the nodes holding them."""
    stub = await _stub(client)
    response = await stub.GetQuerySegmentInfo(Prepare.get_query_segment_info_request(collection), timeout=timeout)
    check_status(response.status)
    return response.infos


async def load_balance(client: AsyncMilvusClient, collection: str, source: int, targets: Sequence[int],
                       segments: Sequence[int], *, timeout: float) -> None:
    """LoadBalance: Milvus answers once the moves are done (services.go `LoadBalance`, sync)."""
    stub = await _stub(client)
    request = Prepare.load_balance_request(collection, source, list(targets), list(segments))
    check_status(await stub.LoadBalance(request, timeout=timeout))


async def start_load(client: AsyncMilvusClient, collection: str, replicas: int, groups: Sequence[str], *,
                     timeout: float) -> None:
    """LoadCollection without waiting for the load: the next pass sees the replicas Milvus created."""
    stub = await _stub(client)
    request = Prepare.load_collection(collection, replicas, resource_groups=list(groups))
    check_status(await stub.LoadCollection(request, timeout=timeout))


def collection_info(name: str, replicas: Sequence[Any], segments: Sequence[Any]) -> CollectionInfo:
    """pymilvus `ReplicaInfo`s (describe_replica) and `QuerySegmentInfo`s as the core's data."""
    return CollectionInfo(
        name=name,
        replicas=tuple(ReplicaInfo(int(r.id), str(r.resource_group), tuple(sorted(int(n) for n in r.group_nodes)),
                                   tuple(int(s.shard_leader) for s in r.shards))
                       for r in replicas),
        segments=tuple(LoadedSegment(int(s.segmentID), int(s.num_rows), int(s.mem_size),
                                     tuple(int(n) for n in (s.nodeIds or [s.nodeID])))
                       for s in segments),
    )
