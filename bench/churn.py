"""Operator RSS over a churn: is it flat? The real operator on a sandbox (in a process of its own).

The query-node StatefulSet starts at 1 pod; a pool and `--groups` groups (requests summing to `--pods`)
are applied and the operator converges (pool Ready, then no pass for 1.5 s). Then, for `--minutes`, one
change at a time, each awaited until the pool is Ready again with the state it asks for (at most
`--change-timeout` s), then a pause of `--pause` s, in this rotation (the pod count stays within one of
`--pods`):

1. a group's `requests.nodeNum` +1 (scale out: a pod added and placed);
2. the same group back -1 (scale in: a node drained, the highest-ordinal pod removed);
3. rg-0's `limits.nodeNum` raised by one, 4. then lowered back (config only);
5. a query-node pod deleted by hand (the StatefulSet recreates it, Milvus re-places its node);
6. a new group with requests 1 created (finalizer added, a pod added), 7. then deleted (drain, group
   dropped in Milvus, finalizer removed);
8. another pod deleted by hand.

Every `--sample-seconds` (and at the start and end of the churn): this process's RSS (the operator's:
the sandbox runs apart), the passes, writes and changes so far, and, to tell a leak from fragmentation,
C malloc's bytes in use and held (glibc `mallinfo2`), Python's allocated blocks, the objects the garbage
collector tracks and the threads. The bench keeps its pass records as two counters, so its own
bookkeeping does not grow; it reads pods as plain JSON (CoreV1Api's import alone is about 20 MB).

Flat means: the least-squares slope of RSS over the second half of the run is below 1 MB per minute.
The first half is warm-up (caches, connection pools, allocator arenas reach their working size). A
steady CPython process moves a few MB either way with no leak (arenas are returned only when empty,
collections run when they run), so over a 5-minute half 1 MB/min (5 MB) stands above that noise;
and a leak of 1 MB/min would double the 150 MB budget in under 3 hours. At about 20 changes a minute
(1,000 pods), that catches some 50 KB left behind per change.

Targets: RSS flat over a 10-minute churn; RSS <= 150 MB at 1,000 pods (<= 250 MB at 10,000).
Run: `python bench/churn.py [--pods 1000] [--groups 20] [--minutes 10]`; `--quick` (1 minute, 100 pods)
is a smoke run for development, not a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import (
    API_GROUP,
    NAMESPACE,
    PENDING,
    POOL,
    REQUEST_TIMEOUT,
    STATEFULSET,
    VERSION,
    Operator,
    group_manifest,
    peak_rss_mib,
    pool_manifest,
    rss_mib,
    sandbox_process,
    wait_until,
)
from operator_scale import RSS_TARGETS_MB, groups_for, verdict

FLAT_MB_PER_MINUTE = 1.0
STATE_LABEL = f"{API_GROUP}/state"  # docs/api.md: the operator's word on each pod
LIMITS_GROUP = "rg-0"  # the group whose limits change; the others scale in turn
SEED = 7

Probe = Callable[[], Awaitable[bool]]


async def pod_request(api: Any, method: str, name: str) -> dict[str, Any]:
    """GET or DELETE a query-node pod as plain JSON through the operator's ApiClient, as the operator's
    adapter does. Not CoreV1Api: its import alone adds about 20 MB and 65,000 objects to this process, which
    the operator never imports."""
    from milvus_rg_operator.adapters.kube import request_json

    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}"
    return dict(await asyncio.to_thread(request_json, api, method, path, timeout=REQUEST_TIMEOUT))


class MallocInfo(ctypes.Structure):
    """glibc's `struct mallinfo2` (all arenas)."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_mib() -> tuple[float, float]:
    """(in use, held from the system) by C malloc, in MiB; NaN without glibc >= 2.33. Python objects over
    512 bytes, the kubernetes client's, urllib3's, gRPC's and every thread's buffers live here: RSS that
    grows while these stay flat is held free memory (fragmentation), not a leak."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return float("nan"), float("nan")
    mallinfo2.restype = MallocInfo
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, (info.arena + info.hblkhd) / 2**20


@dataclass
class Sample:
    elapsed_s: float
    rss_mb: float
    malloc_used_mb: float
    malloc_held_mb: float
    passes: int
    writes: int
    changes: int
    blocks: int  # Python's allocator: blocks in use (every object, gc-tracked or not)
    objects: int  # objects the garbage collector tracks (containers)
    threads: int


@dataclass
class Tally:
    """Passes and writes so far; the operator's pass records are folded in and dropped as they come."""

    passes: int = 0
    writes: int = 0

    def fold(self, operator: Operator) -> None:
        records = operator.passes[:]
        del operator.passes[:len(records)]
        self.passes += len(records)
        self.writes += sum(len(record.writes) for record in records)

    def passes_so_far(self, operator: Operator) -> int:
        return self.passes + len(operator.passes)


