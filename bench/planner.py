"""One planning step of the pure core at growing sizes: groups x query nodes.

A step is what one reconcile pass computes: `desired_configs` + `plan_milvus` + `plan_scale` +
`plan_pod_labels` + `pool_status` + every `group_status`, over a converged pool (every pod Ready,
registered, placed and labelled). Time is CPU time of this process (`time.process_time`): the machine
is shared, so wall time would measure the neighbours. Each size runs on a fresh `MilvusState`, so
the state's indexes are built inside the measured step, as in a real pass.

Prints a table with the time of each part, the growth per 10x in size, and the target (<= 100 ms at
1,000 groups x 10,000 nodes, each 10x costing at most about 10x); a missed target is printed as MISSED
with the profile's top entries.  Run: `python bench/planner.py [--quick]`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from milvus_rg_operator.core import conditions, configs, labels, scaling
from milvus_rg_operator.core.names import label_value
from milvus_rg_operator.core.types import (
    DEFAULT_GROUP,
    DEFAULT_GROUP_LIMIT,
    DeclaredGroup,
    DeclaredPool,
    GroupConfig,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    PodState,
    StatefulSetState,
)

PENDING = "__pending_nodes"
STS = "milvus-querynode"
TARGET_MS = 100.0
TARGET_SIZE = (1_000, 10_000)
FULL_SIZES = [(10, 100), (20, 1_000), (100, 1_000), (10, 10_000), (1_000, 10_000)]
QUICK_SIZES = [(10, 100), (20, 1_000), (100, 1_000), (10, 10_000)]
GROWTH_BASE_MS = 2.0  # below this, fixed costs and timer noise make a growth ratio meaningless
BUDGET_SECONDS = 20.0  # per size: a quadratic core must not hang the bench; it is sampled and scaled


@dataclass(frozen=True)
class World:
    pool: DeclaredPool
    groups: list[DeclaredGroup]
    sts: StatefulSetState
    pods: list[PodState]
    group_configs: dict[str, GroupConfig]
    members: dict[str, tuple[int, ...]]
    nodes: dict[int, MilvusNode]

    def milvus(self) -> MilvusState:
        """A fresh state (its cached indexes are built again, as in every real pass)."""
        return MilvusState({name: MilvusGroup(name, config, self.members.get(name, ()))
                            for name, config in self.group_configs.items()}, dict(self.nodes), True)


def converged_world(group_count: int, node_count: int) -> World:
    """`node_count` pods spread evenly over `group_count` groups, all serving and labelled."""
    pool = DeclaredPool("milvus", PENDING, 0, 0, None, STS)
    per_group, extra = divmod(node_count, group_count)
    groups = [DeclaredGroup(f"rg-{i}", "milvus", None, per_group + (1 if i < extra else 0), None, None, None)
              for i in range(group_count)]
    desired = configs.desired_configs(pool, groups)
    desired.setdefault(DEFAULT_GROUP, GroupConfig(0, DEFAULT_GROUP_LIMIT))
    members: dict[str, tuple[int, ...]] = {}
    nodes: dict[int, MilvusNode] = {}
    pods: list[PodState] = []
    ordinal = 0
    for group in groups:
        name = group.cr_name.replace("-", "_")
        ids = []
        for _ in range(group.requests):
            node_id, pod = 1_000 + ordinal, f"{STS}-{ordinal}"
            nodes[node_id] = MilvusNode(node_id, pod, f"127.0.{ordinal // 250}.{ordinal % 250 + 2}:21123", "Healthy")
            ids.append(node_id)
            pods.append(PodState(
                pod, ordinal, ready=True, terminating=False,
                labels={labels.LABEL_RESOURCE_GROUP: label_value(name), labels.LABEL_NODE_ID: str(node_id),
                        labels.LABEL_STATE: "serving"},
                annotations={labels.ANNOTATION_RESOURCE_GROUP: name}, created_at=0.0))
            ordinal += 1
        members[name] = tuple(ids)
    sts = StatefulSetState(STS, node_count, node_count)
    return World(pool, groups, sts, pods, desired, members, nodes)


def planning_step(world: World, timings: dict[str, float] | None = None, group_sample: int | None = None) -> None:
    """One pass's pure planning; `timings` collects CPU seconds per part. With `group_sample`, only that
    many `group_status` calls run and their time is scaled to every group."""
    def timed(part: str, work: Callable[[], Any]) -> Any:
        started = time.process_time()
        result = work()
        if timings is not None:
            timings[part] = timings.get(part, 0.0) + time.process_time() - started
        return result

    milvus = world.milvus()
    now = 1_000.0
    desired = timed("desired_configs", lambda: configs.desired_configs(world.pool, world.groups, {}))
    plan = timed("plan_milvus", lambda: configs.plan_milvus(desired, milvus, set()))
    replicas = scaling.desired_replicas(world.pool, world.groups)
    scale = timed("plan_scale", lambda: scaling.plan_scale(world.pool, world.groups, replicas, world.sts,
                                                           world.pods, milvus, (), milvus_plan_empty=plan.empty,
                                                           now=now))
    timed("plan_pod_labels", lambda: labels.plan_pod_labels(world.pods, milvus, world.pool.pending_group, set()))
    timed("pool_status", lambda: conditions.pool_status(
        world.pool, world.groups, replicas, world.sts, world.pods, milvus, scale, plan, generation=1,
        previous={}, now=now, scale_down=[], converged=True))
    sample = world.groups if group_sample is None else world.groups[:group_sample]
    started = time.process_time()
    # Pods by name once per pass, shared by every group's status (an older core takes the list).
    index = getattr(conditions, "pod_index", None)
    pods = index(world.pods) if index is not None else world.pods
    for group in sample:
        conditions.group_status(group, milvus, pods, plan, generation=1, previous={}, now=now)
    if timings is not None:
        timings["group_status"] = (time.process_time() - started) * len(world.groups) / max(len(sample), 1)


@dataclass
class Row:
    groups: int
    nodes: int
    total_ms: float
    parts_ms: dict[str, float]
    sampled: bool


def measure(group_count: int, node_count: int, runs: int) -> Row:
    world = converged_world(group_count, node_count)
    # A probe with 5 group_status calls decides whether the whole step fits the budget.
    probe: dict[str, float] = {}
    planning_step(world, probe, group_sample=min(5, group_count))
    sampled = sum(probe.values()) * runs > BUDGET_SECONDS
    results: list[dict[str, float]] = []
    for _ in range(1 if sampled else runs):
        timings: dict[str, float] = {}
        planning_step(world, timings, group_sample=min(5, group_count) if sampled else None)
        results.append(timings)
    parts = {part: statistics.median(r[part] for r in results) * 1000 for part in results[0]}
    return Row(group_count, node_count, sum(parts.values()), parts, sampled)


def status_bytes(world: World, *, joining: bool) -> tuple[int, int]:
    """JSON bytes of the pool's status and of the largest group's status; `joining`: no pod registered
    yet (every pod needs attention), the worst case for the pool's status."""
    pods = [replace(p, ready=False) for p in world.pods] if joining else world.pods
    milvus = MilvusState({}, {}, True) if joining else world.milvus()
    plan = configs.plan_milvus(configs.desired_configs(world.pool, world.groups, {}), milvus, set())
    replicas = scaling.desired_replicas(world.pool, world.groups)
    scale = scaling.plan_scale(world.pool, world.groups, replicas, world.sts, pods, milvus, (),
                               milvus_plan_empty=plan.empty, now=1_000.0)
    pool = conditions.pool_status(world.pool, world.groups, replicas, world.sts, pods, milvus, scale, plan,
                                  generation=1, previous={}, now=1_000.0, scale_down=[], converged=not joining)
    group = conditions.group_status(world.groups[0], milvus, pods, plan, generation=1, previous={}, now=1_000.0)
    return len(json.dumps(pool, separators=(",", ":"))), len(json.dumps(group, separators=(",", ":")))


