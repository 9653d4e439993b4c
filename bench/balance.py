"""After a scale-out, how long until the new nodes hold data: Milvus's automatic balance against a triggered one.

For each run, a fresh sandbox with Milvus's own timing divided by `--time-scale` (default 10: balance checker every
0.3 s instead of 3 s, 0.1 s to move one segment instead of about 1 s, resource check every 1 s), the real operator,
`rg1` at 2 nodes holding `books` (one replica of `--segments` equal sealed segments), then `rg1` to 4 nodes:

- automatic: Milvus's balance checker (score-based, at most 5 moves a round per collection) fills the new nodes;
- triggered: Milvus's automatic balance is off (`queryCoord.autoBalance` false); once the pool is Ready with the new
  nodes, the annotation milvusrg.io/balance asks the operator for a balance (gRPC LoadBalance, one segment a call,
  `spec.balance.maxMovesPerPass` per pass).

Times are measured from the scale-out's apply until every node of the replica holds a segment ("data") and until
no two nodes differ by more than 30% of the fuller one ("balanced": what the Balanced condition asks with
`spec.balance.maxMemorySpreadPercent` 30; equal segments here, so counts stand for memory), in wall seconds and in
Milvus seconds (x time-scale). Figures to read, never a pass or fail:
`python bench/balance.py [--runs 3] [--segments 40] [--time-scale 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/ helpers

from tests.integration.harness import OperatorHarness, group_manifest, pool_manifest
from tests.support import wait_for

from milvus_rg_operator.adapters.kube import RESOURCE_GROUP_PLURAL
from milvus_rg_operator.api.models import ANNOTATION_BALANCE
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

PENDING = "__pending_nodes"
# Milvus's defaults (docs/sandbox.md): resource check 10 s, ~1 s per moved item, ~5 s load, balance checker 3 s,
# replica observer 60 s.
MILVUS_TIMINGS: dict[str, float] = {"check_interval": 10.0, "balance_delay": 1.0, "load_time": 5.0,
                                    "balance_check_interval": 3.0, "replica_check_interval": 60.0}


@dataclass
class Timing:
    data: float  # seconds from the scale-out until every node holds a segment
    done: float  # ... until no two nodes of the replica are more than 30% apart
    moves: int  # LoadBalance calls


def segments_per_node(sandbox: Sandbox) -> list[int]:
    rm = sandbox.milvus.rm
    with sandbox.milvus.controls.lock:
        (replica,) = rm.replicas_of("books")
        return sorted(sum(1 for h in replica.segments.values() if h.node == n and h.loading_on is None)
                      for n in replica.rw_nodes)


def balanced(counts: list[int], segments: int, nodes: int) -> bool:
    """Every node holds data and no two differ by more than 30% of the fuller (equal segments: counts are memory)."""
    return (len(counts) == nodes and sum(counts) == segments and min(counts) > 0
            and (max(counts) - min(counts)) / max(counts) <= 0.3)


async def run(workdir: Path, triggered: bool, segments: int, time_scale: float) -> Timing:
    config = SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=workdir, seed=3,
                           pod_start_delay=0.05, no_auto_balance=triggered,
                           **{k: v / time_scale for k, v in MILVUS_TIMINGS.items()})
    sandbox = Sandbox(config)
    await sandbox.start()
    harness = OperatorHarness(sandbox)
    try:
        await harness.install(replicas=1)
        await harness.start_operator()
        await harness.apply(pool_manifest(), group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, PENDING: 0}, replicas=2, timeout=120)
        sandbox.milvus.load_collection("books", replica_number=1, resource_groups=["rg1"], segments=segments,
                                       channels=1)
        await wait_for(lambda: balanced(segments_per_node(sandbox), segments, 2), timeout=120,
                       message="books spread over rg1's 2 nodes")
        started = time.monotonic()
        await harness.apply(group_manifest("rg1", 4))
        if triggered:
            await harness.wait_converged({"rg1": 4, PENDING: 0}, replicas=4, timeout=120)
            await harness.patch(RESOURCE_GROUP_PLURAL, "rg1", {"metadata": {"annotations": {ANNOTATION_BALANCE: "1"}}})
        await wait_for(lambda: len(counts := segments_per_node(sandbox)) == 4 and min(counts) > 0, timeout=600,
                       interval=0.01, message="every node holds data")
        data = time.monotonic() - started
        await wait_for(lambda: balanced(segments_per_node(sandbox), segments, 4), timeout=300, interval=0.01,
                       message="no two nodes 30% apart")
        return Timing(data, time.monotonic() - started, sandbox.milvus.write_rpcs["LoadBalance"])
    finally:
        await harness.close()
        await sandbox.stop()


def summary(label: str, timings: list[Timing], time_scale: float) -> str:
    def cell(values: list[float]) -> str:
        median = statistics.median(values)
        return f"{median:6.2f} s ({median * time_scale:6.1f} Milvus s) [{min(values):.2f}-{max(values):.2f}]"

    return (f"{label:<10} | data {cell([t.data for t in timings])} | balanced {cell([t.done for t in timings])} | "
            f"LoadBalance calls {statistics.median([t.moves for t in timings]):g}")


async def main(runs: int, segments: int, time_scale: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    results: dict[str, list[Timing]] = {"automatic": [], "triggered": []}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(runs):
            for mode in results:
                results[mode].append(await run(Path(tmp) / f"{mode}-{index}", mode == "triggered", segments,
                                               time_scale))
    print(f"rg1 2 -> 4 query nodes holding books (1 replica, {segments} segments), Milvus timing / {time_scale:g}, "
          f"{runs} run(s): median [min-max] from the scale-out's apply")
    for mode, timings in results.items():
        print(summary(mode, timings, time_scale))
    print("data: every node of the replica holds a segment; balanced: no two nodes more than 30% apart. The "
          "triggered balance starts once the pool is Ready with the new nodes.")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--time-scale", type=float, default=10.0,
                        help="divide Milvus's timing (checks, balance checker, data moves) by this")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.runs, arguments.segments, arguments.time_scale)))