@dataclass
class Churn:
    """The changes of the rotation and the state they leave: what the pool must show once each settles."""

    operator: Operator
    tally: Tally
    requests: dict[str, int]  # ResourceGroup name -> requests.nodeNum
    limits: dict[str, int] = field(default_factory=dict)  # ResourceGroup name -> limits.nodeNum, where set
    applied: collections.Counter[str] = field(default_factory=collections.Counter)
    settle_s: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    timed_out: collections.Counter[str] = field(default_factory=collections.Counter)
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    rounds: int = 0
    scaled: str = ""
    created: str = ""

    def rotation(self) -> list[Callable[[], Awaitable[tuple[str, Probe | None]]]]:
        return [self.scale_out, self.scale_in, self.raise_limits, self.lower_limits, self.delete_pod,
                self.create_group, self.delete_group, self.delete_pod]

    async def scale_out(self) -> tuple[str, Probe | None]:
        others = [name for name in self.requests if name != LIMITS_GROUP and not name.startswith("churn-")]
        self.scaled = others[self.rounds % len(others)]
        self.rounds += 1
        self.requests[self.scaled] += 1
        await self.operator.apply(group_manifest(self.scaled, self.requests[self.scaled]))
        return "requests +1 (scale out)", None

    async def scale_in(self) -> tuple[str, Probe | None]:
        self.requests[self.scaled] -= 1
        await self.operator.apply(group_manifest(self.scaled, self.requests[self.scaled]))
        return "requests -1 (scale in, drain)", None

    async def set_limits(self, extra: int) -> None:
        self.limits[LIMITS_GROUP] = self.requests[LIMITS_GROUP] + extra
        await self.operator.apply(group_manifest(LIMITS_GROUP, self.requests[LIMITS_GROUP],
                                                 limits={"nodeNum": self.limits[LIMITS_GROUP]}))

    async def raise_limits(self) -> tuple[str, Probe | None]:
        await self.set_limits(1)
        return "limits +1 (config only)", None

    async def lower_limits(self) -> tuple[str, Probe | None]:
        await self.set_limits(0)
        return "limits -1 (config only)", None

    async def create_group(self) -> tuple[str, Probe | None]:
        self.created = f"churn-{self.rounds}"
        self.requests[self.created] = 1
        await self.operator.apply(group_manifest(self.created, 1))
        return "group created (requests 1)", None

    async def delete_group(self) -> tuple[str, Probe | None]:
        from kubernetes.client import CustomObjectsApi

        name = self.created
        del self.requests[name]
        await asyncio.to_thread(CustomObjectsApi(self.operator.api).delete_namespaced_custom_object, API_GROUP, VERSION,
                                NAMESPACE, "resourcegroups", name, _request_timeout=REQUEST_TIMEOUT)

        async def gone() -> bool:
            try:
                await self.operator.get("resourcegroups", name)
            except Exception as exc:  # 404 once the finalizer is off; anything else: ask again
                return getattr(exc, "status", None) == 404
            return False
        return "group deleted (drain, finalizer)", gone

    async def delete_pod(self) -> tuple[str, Probe | None]:
        name = f"{STATEFULSET}-{self.rng.randrange(sum(self.requests.values()))}"
        old_uid = (await pod_request(self.operator.api, "GET", name))["metadata"]["uid"]
        await pod_request(self.operator.api, "DELETE", name)

        async def recreated() -> bool:
            try:
                pod = await pod_request(self.operator.api, "GET", name)
            except Exception:  # not recreated yet (404), or a slow API server: ask again
                return False
            # The operator labels a pod serving once Milvus placed its node in a group: the new pod is back.
            return pod["metadata"]["uid"] != old_uid and not pod["metadata"].get("deletionTimestamp") and \
                (pod["metadata"].get("labels") or {}).get(STATE_LABEL) == "serving"
        return "pod deleted by hand", recreated

    async def pool_settled(self) -> bool:
        """Ready, every replica there, and each group's applied config and node count as declared."""
        from milvus_rg_operator.core.names import default_group_name

        try:
            status = (await self.operator.get("querynodepools", POOL)).get("status") or {}
        except Exception:  # a saturated API server timing out: ask again
            return False
        total = sum(self.requests.values())
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []) or \
                {status.get(k) for k in ("desiredReplicas", "currentReplicas", "readyReplicas")} != {total}:
            return False
        shown = {g["name"]: g for g in status.get("groups") or [] if g["name"] != PENDING}
        wanted = {default_group_name(name): (n, self.limits.get(name, n), n) for name, n in self.requests.items()}
        return {name: (g.get("requests"), g.get("limits"), g.get("nodes")) for name, g in shown.items()} == wanted

    async def step(self, index: int, timeout: float) -> None:
        """Apply the rotation's `index`-th change and wait until the pool shows it settled."""
        started, passes = time.perf_counter(), self.tally.passes_so_far(self.operator)
        label, probe = await self.rotation()[index % len(self.rotation())]()
        self.applied[label] += 1

        async def settled() -> bool:
            return self.tally.passes_so_far(self.operator) > passes and (probe is None or await probe()) and \
                await self.pool_settled()
        try:
            await wait_until(settled, timeout=timeout, interval=0.2, what=label)
        except TimeoutError:
            self.timed_out[label] += 1
            return
        self.settle_s[label].append(time.perf_counter() - started)