def profile_top(group_count: int, node_count: int, entries: int = 8) -> str:
    world = converged_world(group_count, node_count)
    profiler = cProfile.Profile()
    profiler.enable()
    planning_step(world, group_sample=min(5, group_count))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(entries)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])


def size(row: Row) -> int:
    return row.groups + row.nodes  # the objects a pass indexes


def growth_base(rows: list[Row], row: Row) -> Row | None:
    """The measured size about 10x smaller (8x to 12.5x) than `row`, nearest to 10x."""
    bases = [b for b in rows if 8 <= size(row) / size(b) <= 12.5]
    return min(bases, key=lambda b: abs(size(row) / size(b) - 10), default=None)


def growth(rows: list[Row], row: Row) -> float | None:
    base = growth_base(rows, row)
    return row.total_ms / base.total_ms if base is not None and base.total_ms else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="sizes up to 10 x 10,000, fewer runs")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    runs = args.runs or (3 if args.quick else 5)
    rows: list[Row] = []
    for group_count, node_count in sizes:
        rows.append(measure(group_count, node_count, runs))
    parts = list(rows[0].parts_ms)
    print(f"planner: one planning step, CPU ms (median of {runs} runs; * = group_status sampled on 5 groups "
          "and scaled)")
    header = f"{'groups x nodes':>16} | " + " ".join(f"{p:>15}" for p in parts) + f" | {'total':>10} | growth"
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = " ".join(f"{row.parts_ms[p]:>15.1f}" for p in parts)
        mark = "*" if row.sampled else " "
        ratio, base = growth(rows, row), growth_base(rows, row)
        text = f"{ratio:5.1f}x from {base.groups:,} x {base.nodes:,}" if ratio and base else ""
        if base is not None and base.total_ms < GROWTH_BASE_MS:
            text += f" (base < {GROWTH_BASE_MS:.0f} ms: not judged)"
        print(f"{row.groups:>7,} x {row.nodes:>6,} | {cells} | {row.total_ms:>9.1f}{mark} | {text}")
    worst_growth = max((g for row in rows if (g := growth(rows, row)) is not None
                        and (base := growth_base(rows, row)) is not None and base.total_ms >= GROWTH_BASE_MS),
                       default=0.0)
    target = next((r for r in rows if (r.groups, r.nodes) == TARGET_SIZE), None)
    failed = False
    if target is None:
        print(f"target <= {TARGET_MS:.0f} ms at 1,000 x 10,000: not run (--quick)")
    elif target.total_ms <= TARGET_MS:
        print(f"target <= {TARGET_MS:.0f} ms at 1,000 x 10,000: met ({target.total_ms:.1f} ms)")
    else:
        failed = True
        print(f"target <= {TARGET_MS:.0f} ms at 1,000 x 10,000: MISSED ({target.total_ms:.1f} ms)")
    # Growth: a linear step costs ~10x per 10x in size (groups + nodes); allow noise up to 15x.
    print(f"target each 10x in size (groups + nodes) costs <= ~10x: {'met' if worst_growth <= 15 else 'MISSED'} "
          f"(worst {worst_growth:.1f}x)")
    for group_count, node_count in ((20, 10_000),):
        for joining in (False, True):
            pool_size, group_size = status_bytes(converged_world(group_count, node_count), joining=joining)
            state = "no pod registered yet" if joining else "converged"
            print(f"status JSON at {group_count} x {node_count:,} ({state}): pool {pool_size:,} bytes, one group "
                  f"{group_size:,} bytes (pool target <= 64 KB: {'met' if pool_size <= 64 * 1024 else 'MISSED'})")
    if failed or worst_growth > 15:
        big = target or rows[-1]
        print(f"what dominates at {big.groups:,} x {big.nodes:,} (profile, by own time):")
        print(profile_top(big.groups, big.nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
