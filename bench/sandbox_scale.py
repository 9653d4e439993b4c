"""The sandbox's own scale-up, without the operator: a query-node StatefulSet raised from 0 to N replicas
(one PATCH of /scale over HTTP, as `kubectl scale` does), until N pods are Ready and N query nodes are
registered in Milvus. Prints wall time, this process's CPU time and the slowest of a few pod PATCHes sent
over HTTP while the scale-up runs (what a client of the API server feels).

Target: 0 -> 1,000 pods in under 20 s.  Run: `python bench/sandbox_scale.py [--pods 1000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import wait_until
from milvus_rg_sandbox.kube.store import ObjectStore
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

NAMESPACE = "default"
STATEFULSET = "milvus-querynode"
TARGET_SECONDS = 20.0


@dataclass
class ScaleResult:
    pods: int
    wall: float
    cpu: float
    slowest_patch: float


def ready_pods(sandbox: Sandbox) -> int:
    store = sandbox.kube.store
    assert isinstance(store, ObjectStore)  # the embedded API server
    bucket = store._objects.get(store.resource("v1/pods").storage_key, {})  # read-only peek, no copies
    return sum(1 for pod in bucket.values()
               if any(c.get("type") == "Ready" and c.get("status") == "True"
                      for c in (pod.get("status") or {}).get("conditions") or []))


async def probe_patches(url: str, stop: asyncio.Event, durations: list[float]) -> None:
    """Label one pod now and then, as the operator does, and time each PATCH."""
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            started = time.perf_counter()
            async with http.patch(f"{url}/api/v1/namespaces/{NAMESPACE}/pods/{STATEFULSET}-0",
                                  json={"metadata": {"labels": {"probe": str(len(durations))}}},
                                  headers={"Content-Type": "application/merge-patch+json"}) as reply:
                if reply.status == 200:
                    durations.append(time.perf_counter() - started)
            await asyncio.sleep(0.5)


async def scale_up(pods: int, timeout: float) -> ScaleResult:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=Path(tmp)))
        await sandbox.start()
        try:
            await sandbox.create_query_node_statefulset(name=STATEFULSET, replicas=1, namespace=NAMESPACE)
            await wait_until(lambda: ready_pods(sandbox) >= 1, timeout=10, what="the first pod", interval=0.02)
            url = str(sandbox.kube.url).rstrip("/")
            stop = asyncio.Event()
            durations: list[float] = []
            started, cpu_started = time.perf_counter(), time.process_time()
            async with aiohttp.ClientSession() as http, http.patch(
                    f"{url}/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/{STATEFULSET}/scale",
                    json={"spec": {"replicas": pods}}, headers={"Content-Type": "application/merge-patch+json"},
            ) as reply:
                reply.raise_for_status()
            prober = asyncio.create_task(probe_patches(url, stop, durations))
            try:
                await wait_until(lambda: ready_pods(sandbox) >= pods and len(sandbox.milvus.rm.nodes) >= pods,
                                 timeout=timeout, what=f"{pods} pods ready and registered")
                wall = time.perf_counter() - started
            except TimeoutError:
                wall = float("inf")
            cpu = time.process_time() - cpu_started
            stop.set()
            await prober
            return ScaleResult(pods, wall, cpu, max(durations, default=0.0))
        finally:
            await sandbox.stop()


def print_table(results: list[ScaleResult]) -> bool:
    print("sandbox scale-up: StatefulSet 0 -> N pods, all Ready and registered in Milvus (no operator)")
    print(f"{'pods':>6} | {'wall s':>8} | {'CPU s':>7} | {'slowest pod PATCH ms':>20} | target")
    ok = True
    for r in results:
        verdict = ""
        if r.pods == 1_000:
            met = r.wall < TARGET_SECONDS
            ok = ok and met
            verdict = f"< {TARGET_SECONDS:.0f} s: {'met' if met else 'MISSED'}"
        print(f"{r.pods:>6,} | {r.wall:>8.1f} | {r.cpu:>7.1f} | {r.slowest_patch * 1000:>20.0f} | {verdict}")
    return ok


async def main(pod_counts: list[int], timeout: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    results = [await scale_up(n, timeout) for n in pod_counts]
    print_table(results)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, nargs="+", default=[1_000])
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.pods, args.timeout)))
