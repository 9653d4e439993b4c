"""The Milvus gRPC service (the proto pymilvus speaks), backed by a `ResourceManager`."""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, rg_pb2, schema_pb2

from milvus_rg_sandbox.tls import ServerTls

from .balancer import Move
from .resource_manager import (
    Code,
    MilvusError,
    MilvusVersion,
    ResourceManager,
    RGConfig,
)

Request = Any
Response = TypeVar("Response")
Handler = Callable[["MilvusServicer", Request, grpc.aio.ServicerContext], Awaitable[Any]]

# merr utils.go `oldCode`: the deprecated error_code a real server sets next to the merr `code`.
OLD_ERROR_CODES: dict[int, int] = {
    Code.COLLECTION_NOT_FOUND: common_pb2.CollectionNotExists,
    Code.PARAMETER_INVALID: common_pb2.IllegalArgument,
}


@dataclass
class ServerControls:
    """State the simulator shares with its servers: fault injection, auth and the write counter."""

    version: str = "v2.5.16"
    token: str | None = None
    unavailable: bool = False
    management_enabled: bool = True
    write_rpcs: collections.Counter[str] = field(default_factory=collections.Counter)
    on_change: Callable[[], None] = lambda: None
    # queryCoord.segmentTaskTimeout (120000 ms): how long a synchronous LoadBalance waits for its moves
    segment_task_timeout: float = 120.0
    # Guards the ResourceManager when node lifecycle calls come from another thread.
    lock: threading.RLock = field(default_factory=threading.RLock)


def error_status(error: MilvusError) -> common_pb2.Status:
    """merr `Status(err)`: code, reason and the deprecated error_code."""
    old_code = OLD_ERROR_CODES.get(error.code, common_pb2.UnexpectedError)
    return common_pb2.Status(error_code=old_code, code=error.code, reason=error.message)


def to_rg_config(proto: rg_pb2.ResourceGroupConfig) -> RGConfig:
    return RGConfig(
        requests=proto.requests.node_num if proto.HasField("requests") else None,
        limits=proto.limits.node_num if proto.HasField("limits") else None,
        transfer_from=tuple(t.resource_group for t in proto.transfer_from),
        transfer_to=tuple(t.resource_group for t in proto.transfer_to),
        node_labels=tuple((kv.key, kv.value) for kv in proto.node_filter.node_labels),
    )


def to_rg_proto(config: RGConfig) -> rg_pb2.ResourceGroupConfig:
    return rg_pb2.ResourceGroupConfig(
        requests=rg_pb2.ResourceGroupLimit(node_num=config.req),
        limits=rg_pb2.ResourceGroupLimit(node_num=config.lim),
        transfer_from=[rg_pb2.ResourceGroupTransfer(resource_group=name) for name in config.transfer_from],
        transfer_to=[rg_pb2.ResourceGroupTransfer(resource_group=name) for name in config.transfer_to],
        node_filter=rg_pb2.ResourceGroupNodeFilter(
            node_labels=[common_pb2.KeyValuePair(key=k, value=v) for k, v in config.node_labels]
        ),
    )


@dataclass(frozen=True)
class AwaitMoves:
    """What a handler returns to make its RPC wait, with the lock released, until querycoord's tasks for `moves`
    finish (handlers.go `balanceSegments` with sync: `task.Wait` up to the segment task timeout)."""

    moves: tuple[Move, ...]


# Bytes per row of a field in a sealed segment (its raw data; Milvus's `mem_size` also counts indexes and
# overheads, so real figures are larger).
_FIXED_WIDTH = {schema_pb2.Bool: 1, schema_pb2.Int8: 1, schema_pb2.Int16: 2, schema_pb2.Int32: 4,
                schema_pb2.Int64: 8, schema_pb2.Float: 4, schema_pb2.Double: 8}
_BYTES_PER_DIM = {schema_pb2.FloatVector: 4.0, schema_pb2.Float16Vector: 2.0, schema_pb2.BFloat16Vector: 2.0,
                  schema_pb2.BinaryVector: 0.125, schema_pb2.Int8Vector: 1.0}


