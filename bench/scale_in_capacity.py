"""Serving capacity lost by the docs' scale-in (rg1 3 -> 2 out of default 1 / rg1 3 / rg2 1): operator vs manual.

For each seed, two fresh sandboxes (fast timings, as in the tests), scaled out to 5 query nodes, then:

(A) operator: the milvus-rg-operator runs; `rg1` is lowered to 2 and it converges to 4 pods.
(B) manual, the Milvus docs' practice by hand: configs through pymilvus `update_resource_groups`
    (`__pending_nodes` requests 0 / limits 10000, every group transferring from/to it), wait for Milvus,
    then lower rg1 to 2 and at once scale the StatefulSet to 4 (`kubectl scale`, via the kubernetes client).

Milvus's own timing divided by `--time-scale` (default 10: resource check every 1 s instead of 10 s,
session TTL 6 s, 0.1 s to move one segment or channel, 0.5 s to load one), with collections loaded
into every group before the scale-in (`books` 2 replicas in rg1, `films` in rg2, `songs` in the default
group).

The InvariantChecker (tests/integration/invariants.py) measures, during the scale-in only, the
group-node-seconds the watched groups spent below their requests, and counts pods deleted while their
node served a group or still held data; the simulator measures the (replica, segment)-seconds no live
process served. Prints a table per seed and the total.  Run: `python bench/scale_in_capacity.py
[--seeds 1 2 3 4 5] [--time-scale 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/ helpers

from kubernetes.client import AppsV1Api
from pymilvus import AsyncMilvusClient
from pymilvus.client.types import ResourceGroupConfig
from tests.integration.harness import (
    NAMESPACE,
    STATEFULSET,
    OperatorHarness,
    group_manifest,
    pool_manifest,
)
from tests.integration.invariants import InvariantChecker
from tests.support import wait_for

from milvus_rg_operator.adapters.kube import new_api_client
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"
# The requests the user declares after the scale-in: capacity is measured against intent, not against
# Milvus's momentary config (which the operator raises by one while it adds a replacement).
DECLARED = {DEFAULT: 1, "rg1": 2, "rg2": 1}
SCALED_OUT = {DEFAULT: 1, "rg1": 3, "rg2": 1, PENDING: 0}
SCALED_IN = {DEFAULT: 1, "rg1": 2, "rg2": 1, PENDING: 0}
# Milvus's defaults (docs/sandbox.md): check interval 10 s, session TTL 60 s, ~1 s per moved item, ~5 s load.
MILVUS_TIMINGS: dict[str, float] = {"check_interval": 10.0, "session_ttl": 60.0, "balance_delay": 1.0,
                                    "load_time": 5.0}
COLLECTIONS = (("books", 2, "rg1", 6, 2), ("films", 1, "rg2", 4, 1), ("songs", 1, DEFAULT, 3, 1))


def timings(time_scale: float) -> dict[str, Any]:
    return {"pod_start_delay": 0.05, **{k: v / time_scale for k, v in MILVUS_TIMINGS.items()}}


@dataclass
class Outcome:
    lost: float  # group-node-seconds below requests
    removed_serving: int  # pods deleted while their node served a group or held data
    violations: int  # capacity episodes longer than the grace period
    unserved: float  # (replica, segment)-seconds no live process served


def new_sandbox(workdir: Path, seed: int, time_scale: float) -> Sandbox:
    return Sandbox(SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=workdir, seed=seed,
                                 **timings(time_scale)))


async def load_collections(sandbox: Sandbox) -> float:
    """Load every collection and wait until all is served; returns the unserved segment-seconds so far."""
    for name, replicas, group, segments, channels in COLLECTIONS:
        sandbox.milvus.load_collection(name, replica_number=replicas, resource_groups=[group], segments=segments,
                                       channels=channels)
    await wait_for(lambda: not sandbox.milvus.unserved_segments(), timeout=60, message="collections loaded")
    return sandbox.milvus.unserved_segment_seconds()


def placement_is(sandbox: Sandbox, sizes: dict[str, int], replicas: int) -> bool:
    rm = sandbox.milvus.rm
    with sandbox.milvus.controls.lock:
        if any(len(rm.groups[g].nodes) != n if g in rm.groups else n for g, n in sizes.items()):
            return False
    store = sandbox.kube.store
    pods = store.list_objects(store.resource("v1/pods"), NAMESPACE, lambda _obj: True)
    return len(pods) == replicas and all(not p["metadata"].get("deletionTimestamp") for p in pods)


def outcome(checker: InvariantChecker, sandbox: Sandbox, unserved_before: float) -> Outcome:
    removed = {v.pod for v in checker.removal_violations} | {v.split()[0] for v in checker.data_violations}
    return Outcome(checker.capacity_lost, len(removed),
                   len(checker.capacity_violations), sandbox.milvus.unserved_segment_seconds() - unserved_before)


async def with_operator(workdir: Path, seed: int, time_scale: float) -> Outcome:
    sandbox = new_sandbox(workdir, seed, time_scale)
    await sandbox.start()
    harness = OperatorHarness(sandbox)
    try:
        await harness.install(replicas=1)
        await harness.start_operator()
        await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                            group_manifest("rg1", 3), group_manifest("rg2", 1))
        await harness.wait_converged(SCALED_OUT, replicas=5, timeout=120)
        before = await load_collections(sandbox)
        async with InvariantChecker(sandbox, groups=DECLARED, pending=PENDING) as checker:
            await harness.apply(group_manifest("rg1", 2))
            await harness.wait_converged(SCALED_IN, replicas=4, timeout=300)
            await wait_for(lambda: not sandbox.milvus.unserved_segments(), timeout=120, message="all served")
        return outcome(checker, sandbox, before)
    finally:
        await harness.close()
        await sandbox.stop()


def config(requests: int, limits: int | None = None) -> ResourceGroupConfig:
    return ResourceGroupConfig(requests={"node_num": requests}, limits={"node_num": limits or requests},
                               transfer_from=[{"resource_group": PENDING}],
                               transfer_to=[{"resource_group": PENDING}])


async def manual(workdir: Path, seed: int, time_scale: float) -> Outcome:
    sandbox = new_sandbox(workdir, seed, time_scale)
    await sandbox.start()
    os.environ["KUBECONFIG"] = str(sandbox.kubeconfig_path)
    api = new_api_client()
    apps = AppsV1Api(api)
    client = AsyncMilvusClient(uri=sandbox.milvus.uri)
    try:
        await sandbox.create_query_node_statefulset(name=STATEFULSET, replicas=1, namespace=NAMESPACE)
        await wait_for(lambda: len(sandbox.milvus.rm.nodes) == 1, timeout=10, message="the first query node")
        # init_cluster: the pending group, then every group's config in one batch.
        for name in (PENDING, "rg1", "rg2"):
            await client.create_resource_group(name, timeout=5)
        pending = ResourceGroupConfig(requests={"node_num": 0}, limits={"node_num": 10000})
        await client.update_resource_groups({PENDING: pending, DEFAULT: config(1), "rg1": config(3),
                                             "rg2": config(1)}, timeout=5)
        # Scale out: configs first (done), then the query nodes.
        await asyncio.to_thread(apps.patch_namespaced_stateful_set_scale, STATEFULSET, NAMESPACE,
                                {"spec": {"replicas": 5}})
        await wait_for(lambda: placement_is(sandbox, SCALED_OUT, 5), timeout=120, message="scale-out")
        before = await load_collections(sandbox)
        async with InvariantChecker(sandbox, groups=DECLARED, pending=PENDING) as checker:
            # Scale in: lower rg1, then at once `kubectl scale --replicas=4`.
            await client.update_resource_groups({"rg1": config(2)}, timeout=5)
            await asyncio.to_thread(apps.patch_namespaced_stateful_set_scale, STATEFULSET, NAMESPACE,
                                    {"spec": {"replicas": 4}})
            await wait_for(lambda: placement_is(sandbox, SCALED_IN, 4), timeout=300, interval=0.02,
                           message="manual scale-in")
            await wait_for(lambda: not sandbox.milvus.unserved_segments(), timeout=300, message="all served")
        return outcome(checker, sandbox, before)
    finally:
        await client.close()
        api.close()
        await sandbox.stop()


def total(outcomes: list[Outcome]) -> Outcome:
    return Outcome(sum(o.lost for o in outcomes), sum(o.removed_serving for o in outcomes),
                   sum(o.violations for o in outcomes), sum(o.unserved for o in outcomes))


async def main(seeds: list[int], time_scale: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    rows: list[tuple[int, Outcome, Outcome]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            operator = await with_operator(Path(tmp) / f"operator-{seed}", seed, time_scale)
            by_hand = await manual(Path(tmp) / f"manual-{seed}", seed, time_scale)
            rows.append((seed, operator, by_hand))
    print(f"scale-in rg1 3 -> 2 (default 1, rg2 1), collections loaded, Milvus timing / {time_scale:g}: "
          "group-node-seconds below requests and segment-seconds not served, during the scale-in")
    header = f"{'node-s':>9} {'seg-s':>8} {'removed*':>8} {'>grace':>6}"
    print(f"{'seed':>6} | operator {header} | manual {header}")

    def cells(o: Outcome) -> str:
        return f"{o.lost:>9.4f} {o.unserved:>8.3f} {o.removed_serving:>8} {o.violations:>6}"

    for seed, a, b in rows:
        print(f"{seed:>6} | operator {cells(a)} | manual {cells(b)}")
    totals = [total([a for _, a, _ in rows]), total([b for _, _, b in rows])]
    print(f"{'total':>6} | operator {cells(totals[0])} | manual {cells(totals[1])}")
    print("node-s: group-node-seconds below the declared requests; seg-s: (replica, segment)-seconds no live "
          "process served; removed*: pods deleted while serving a group or holding data; >grace: groups below "
          f"requests longer than 2 x check_interval ({2 * MILVUS_TIMINGS['check_interval'] / time_scale:g} s)")
    ok = totals[0].removed_serving == 0 and totals[0].lost == 0 and totals[0].unserved == 0
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--time-scale", type=float, default=10.0,
                        help="divide Milvus's timing (check interval, session TTL, data moves) by this")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.seeds, arguments.time_scale)))
