"""Writes and passes per scenario step, against the minimum each step needs (actual / minimum).

The real operator on a sandbox (in a process of its own): a pool with rg-a (requests 1) and rg-b
(requests 2), 3 pods. Then each step is applied and the operator left to settle (no pass for 1.5 s);
every pass's writes come from the reconciler's own report (`PoolReconciler.last_report`), grouped by
what they write. The minimum of a step is what an ideal operator must write:

- rg-a requests 1 -> 2 (3 -> 4 pods): 1 Milvus update, 1 StatefulSet scale, 1 label patch (the new pod,
  once, with its final placement), 2 pool status patches (progressing, then converged), 2 rg-a status
  patches (waiting for its node, then converged), 2 events (GroupsUpdated, ScaledOut); 2 passes.
- rg-b limits 2 -> 3 (config only): 1 Milvus update, 1 event (GroupsUpdated: every Milvus write has
  one), 1 rg-b status patch (its applied config), 1 pool status patch (groups[].limits); 1 pass.
- resync with nothing to do: 0 writes, 1 pass.

Each column must equal its minimum: fewer writes (a required write missing) is a miss as much as more.
Passes after the last one that wrote are echoes (the operator reacting to its own writes); the target
is at most one.  Run: `python bench/writes.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import NAMESPACE, POOL, Operator, PassRecord, group_manifest, pool_manifest, sandbox_process, wait_until

# How the reconciler's report names each write (its first words; both the per-step summaries of HEAD
# f968638 and the action summaries of core/plan.py) -> the column it is counted in.
WRITE_PREFIXES = (
    ("milvus ", "milvus"), ("create_resource_group", "milvus"), ("update_resource_groups", "milvus"),
    ("drop_resource_group", "milvus"), ("suspend node", "milvus"), ("resume node", "milvus"),
    ("scale ", "scale"), ("label pod", "labels"),
    ("status querynodepools", "pool status"), ("status of QueryNodePool", "pool status"),
    ("status resourcegroups", "group status"), ("status of ResourceGroup", "group status"),
    ("event", "event"),
)
CATEGORIES = tuple(dict.fromkeys([*(name for _, name in WRITE_PREFIXES), "other"]))


def category(write: str) -> str:
    return next((name for prefix, name in WRITE_PREFIXES if write.startswith(prefix)), "other")


@dataclass
class Step:
    name: str
    minimum: dict[str, int]
    minimum_passes: int
    apply: Callable[[Operator], Awaitable[None]]


@dataclass
class StepResult:
    step: Step
    passes: list[PassRecord]

    def writes(self) -> collections.Counter[str]:
        return collections.Counter(category(w) for p in self.passes for w in p.writes)

    def columns(self) -> list[tuple[str, int, int]]:
        """(column, actual writes, minimum) for every column."""
        writes = self.writes()
        return [(c, writes.get(c, 0), self.step.minimum.get(c, 0)) for c in CATEGORIES]

    def echo_passes(self) -> int:
        writing = [i for i, p in enumerate(self.passes) if p.writes]
        return len(self.passes) - (writing[-1] + 1) if writing else max(len(self.passes) - 1, 0)


def steps(endpoints: dict[str, str]) -> list[Step]:
    async def scale_out(op: Operator) -> None:
        await op.apply(group_manifest("rg-a", 2))

    async def limits(op: Operator) -> None:
        await op.apply(group_manifest("rg-b", 2, limits={"nodeNum": 3}))

    async def resync(op: Operator) -> None:
        op.scheduler.trigger(NAMESPACE, POOL)

    return [
        Step("rg-a requests 1 -> 2 (3 -> 4 pods)",
             {"milvus": 1, "scale": 1, "labels": 1, "pool status": 2, "group status": 2, "event": 2}, 2, scale_out),
        Step("rg-b limits 2 -> 3 (config only)", {"milvus": 1, "pool status": 1, "group status": 1, "event": 1}, 1,
             limits),
        Step("resync, nothing to do", {}, 1, resync),
    ]


async def run_step(op: Operator, step: Step) -> StepResult:
    first = len(op.passes)
    await step.apply(op)
    await wait_until(lambda: len(op.passes) > first, timeout=60, what=f"{step.name}: a pass")
    await wait_until(op.pool_ready, timeout=120, interval=0.1, what=f"{step.name}: pool Ready")
    await op.quiet(timeout=120)
    return StepResult(step, op.passes[first:])


def print_table(results: list[StepResult]) -> None:
    print("writes per scenario step: actual / minimum (from the reconciler's report of every pass)")
    header = f"{'step':<36} | " + " | ".join(f"{c:>12}" for c in CATEGORIES) + \
        f" | {'total':>9} | {'passes':>7} | {'echo':>4}"
    print(header)
    print("-" * len(header))
    for result in results:
        writes = result.writes()
        cells = [f"{writes.get(c, 0):>5} / {result.step.minimum.get(c, 0):<4}" for c in CATEGORIES]
        total, minimum = sum(writes.values()), sum(result.step.minimum.values())
        ratio = f"{total / minimum:.1f}" if minimum else ("1.0" if total == 0 else "inf")
        print(f"{result.step.name:<36} | " + " | ".join(cells) +
              f" | {total:>3}/{minimum:<2} {ratio:>3} | {len(result.passes):>3} / {result.step.minimum_passes:<1} | "
              f"{result.echo_passes():>4}")
    worst = max((sum(r.writes().values()) / max(sum(r.step.minimum.values()), 1) for r in results), default=0)
    # Judged column by column: a missing required write (fewer than the minimum) is a miss as much as an extra
    # one, and one must not hide the other in the step's total.
    missing = [f"{r.step.name}: {c} {got}/{want}" for r in results for c, got, want in r.columns() if got < want]
    extra = [f"{r.step.name}: {c} {got}/{want}" for r in results for c, got, want in r.columns() if got > want]
    verdict = "met" if not missing and not extra else "MISSED"
    details = "".join(f"; {label}: {', '.join(items)}" for label, items in (("missing", missing), ("extra", extra))
                      if items)
    print(f"target writes = minimum in every column: {verdict} (worst total ratio {worst:.1f}{details})")
    echoes = max((r.echo_passes() for r in results), default=0)
    print(f"target at most 1 pass after convergence: {'met' if echoes <= 1 else 'MISSED'} (worst {echoes})")
    other = sorted({w for r in results for p in r.passes for w in p.writes if category(w) == "other"})
    print(f"writes in the other column: {', '.join(other) or 'none'}")


async def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        async with sandbox_process(Path(tmp), query_nodes=1) as sandbox:
            op = Operator(sandbox.endpoints)
            await op.start()
            try:
                await op.apply(pool_manifest(sandbox.endpoints), group_manifest("rg-a", 1), group_manifest("rg-b", 2))
                await wait_until(op.pool_ready, timeout=120, interval=0.1, what="initial convergence")
                await op.quiet(timeout=120)
                results = [await run_step(op, step) for step in steps(sandbox.endpoints)]
            finally:
                await op.stop()
    print_table(results)
    return 0


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    sys.exit(asyncio.run(main()))