def sample(elapsed: float, tally: Tally, operator: Operator, changes: int) -> Sample:
    rss, (used, held), blocks = rss_mib(), malloc_mib(), sys.getallocatedblocks()
    tally.fold(operator)  # then count objects: that list is the bench's own, briefly
    return Sample(elapsed, rss, used, held, tally.passes, tally.writes, changes, blocks, len(gc.get_objects()),
                  threading.active_count())


HEADER = (f"{'minute':>6} | {'RSS MB':>6} | {'malloc used/held MB':>19} | {'passes':>6} | {'writes':>6} | "
          f"{'changes':>7} | {'py blocks':>9} | {'gc objects':>10} | {'threads':>7}")


def print_row(s: Sample) -> None:
    malloc = f"{s.malloc_used_mb:.1f} / {s.malloc_held_mb:.1f}"
    print(f"{s.elapsed_s / 60:>6.1f} | {s.rss_mb:>6.1f} | {malloc:>19} | {s.passes:>6} | {s.writes:>6} | "
          f"{s.changes:>7} | {s.blocks:>9,} | {s.objects:>10,} | {s.threads:>7}", flush=True)


async def churn(operator: Operator, groups: list[tuple[str, int]], minutes: float, every: float,
                pause: float, change_timeout: float) -> tuple[list[Sample], Churn]:
    operator.passes.clear()  # count the churn's passes only
    tally = Tally()
    plan = Churn(operator, tally, dict(groups))
    samples: list[Sample] = []
    started = time.perf_counter()
    stop = asyncio.Event()

    def take() -> None:
        samples.append(sample(time.perf_counter() - started, tally, operator, plan.applied.total()))
        print_row(samples[-1])

    async def sampler() -> None:
        while not stop.is_set():
            take()
            due = started + len(samples) * every - time.perf_counter()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(due, 0.0)):
                    await stop.wait()

    print(HEADER)
    task = asyncio.create_task(sampler())
    index = 0
    while time.perf_counter() - started < minutes * 60:
        await plan.step(index, change_timeout)
        index += 1
        await asyncio.sleep(max(min(pause, started + minutes * 60 - time.perf_counter()), 0.0))  # the pace
    stop.set()
    await task
    if time.perf_counter() - started - samples[-1].elapsed_s > 1:
        take()
    return samples, plan


