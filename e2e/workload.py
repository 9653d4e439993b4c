"""The e2e workload (e2e/run.sh): a small collection loaded into one resource group, then searched without
pause while the scenario scales the query nodes. The first failed search ends the loop with exit status 1.

    python e2e/workload.py load --uri URI --collection NAME --resource-group GROUP
    python e2e/workload.py search --uri URI --collection NAME --stop-file PATH
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from pymilvus import DataType, MilvusClient

DIMENSION = 8
ROWS = 2_000
TOP_K = 5
CONNECT_SECONDS = 120.0  # the port-forward and the proxy may take a moment to answer
SEARCH_INTERVAL = 0.2  # seconds between searches: a steady trickle, not a load test
SEARCH_TIMEOUT = 10.0


def connect(uri: str) -> MilvusClient:
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        try:
            return MilvusClient(uri=uri, timeout=10)
        except Exception as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"no Milvus at {uri} after {CONNECT_SECONDS:.0f} s: {error}") from error
            time.sleep(2)


def vector(rng: random.Random) -> list[float]:
    return [rng.random() for _ in range(DIMENSION)]


def load(client: MilvusClient, collection: str, group: str) -> None:
    """Create `collection` anew, fill it, index it and load one replica into `group`."""
    if client.has_collection(collection):
        client.drop_collection(collection)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIMENSION)
    client.create_collection(collection, schema=schema)
    rng = random.Random(collection)
    client.insert(collection, [{"id": i, "vector": vector(rng)} for i in range(ROWS)])
    client.flush(collection)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_index(collection, index)
    client.load_collection(collection, replica_number=1, resource_groups=[group])
    print(f"{collection}: {ROWS} rows loaded into {group}", flush=True)


def search(client: MilvusClient, collection: str, stop_file: Path) -> int:
    rng = random.Random()
    searches = 0
    started = time.monotonic()
    while not stop_file.exists():
        try:
            hits = client.search(collection, data=[vector(rng)], limit=TOP_K, timeout=SEARCH_TIMEOUT)
            if len(hits[0]) != TOP_K:
                raise RuntimeError(f"{len(hits[0])} hits instead of {TOP_K}")
        except Exception as error:
            print(f"{collection}: search {searches + 1} failed after {time.monotonic() - started:.0f} s: {error}",
                  file=sys.stderr, flush=True)
            return 1
        searches += 1
        time.sleep(SEARCH_INTERVAL)
    print(f"{collection}: {searches} searches in {time.monotonic() - started:.0f} s, none failed", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("load", "search"):
        command = commands.add_parser(name)
        command.add_argument("--uri", required=True)
        command.add_argument("--collection", required=True)
    commands.choices["load"].add_argument("--resource-group", required=True)
    commands.choices["search"].add_argument("--stop-file", type=Path, required=True)
    args = parser.parse_args()
    client = connect(args.uri)
    try:
        if args.command == "load":
            load(client, args.collection, args.resource_group)
            return 0
        return search(client, args.collection, args.stop_file)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
