"""The real operator on a sandbox (in a process of its own) at 10, 1,000 and 10,000 query-node pods.

For each size: the query-node StatefulSet starts at 1 pod; a pool and its groups (requests summing to
the size) are applied and the operator scales out until the pool is Ready (convergence, wall time and
passes). Then, with nothing to do, 5 resync passes are triggered one at a time: CPU time of each pass
in this process (`time.process_time`, the operator's own work: the sandbox runs apart), its writes
(must be 0), this process's RSS, and the size of the pool object (its JSON, status included).

Targets: a pass with nothing to do <= 50 ms CPU at 1,000 pods with 0 writes; RSS <= 150 MB at 1,000
pods and <= 250 MB at 10,000; the pool object <= 64 KB at 10,000 pods; 1,000 pods converge in < 30 s.
Run: `python bench/operator_scale.py [--quick] [--pods 10 1000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Operator, group_manifest, pool_manifest, rss_mib, sandbox_process, wait_until

FULL_SIZES = [10, 1_000, 10_000]
QUICK_SIZES = [10, 1_000]
PASS_CPU_TARGET_MS = 50.0
RSS_TARGETS_MB = {1_000: 150.0, 10_000: 250.0}
POOL_SIZE_TARGET = 64 * 1024
CONVERGENCE_TARGET_S = 30.0


@dataclass
class ScaleRow:
    pods: int
    groups: int
    converge_s: float
    settled_s: float
    converge_passes: int
    converge_writes: int
    sandbox_cpu_s: float
    pass_cpu_ms: float
    pass_wall_ms: float
    steady_writes: int
    rss_mb: float
    rss_before_mb: float
    pool_bytes: int
    group_bytes: int


def groups_for(pods: int, count: int | None = None) -> list[tuple[str, int]]:
    count = count or (2 if pods < 100 else 20)
    per_group, extra = divmod(pods, count)
    return [(f"rg-{i}", per_group + (1 if i < extra else 0)) for i in range(count)]


async def one_size(pods: int, workdir: Path, timeout: float) -> ScaleRow:
    gc.collect()
    rss_before = rss_mib()
    async with sandbox_process(workdir, query_nodes=1) as sandbox:
        operator = Operator(sandbox.endpoints)
        await operator.start()
        try:
            groups = groups_for(pods)
            sandbox_cpu = sandbox.cpu_seconds()
            started = time.perf_counter()
            await operator.apply(pool_manifest(sandbox.endpoints),
                                 *(group_manifest(name, n) for name, n in groups))
            try:
                await wait_until(operator.pool_ready, timeout=timeout, interval=0.2, what=f"{pods} pods converged")
            except TimeoutError:
                pool = await operator.get("querynodepools", "milvus")
                return not_converged(pods, len(groups), operator, rss_before,
                                     len(json.dumps(pool, separators=(",", ":"))))
            converge = time.perf_counter() - started
            settled = await operator.quiet(timeout=timeout) - started
            sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu
            converge_passes = len(operator.passes)
            converge_writes = sum(len(p.writes) for p in operator.passes)
            records = [await operator.one_pass() for _ in range(5)]
            pool = await operator.get("querynodepools", "milvus")
            group = await operator.get("resourcegroups", groups[0][0])
            return ScaleRow(
                pods=pods, groups=len(groups), converge_s=converge, settled_s=settled, converge_passes=converge_passes,
                converge_writes=converge_writes, sandbox_cpu_s=sandbox_cpu,
                pass_cpu_ms=statistics.median(r.cpu for r in records) * 1000,
                pass_wall_ms=statistics.median(r.ended - r.started for r in records) * 1000,
                steady_writes=sum(len(r.writes) for r in records), rss_mb=rss_mib(), rss_before_mb=rss_before,
                pool_bytes=len(json.dumps(pool, separators=(",", ":"))),
                group_bytes=len(json.dumps(group, separators=(",", ":"))))
        finally:
            await operator.stop()


def not_converged(pods: int, groups: int, operator: Operator, rss_before: float, pool_bytes: int) -> ScaleRow:
    """A row for a size that never got Ready within the timeout: no steady state to measure; RSS and the
    pool's size are those of the moment it gave up."""
    nan = float("nan")
    return ScaleRow(pods=pods, groups=groups, converge_s=float("inf"), settled_s=float("inf"),
                    converge_passes=len(operator.passes), converge_writes=sum(len(p.writes) for p in operator.passes),
                    sandbox_cpu_s=nan, pass_cpu_ms=nan, pass_wall_ms=nan, steady_writes=-1, rss_mb=rss_mib(),
                    rss_before_mb=rss_before, pool_bytes=pool_bytes, group_bytes=-1)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_tables(rows: list[ScaleRow]) -> None:
    print("convergence: empty pool (1 pod) -> N pods (real operator, sandbox apart): until the pool is Ready, and "
          "until the operator settled (no pass for 1.5 s: labels written)")
    print(f"{'pods':>7} | {'groups':>6} | {'Ready s':>7} | {'settled s':>9} | {'passes':>6} | {'writes':>6} | "
          f"{'sandbox CPU s':>13} | target")
    for r in rows:
        target = (f"settled < {CONVERGENCE_TARGET_S:.0f} s: {verdict(r.settled_s < CONVERGENCE_TARGET_S)}"
                  if r.pods == 1_000 else "")
        if r.converge_s == float("inf"):
            target = f"not Ready within the timeout{' (MISSED)' if r.pods == 1_000 else ''}"
        print(f"{r.pods:>7,} | {r.groups:>6} | {r.converge_s:>7.1f} | {r.settled_s:>9.1f} | {r.converge_passes:>6} | "
              f"{r.converge_writes:>6} | "
              f"{r.sandbox_cpu_s:>13.1f} | {target}")
    print()
    print("steady state: a resync pass with nothing to do (median of 5; CPU = this process's CPU time)")
    print(f"{'pods':>7} | {'pass CPU ms':>11} | {'pass wall ms':>12} | {'writes':>6} | {'RSS MB':>6} | "
          f"{'RSS before':>10} | {'pool bytes':>10} | {'group bytes':>11} | targets")
    for r in rows:
        notes = []
        if r.converge_s == float("inf"):
            notes.append("not Ready within the timeout: no steady state (RSS and pool size when it gave up)")
        elif r.pods == 1_000:
            notes.append(f"CPU <= {PASS_CPU_TARGET_MS:.0f} ms: {verdict(r.pass_cpu_ms <= PASS_CPU_TARGET_MS)}")
        if r.pods in RSS_TARGETS_MB and r.converge_s != float("inf"):
            notes.append(f"RSS <= {RSS_TARGETS_MB[r.pods]:.0f}: {verdict(r.rss_mb <= RSS_TARGETS_MB[r.pods])}")
        if r.pods == 10_000:
            notes.append(f"pool <= 64 KB: {verdict(r.pool_bytes <= POOL_SIZE_TARGET)}")
        if r.steady_writes >= 0:
            notes.append(f"0 writes: {verdict(r.steady_writes == 0)}")
        print(f"{r.pods:>7,} | {r.pass_cpu_ms:>11.1f} | {r.pass_wall_ms:>12.1f} | {r.steady_writes:>6} | "
              f"{r.rss_mb:>6.0f} | {r.rss_before_mb:>10.0f} | {r.pool_bytes:>10,} | {r.group_bytes:>11,} | "
              f"{'; '.join(notes)}")
    print("RSS before: this process before the operator started (interpreter + bench + clients imported)")


async def main(sizes: list[int], timeout: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pods in sizes:
            rows.append(await one_size(pods, Path(tmp) / f"pods-{pods}", timeout))
            row = rows[-1]  # at once, so that a later size that hangs does not take these figures with it
            print(f"measured {pods:,} pods: Ready {row.converge_s:.1f} s, pass CPU {row.pass_cpu_ms:.1f} ms, "
                  f"RSS {row.rss_mb:.0f} MB, pool {row.pool_bytes:,} bytes", flush=True)
    print_tables(rows)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 pods")
    parser.add_argument("--pods", type=int, nargs="+")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.pods or (QUICK_SIZES if args.quick else FULL_SIZES), args.timeout)))
