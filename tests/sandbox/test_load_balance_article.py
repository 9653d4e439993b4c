"""The load-balance article's example ("How Milvus Balances Query Load Across Nodes"), run as it is written against
the simulator over real pymilvus (its ORM API, blocking, so in a thread while the simulator serves in this loop).

Two changes, both forced by today's pymilvus (3.0.2): `utility.load_balance` takes the collection name first, and
`Collection.num_entities` no longer flushes (its own docstring shows 0 after an insert and the rows after
`flush()`), so the segments the article seals with `num_entities` are sealed by an explicit `collection.flush()`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility

from milvus_rg_sandbox.milvus.simulator import MilvusSimulator

from .milvus_helpers import sim_factory

__all__ = ["sim_factory"]  # a fixture imported for pytest

# The article's API is pymilvus' ORM, deprecated since 3.0 (removed in 3.1): the point is to run it as written.
pytestmark = pytest.mark.filterwarnings("ignore::pymilvus.decorators.PyMilvusDeprecationWarning")

ALIAS = "default"
ROWS = 100_000
ROW_BYTES = 8 + 2 * 4  # an INT64 key and a 2-dim FLOAT_VECTOR: the simulator sizes segments by their raw data


def the_article(sim: MilvusSimulator) -> dict[str, Any]:
    """The article's code, step by step; returns what it prints."""
    connections.connect(alias=ALIAS, host=sim.host, port=str(sim.grpc_port))
    try:
        pk_field = FieldSchema(name="id", dtype=DataType.INT64, is_primary=True)
        vector_field = FieldSchema(name="vector", dtype=DataType.FLOAT_VECTOR, dim=2)
        schema = CollectionSchema(fields=[pk_field, vector_field], description="Try out load balance")
        collection_name = "try_load_balance"
        collection = Collection(name=collection_name, schema=schema, using=ALIAS, shards_num=2)
        data = [
            [i for i in range(ROWS)],
            [[random.random() for _ in range(2)] for _ in range(ROWS)],
        ]
        inserted = collection.insert(data)
        collection.load()
        before_flush = collection.num_entities
        collection.flush()  # what `num_entities` did in pymilvus 2.0
        entities = collection.num_entities
        segments = utility.get_query_segment_info(collection_name)
        moved = segments[0]
        source = moved.nodeID
        target = next(node for node in sim.rm.nodes if node != source)
        utility.load_balance(collection_name, src_node_id=source, dst_node_ids=[target],
                             sealed_segment_ids=[moved.segmentID])
        after = utility.get_query_segment_info(collection_name)
        return {"inserted": inserted.insert_count, "before_flush": before_flush, "entities": entities,
                "segments": segments, "moved": moved.segmentID, "target": target, "after": after}
    finally:
        connections.disconnect(ALIAS)


async def test_the_articles_example_runs_as_written(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(seed=3)
    for index in range(2):  # the article's query nodes 28 and 29
        sim.add_node(f"querynode-{index}", f"10.0.0.{index}:21123")

    printed = await asyncio.to_thread(the_article, sim)

    assert printed["inserted"] == ROWS
    assert printed["before_flush"] == 0 and printed["entities"] == ROWS
    segments = printed["segments"]
    # one sealed segment per shard, about half the rows each (the article: 49937 and 50063)
    assert len(segments) == 2 and sum(s.num_rows for s in segments) == ROWS
    assert all(40_000 < s.num_rows < 60_000 for s in segments)
    assert all(s.mem_size == s.num_rows * ROW_BYTES and s.state == 3 for s in segments)  # 3: Sealed
    after = {s.segmentID: s for s in printed["after"]}
    assert after[printed["moved"]].nodeID == printed["target"]
    assert list(after[printed["moved"]].nodeIds) == [printed["target"]], "a move, not a copy"
    assert sim.unserved_segments() == []