def row_bytes(schema: schema_pb2.CollectionSchema) -> int:
    """A row's raw size from the schema: fixed widths, vectors by dim, strings at their max_length."""
    total = 0.0
    for field_schema in schema.fields:
        params = {kv.key: kv.value for kv in field_schema.type_params}
        if field_schema.data_type in _FIXED_WIDTH:
            total += _FIXED_WIDTH[field_schema.data_type]
        elif field_schema.data_type in _BYTES_PER_DIM:
            total += _BYTES_PER_DIM[field_schema.data_type] * int(params.get("dim", "0") or 0)
        else:
            total += int(params.get("max_length", "64") or 64)
    return max(1, round(total))


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, as github.com/spaolacci/murmur3 `Sum32` computes it."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    rounded = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:rounded]):
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[rounded:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def channel_of(pk: int | str, channels: int) -> int:
    """typeutil `HashPK2Channels`: an int64 key by `Hash32Int64` (murmur3 of its 8 little-endian bytes), a string
    key by `HashString2Uint32` (crc32 in Milvus: here murmur3 too, UNVERIFIED), modulo the shard count."""
    data = pk.to_bytes(8, "little", signed=True) if isinstance(pk, int) else pk.encode()
    return murmur3_32(data) % channels


def rpc(response_type: type[Any], mutating: bool = False) -> Callable[[Handler], Handler]:
    """Fault injection, auth, write counting and merr error replies around one RPC handler.

    A handler returns either a `Status`, a dict of the response fields other than `status`, or `AwaitMoves`
    (the reply, a `Status`, comes once the moves are done).
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(self: MilvusServicer, request: Request, context: grpc.aio.ServicerContext) -> Any:
            controls = self.controls
            if controls.unavailable:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "milvus simulator is unavailable")
            await self.check_auth(context)
            if mutating:
                controls.write_rpcs[handler.__name__] += 1
            try:
                with controls.lock:
                    result = await handler(self, request, context)  # handlers never await inside
                if isinstance(result, AwaitMoves):
                    await self.wait_for_moves(result.moves)
                    result = None
            except MilvusError as error:
                status = error_status(error)
                return status if response_type is common_pb2.Status else response_type(status=status)
            if mutating:
                controls.on_change()
            if response_type is common_pb2.Status:
                return result if result is not None else common_pb2.Status()
            return response_type(status=common_pb2.Status(), **(result or {}))

        return wrapper

    return decorate


class MilvusServicer(milvus_pb2_grpc.MilvusServiceServicer):  # type: ignore[misc]
    """Implements the RPCs MilvusClient needs for resource groups, collections and loads.

    Every other RPC keeps the generated base behaviour: gRPC UNIMPLEMENTED.
    """

    def __init__(self, rm: ResourceManager, controls: ServerControls) -> None:
        self.rm = rm
        self.controls = controls

    @property
    def version(self) -> MilvusVersion:
        return self.rm.milvus_version

    async def wait_for_moves(self, moves: tuple[Move, ...]) -> None:
        """`task.Wait` (2.5): until every task succeeded; a failed one, or the segment task timeout, fails the call
        (the tasks left are cancelled with their context). The wording of these errors is UNVERIFIED."""
        deadline = time.monotonic() + self.controls.segment_task_timeout
        while True:
            with self.controls.lock:
                self.rm.advance()
                states = [self.rm.move_state(move) for move in moves]
                if all(states):
                    return
                failed = [m for m, state in zip(moves, states, strict=True) if state is False]
                timed_out = not failed and time.monotonic() > deadline
                if failed or timed_out:
                    self.rm.cancel_moves(moves)
                    reason = "task timeout" if timed_out else f"task of segment {failed[0].item} canceled"
                    raise MilvusError(Code.UNEXPECTED, "failed to balance segments: failed to wait all balance "
                                                       f"task finished: {reason}")
            await asyncio.sleep(0.005)

    async def check_auth(self, context: grpc.aio.ServicerContext) -> None:
        """Milvus's proxy AuthenticationInterceptor (plain gRPC status, not a merr Status)."""
        token = self.controls.token
        if token is None:
            return
        metadata = dict(context.invocation_metadata() or ())
        supplied = metadata.get("authorization")
        if supplied is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing authorization in header")
        expected = base64.b64encode(token.encode()).decode()
        if supplied != expected:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "auth check failure, please check username and password are correct",
            )

    # ------------------------------------------------------------------ connection
    @rpc(milvus_pb2.ConnectResponse)
    async def Connect(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return {"server_info": common_pb2.ServerInfo(build_tags=self.controls.version), "identifier": 1}

    @rpc(milvus_pb2.GetVersionResponse)
    async def GetVersion(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return {"version": self.controls.version}

    @rpc(milvus_pb2.CheckHealthResponse)
    async def CheckHealth(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return {"isHealthy": True}

    # ------------------------------------------------------------------ resource groups
    @rpc(common_pb2.Status, mutating=True)
    async def CreateResourceGroup(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        config = to_rg_config(request.config) if request.HasField("config") else None
        self.rm.create_resource_group(request.resource_group, config)

    @rpc(common_pb2.Status, mutating=True)
    async def UpdateResourceGroups(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        if not self.version.declarative_resource_groups:
            # measured on a real 2.3.5: grpc-go's answer for a method the server does not have
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "unknown method UpdateResourceGroups for service milvus.proto.milvus.MilvusService",
            )
        self.rm.update_resource_groups(
            {name: to_rg_config(config) for name, config in request.resource_groups.items()}
        )

    @rpc(common_pb2.Status, mutating=True)
    async def DropResourceGroup(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        self.rm.drop_resource_group(request.resource_group)

    @rpc(common_pb2.Status, mutating=True)
    async def TransferNode(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        self.rm.transfer_node(request.source_resource_group, request.target_resource_group, request.num_node)

    @rpc(common_pb2.Status, mutating=True)
    async def TransferReplica(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        self.rm.transfer_replica(
            request.source_resource_group,
            request.target_resource_group,
            request.collection_name,
            request.num_replica,
        )

    @rpc(milvus_pb2.ListResourceGroupsResponse)
    async def ListResourceGroups(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return {"resource_groups": self.rm.list_resource_groups()}

    @rpc(milvus_pb2.DescribeResourceGroupResponse)
    async def DescribeResourceGroup(
        self, request: Request, context: grpc.aio.ServicerContext
    ) -> dict[str, Any]:
        """proxy `DescribeResourceGroupTask` over querycoord services.go `DescribeResourceGroup` (2.5). A real
        2.3.5 answers an empty config and no nodes, whatever the group holds."""
        info = self.rm.describe_resource_group(request.resource_group)
        declarative = self.version.declarative_resource_groups
        group = milvus_pb2.ResourceGroup(
            name=info.name,
            capacity=info.capacity,
            num_available_node=info.num_available_node,
            num_loaded_replica=info.num_loaded_replica,
            num_outgoing_node=info.num_outgoing_node,
            num_incoming_node=info.num_incoming_node,
            config=to_rg_proto(info.config) if declarative else rg_pb2.ResourceGroupConfig(),
            nodes=[
                common_pb2.NodeInfo(node_id=n.node_id, address=n.address, hostname=n.hostname)
                for n in info.nodes
            ] if declarative else [],
        )
        return {"resource_group": group}

    # ------------------------------------------------------------------ collections
    @rpc(common_pb2.Status)
    async def CreateCollection(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        """`shards_num` channels (default: the simulator's), no segment: data comes by Insert and Flush. The schema
        is kept as sent (DescribeCollection answers it) and sizes the rows."""
        schema = schema_pb2.CollectionSchema.FromString(request.schema)
        self.rm.create_collection(request.collection_name, segments=0, channels=request.shards_num or None,
                                  schema=bytes(request.schema), row_bytes=row_bytes(schema))

    @rpc(common_pb2.Status)
    async def DropCollection(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        self.rm.drop_collection(request.collection_name)

    @rpc(milvus_pb2.BoolResponse)
    async def HasCollection(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return {"value": request.collection_name in self.rm.collections}

    @rpc(milvus_pb2.ShowCollectionsResponse)
    async def ShowCollections(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        collections_ = list(self.rm.collections.values())
        return {
            "collection_names": [c.name for c in collections_],
            "collection_ids": [c.collection_id for c in collections_],
        }

    @rpc(milvus_pb2.DescribeCollectionResponse)
    async def DescribeCollection(
        self, request: Request, context: grpc.aio.ServicerContext
    ) -> dict[str, Any]:
        collection = self.rm.collections.get(request.collection_name)
        if collection is None:
            raise MilvusError(100, f"collection not found[collection={request.collection_name}]")
        schema = schema_pb2.CollectionSchema.FromString(collection.schema)
        schema.name = collection.name
        return {
            "collectionID": collection.collection_id,
            "collection_name": collection.name,
            "shards_num": len(collection.channels),
            "virtual_channel_names": list(collection.channels),
            "schema": schema,
        }

    @rpc(milvus_pb2.MutationResult)
    async def Insert(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        """proxy `Insert` (2.5): the rows of each primary key go to the channel its hash picks (an auto_id key is
        allocated here); they wait in growing segments until a Flush seals them. No vector is kept."""
        collection = self.rm.get_collection(request.collection_name)
        schema = schema_pb2.CollectionSchema.FromString(collection.schema)
        primary = next((f for f in schema.fields if f.is_primary_key), None)
        sent = {data.field_name: data for data in request.fields_data}
        keys: list[int] | list[str]
        if primary is not None and primary.name in sent:
            scalars = sent[primary.name].scalars
            keys = list(scalars.long_data.data) or list(scalars.string_data.data)
        else:
            keys = [time.time_ns() + offset for offset in range(request.num_rows)]  # autoID: unique int64 keys
        per_channel = collections.Counter(collection.channels[channel_of(key, len(collection.channels))]
                                          for key in keys)
        self.rm.insert(collection.name, per_channel)
        ids = (schema_pb2.IDs(str_id=schema_pb2.StringArray(data=keys)) if keys and isinstance(keys[0], str)
               else schema_pb2.IDs(int_id=schema_pb2.LongArray(data=keys)))
        return {"IDs": ids, "succ_index": list(range(len(keys))), "insert_cnt": len(keys),
                "timestamp": time.time_ns() >> 2}

    @rpc(milvus_pb2.FlushResponse)
    async def Flush(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        """proxy `Flush`: datacoord seals and flushes every growing segment; the answer names them, and
        GetFlushState reports them flushed at once."""
        segments = {name: schema_pb2.LongArray(data=self.rm.flush(name)) for name in request.collection_names}
        flush_ts = time.time_ns() >> 2
        return {"coll_segIDs": segments, "flush_coll_segIDs": segments,
                "coll_flush_ts": dict.fromkeys(request.collection_names, flush_ts)}

    @rpc(milvus_pb2.GetFlushStateResponse)
    async def GetFlushState(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return {"flushed": True}

    @rpc(milvus_pb2.GetCollectionStatisticsResponse)
    async def GetCollectionStatistics(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        """pymilvus `num_entities`: the rows of the flushed segments (datacoord's count; rows not flushed yet are
        not counted, as pymilvus' own docstring shows: 0 after an insert, the rows after a flush)."""
        rows = self.rm.get_collection(request.collection_name).sealed_rows
        return {"stats": [common_pb2.KeyValuePair(key="row_count", value=str(rows))]}

    @rpc(common_pb2.Status)
    async def CreateIndex(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        """Accepted so that `MilvusClient.create_collection(name, dimension)` (quick setup) works."""
        self.rm.get_collection(request.collection_name)

    @rpc(milvus_pb2.DescribeIndexResponse)
    async def DescribeIndex(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        """Every index is built at once (there is no data)."""
        self.rm.get_collection(request.collection_name)
        finished = milvus_pb2.IndexDescription(index_name=request.index_name, state=common_pb2.Finished)
        return {"index_descriptions": [finished]}

    @rpc(common_pb2.Status, mutating=True)
    async def LoadCollection(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        self.rm.load_collection(request.collection_name, request.replica_number, request.resource_groups)

    @rpc(common_pb2.Status, mutating=True)
    async def ReleaseCollection(self, request: Request, context: grpc.aio.ServicerContext) -> None:
        self.rm.release_collection(request.collection_name)

    @rpc(milvus_pb2.GetLoadingProgressResponse)
    async def GetLoadingProgress(
        self, request: Request, context: grpc.aio.ServicerContext
    ) -> dict[str, Any]:
        loaded = self.rm.get_collection(request.collection_name).loaded
        return {"progress": 100 if loaded else 0, "refresh_progress": 100 if loaded else 0}

    @rpc(milvus_pb2.GetLoadStateResponse)
    async def GetLoadState(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        collection = self.rm.collections.get(request.collection_name)
        if collection is None:
            return {"state": common_pb2.LoadStateNotExist}
        return {"state": common_pb2.LoadStateLoaded if collection.loaded else common_pb2.LoadStateNotLoad}

    @rpc(milvus_pb2.GetReplicasResponse)
    async def GetReplicas(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        """querycoord services.go `GetReplicas`: RW nodes, the group, outbound (RO nodes now in other groups)
        and per channel its delegator (leader)."""
        name = request.collection_name or next(
            (c.name for c in self.rm.collections.values() if c.collection_id == request.collectionID), ""
        )
        collection = self.rm.get_collection(name)
        replicas = []
        for replica in self.rm.replicas_of(name):
            outbound: collections.Counter[str] = collections.Counter()
            for node_id in replica.ro_nodes:
                group = self.rm.group_of(node_id)
                if group is not None and group != replica.resource_group:
                    outbound[group] += 1
            shards = [
                milvus_pb2.ShardReplica(
                    leaderID=holding.node or 0,
                    leader_addr=self.rm.nodes[holding.node].address if holding.node in self.rm.nodes else "",
                    dm_channel_name=channel,
                    node_ids=sorted(replica.rw_nodes),
                )
                for channel, holding in sorted(replica.channels.items())
            ]
            replicas.append(
                milvus_pb2.ReplicaInfo(
                    replicaID=replica.replica_id,
                    collectionID=collection.collection_id,
                    node_ids=sorted(replica.rw_nodes),
                    resource_group_name=replica.resource_group,
                    num_outbound_node=dict(outbound),
                    shard_replicas=shards,
                )
            )
        return {"replicas": replicas}

    @rpc(milvus_pb2.GetQuerySegmentInfoResponse)
    async def GetQuerySegmentInfo(self, request: Request, context: grpc.aio.ServicerContext) -> dict[str, Any]:
        """proxy `GetQuerySegmentInfo` (pymilvus `list_loaded_segments` / `utility.get_query_segment_info`):
        the loaded sealed segments in querycoord's distribution, nodeIds merged over replicas, each with its
        rows and memory size."""
        infos = [
            milvus_pb2.QuerySegmentInfo(
                segmentID=info.segment_id,
                collectionID=info.collection_id,
                partitionID=info.partition_id,
                mem_size=info.mem_size,
                num_rows=info.rows,
                nodeID=info.node_ids[0],
                nodeIds=list(info.node_ids),
                state=common_pb2.Sealed,
                level=common_pb2.L1,
                is_sorted=True,
            )
            for info in self.rm.query_segment_info(request.collectionName)
        ]
        return {"infos": infos}

    @rpc(common_pb2.Status, mutating=True)
    async def LoadBalance(self, request: Request, context: grpc.aio.ServicerContext) -> AwaitMoves:
        """pymilvus `utility.load_balance(collection_name, src_node_id, dst_node_ids, sealed_segment_ids)`: see
        `ResourceManager.load_balance`; the reply waits for the moves (services.go `LoadBalance` calls
        `balanceSegments` with sync true, 2.5)."""
        moves = self.rm.load_balance(request.collectionName, request.src_nodeID, request.dst_nodeIDs,
                                     request.sealed_segmentIDs)
        return AwaitMoves(tuple(moves))


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """TLS for the gRPC port (Milvus's proxy: `common.security.tlsMode` 1 one-way, 2 mutual); mutual TLS
    requires a client certificate signed by `tls.client_ca`."""
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.client_ca.read_bytes() if tls.client_ca is not None else None,
        require_client_auth=tls.mutual,
    )


async def start_grpc_server(
    servicer: MilvusServicer, host: str, port: int, tls: ServerTls | None = None
) -> tuple[grpc.aio.Server, int]:
    """Start the server, over TLS when `tls` is given; returns it with the bound port (port 0 = OS-assigned)."""
    server = grpc.aio.server()
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(servicer, server)
    address = f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, server_credentials(tls))
    await server.start()
    return server, bound
