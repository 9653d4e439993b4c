"""Serving capacity lost by the docs' scale-in (rg1 3 -> 2 out of default 1 / rg1 3 / rg2 1): operator vs manual.

For each seed, two fresh sandboxes (fast timings, as in the tests), scaled out to 5 query nodes, then:

(A) operator: the milvus-rg-operator runs; `rg1` is lowered to 2 and it converges to 4 pods.
(B) manual, the Milvus docs' practice by hand: configs through pymilvus `update_resource_groups`
    (`__pending_nodes` requests 0 / limits 10000, every group transferring from/to it), wait for Milvus,
    then lower rg1 to 2 and at once scale the StatefulSet to 4 (`kubectl scale`, via the kubernetes client).

The InvariantChecker (tests/integration/invariants.py) measures, during the scale-in only, the
group-node-seconds the watched groups spent below their requests, and counts pods deleted while their
node served a group. Prints a table per seed and the total.  Run: `python bench/scale_in_capacity.py
[--seeds 1 2 3 4 5]`.
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
TIMINGS: dict[str, Any] = {"pod_start_delay": 0.05, "check_interval": 0.2, "session_ttl": 1.0}


@dataclass
class Outcome:
    lost: float  # group-node-seconds below requests
    removed_serving: int  # pods deleted while their node served a group
    violations: int  # capacity episodes longer than the grace period


def new_sandbox(workdir: Path, seed: int) -> Sandbox:
    return Sandbox(SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=workdir, seed=seed,
                                 **TIMINGS))


def placement_is(sandbox: Sandbox, sizes: dict[str, int], replicas: int) -> bool:
    rm = sandbox.milvus.rm
    with sandbox.milvus.controls.lock:
        if any(len(rm.groups[g].nodes) != n if g in rm.groups else n for g, n in sizes.items()):
            return False
    store = sandbox.kube.store
    pods = store.list_objects(store.resource("v1/pods"), NAMESPACE, lambda _obj: True)
    return len(pods) == replicas and all(not p["metadata"].get("deletionTimestamp") for p in pods)


def outcome(checker: InvariantChecker) -> Outcome:
    return Outcome(checker.capacity_lost, len(checker.removal_violations), len(checker.capacity_violations))


async def with_operator(workdir: Path, seed: int) -> Outcome:
    sandbox = new_sandbox(workdir, seed)
    await sandbox.start()
    harness = OperatorHarness(sandbox)
    try:
        await harness.install(replicas=1)
        await harness.start_operator()
        await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                            group_manifest("rg1", 3), group_manifest("rg2", 1))
        await harness.wait_converged(SCALED_OUT, replicas=5)
        async with InvariantChecker(sandbox, groups=DECLARED, pending=PENDING) as checker:
            await harness.apply(group_manifest("rg1", 2))
            await harness.wait_converged(SCALED_IN, replicas=4)
        return outcome(checker)
    finally:
        await harness.close()
        await sandbox.stop()


def config(requests: int, limits: int | None = None) -> ResourceGroupConfig:
    return ResourceGroupConfig(requests={"node_num": requests}, limits={"node_num": limits or requests},
                               transfer_from=[{"resource_group": PENDING}],
                               transfer_to=[{"resource_group": PENDING}])


async def manual(workdir: Path, seed: int) -> Outcome:
    sandbox = new_sandbox(workdir, seed)
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
        await wait_for(lambda: placement_is(sandbox, SCALED_OUT, 5), timeout=30, message="scale-out")
        async with InvariantChecker(sandbox, groups=DECLARED, pending=PENDING) as checker:
            # Scale in: lower rg1, then at once `kubectl scale --replicas=4`.
            await client.update_resource_groups({"rg1": config(2)}, timeout=5)
            await asyncio.to_thread(apps.patch_namespaced_stateful_set_scale, STATEFULSET, NAMESPACE,
                                    {"spec": {"replicas": 4}})
            await wait_for(lambda: placement_is(sandbox, SCALED_IN, 4), timeout=30, interval=0.02,
                           message="manual scale-in")
        return outcome(checker)
    finally:
        await client.close()
        api.close()
        await sandbox.stop()


async def main(seeds: list[int]) -> int:
    logging.basicConfig(level=logging.ERROR)
    rows: list[tuple[int, Outcome, Outcome]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            operator = await with_operator(Path(tmp) / f"operator-{seed}", seed)
            by_hand = await manual(Path(tmp) / f"manual-{seed}", seed)
            rows.append((seed, operator, by_hand))
    print("scale-in rg1 3 -> 2 (default 1, rg2 1): group-node-seconds below requests, during the scale-in")
    print(f"{'seed':>6} | {'operator':>10} {'removed*':>8} {'>grace':>6} | {'manual':>10} {'removed*':>8} "
          f"{'>grace':>6}")
    for seed, a, b in rows:
        print(f"{seed:>6} | {a.lost:>10.4f} {a.removed_serving:>8} {a.violations:>6} | {b.lost:>10.4f} "
              f"{b.removed_serving:>8} {b.violations:>6}")
    total_a = Outcome(sum(r[1].lost for r in rows), sum(r[1].removed_serving for r in rows),
                      sum(r[1].violations for r in rows))
    total_b = Outcome(sum(r[2].lost for r in rows), sum(r[2].removed_serving for r in rows),
                      sum(r[2].violations for r in rows))
    print(f"{'total':>6} | {total_a.lost:>10.4f} {total_a.removed_serving:>8} {total_a.violations:>6} | "
          f"{total_b.lost:>10.4f} {total_b.removed_serving:>8} {total_b.violations:>6}")
    print("removed*: pods deleted while their node served a group; >grace: groups below requests longer than "
          "2 x check_interval (0.4 s)")
    return 0 if total_a.removed_serving == 0 and total_a.violations == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    sys.exit(asyncio.run(main(parser.parse_args().seeds)))