def print_verdict(samples: list[Sample], plan: Churn, pods: int) -> None:
    duration = samples[-1].elapsed_s
    second = samples[len(samples) // 2:]  # from the middle sample on (20 intervals: samples 10 to 20)
    slope = statistics.linear_regression([s.elapsed_s / 60 for s in second], [s.rss_mb for s in second]).slope \
        if len(second) >= 2 else float("nan")
    flat = slope < FLAT_MB_PER_MINUTE
    print("changes: from the change until the pool was Ready as declared")
    print(f"{'change':<34} | {'applied':>7} | {'median s':>8} | {'max s':>5} | {'timed out':>9}")
    for label, n in plan.applied.items():
        times = plan.settle_s[label] or [float("nan")]
        print(f"{label:<34} | {n:>7} | {statistics.median(times):>8.1f} | {max(times):>5.1f} | "
              f"{plan.timed_out[label]:>9}")
    print(f"RSS: {samples[0].rss_mb:.1f} MB at the start of churn, {samples[-1].rss_mb:.1f} MB at the end; "
          f"second half ({second[0].elapsed_s / 60:.1f}-{duration / 60:.1f} min, {len(second)} samples): "
          f"{slope:+.2f} MB/min (least squares), {second[-1].rss_mb - second[0].rss_mb:+.1f} MB end - middle; "
          f"flat (< {FLAT_MB_PER_MINUTE:.0f} MB/min): {verdict(flat)}")
    first, last = second[0], second[-1]
    held, used = last.malloc_held_mb - first.malloc_held_mb, last.malloc_used_mb - first.malloc_used_mb
    print(f"over the second half: RSS {last.rss_mb - first.rss_mb:+.1f} MB, malloc held {held:+.1f} MB (in use "
          f"{used:+.1f} MB), Python blocks {last.blocks - first.blocks:+,}, "
          f"gc objects {last.objects - first.objects:+,}, threads {last.threads - first.threads:+}")
    peak = max(s.rss_mb for s in samples)
    target = RSS_TARGETS_MB.get(pods)
    line = f"peak RSS during churn {peak:.1f} MB (getrusage's peak over the process's life: {peak_rss_mib():.1f} MB)"
    if target is not None:
        line += f"; RSS <= {target:.0f} MB at {pods:,} pods: {verdict(peak <= target)}"
    print(line)


async def main(pods: int, group_count: int | None, minutes: float, every: float, pause: float,
               change_timeout: float, timeout: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    groups = groups_for(pods, group_count)
    gc.collect()
    rss_before = rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        async with sandbox_process(Path(tmp), query_nodes=1) as sandbox:
            operator = Operator(sandbox.endpoints)
            await operator.start()
            try:
                started = time.perf_counter()
                await operator.apply(pool_manifest(sandbox.endpoints), *(group_manifest(n, r) for n, r in groups))
                ready = await wait_until(operator.pool_ready, timeout=timeout, interval=0.2,
                                         what=f"{pods} pods converged")
                settled = await operator.quiet(timeout=timeout) - started
                print(f"churn: the real operator, {pods:,} pods in {len(groups)} groups: Ready {ready:.1f} s, settled "
                      f"{settled:.1f} s, {len(operator.passes)} passes; RSS {rss_before:.0f} MB before the operator, "
                      f"{rss_mib():.0f} MB converged. Then {minutes:g} min of changes (pause {pause:g} s), sampled "
                      f"every {every:g} s:", flush=True)
                samples, plan = await churn(operator, groups, minutes, every, pause, change_timeout)
            finally:
                await operator.stop()
    print_verdict(samples, plan, pods)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1_000)
    parser.add_argument("--groups", type=int, help="default: 20 (2 below 100 pods)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between a settled change and the next")
    parser.add_argument("--change-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="initial convergence")
    parser.add_argument("--quick", action="store_true", help="1 minute, 100 pods, samples every 10 s (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.pods, args.minutes, args.sample_seconds = 100, 1.0, 10.0
    if (args.groups or 2) < 2:
        parser.error("--groups: at least 2 (rg-0's limits change, the others scale)")
    sys.exit(asyncio.run(main(args.pods, args.groups, args.minutes, args.sample_seconds, args.pause,
                              args.change_timeout, args.timeout)))
