"""One reconcile pass of the pure core, whole, at growing sizes: `core.plan.plan_pass` over groups x query nodes.

`plan_pass` is everything a pass decides: validation, the Milvus configs, replicas, drains, pod labels, every
status and the actions that write them. It runs over a converged pool (every pod Ready, registered, placed
and labelled) in two cases: the first pass (no status written yet: every status is computed and written) and
a resync (the statuses as that first pass wrote them: nothing to do, no action). Every size is timed in
full, every run: nothing is sampled or extrapolated. Time is CPU time of this process
(`time.process_time`): the machine is shared, so wall time would measure the neighbours. Each run gets a
fresh `MilvusState`, so the state's indexes are built inside the measured pass, as in a real one.

Prints a table with both passes' CPU time, their actions, the growth per 10x in size and the target (<= 100 ms
at 1,000 groups x 10,000 nodes, each 10x costing at most about 10x); a missed target is printed as MISSED with
the profile's top entries (it never fails the run).  Run: `python bench/planner.py [--quick]`.
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
from dataclasses import dataclass, replace

from milvus_rg_operator.constants import POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core import configs, labels
from milvus_rg_operator.core.actions import WriteStatus
from milvus_rg_operator.core.names import label_value, resolve_group_name
from milvus_rg_operator.core.plan import PassInputs, PassPlan, plan_pass
from milvus_rg_operator.core.types import (
    DEFAULT_GROUP,
    DEFAULT_GROUP_LIMIT,
    STATEFULSET,
    DeclaredGroup,
    DeclaredPool,
    GroupConfig,
    GroupInput,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    ObjectState,
    PodState,
    WorkloadRef,
    WorkloadState,
)
from milvus_rg_operator.core.versions import milvus_support

POOL = "milvus"
PENDING = "__pending_nodes"
STS = "milvus-querynode"
NOW = 1_000.0
TARGET_MS = 100.0
TARGET_SIZE = (1_000, 10_000)
FULL_SIZES = [(10, 100), (20, 1_000), (100, 1_000), (10, 10_000), (1_000, 10_000)]
QUICK_SIZES = [(10, 100), (20, 1_000), (100, 1_000), (10, 10_000)]
GROWTH_BASE_MS = 2.0  # below this, fixed costs and timer noise make a growth ratio meaningless


def pass_inputs(group_count: int, node_count: int, *, joining: bool = False) -> PassInputs:
    """What a pass observes of a pool of `node_count` query-node pods spread evenly over `group_count` groups,
    every object finalized and without status. Converged: every pod Ready, registered in Milvus in its group
    and labelled so. `joining`: the pods exist but none is Ready or registered yet, and Milvus has no group.

    The one place that knows the core's input types: adapt it when `PassInputs` changes."""
    pool = DeclaredPool(POOL, PENDING, 0, 0, None, WorkloadRef(STATEFULSET, STS))
    per_group, extra = divmod(node_count, group_count)
    groups = [DeclaredGroup(f"rg-{i}", POOL, None, per_group + (1 if i < extra else 0), None, None, None)
              for i in range(group_count)]
    group_configs = configs.desired_configs(pool, groups, {})
    group_configs.setdefault(DEFAULT_GROUP, GroupConfig(0, DEFAULT_GROUP_LIMIT))
    members: dict[str, list[int]] = {name: [] for name in group_configs}
    nodes: dict[int, MilvusNode] = {}
    pods: list[PodState] = []
    for group in groups:
        name = resolve_group_name(group)
        for _ in range(group.requests):
            ordinal = len(pods)
            node_id, pod = 1_000 + ordinal, f"{STS}-{ordinal}"
            ip = f"10.0.{ordinal // 250}.{ordinal % 250 + 2}"
            nodes[node_id] = MilvusNode(node_id, pod, f"{ip}:21123", "Healthy")
            members[name].append(node_id)
            placement = {labels.LABEL_RESOURCE_GROUP: label_value(name), labels.LABEL_NODE_ID: str(node_id),
                         labels.LABEL_STATE: "serving"}
            pods.append(PodState(pod, ordinal, ready=not joining, terminating=False,
                                 labels={} if joining else placement,
                                 annotations={} if joining else {labels.ANNOTATION_RESOURCE_GROUP: name},
                                 created_at=0.0, ip=ip))
    milvus = MilvusState({} if joining else {name: MilvusGroup(name, config, tuple(members[name]))
                                             for name, config in group_configs.items()},
                         {} if joining else nodes, True, "v2.5.4")
    ready = 0 if joining else node_count
    return PassInputs(
        pool=pool,
        pool_obj=ObjectState(POOL, generation=1, finalized=True),
        groups=[GroupInput(ObjectState(g.cr_name, generation=1, finalized=True), g) for g in groups],
        milvus=milvus,
        workload=WorkloadState(WorkloadRef(STATEFULSET, STS), node_count, ready),
        support=milvus_support(milvus.version),
        can_create_statefulset=False,
        pods=pods,
        drains=(),
        now=NOW,
    )


def with_written_statuses(inputs: PassInputs, plan: PassPlan) -> PassInputs:
    """The inputs of the next pass: every object carries the status `plan` wrote to it."""
    written = {(a.kind, a.name): a.status for a in plan.actions if isinstance(a, WriteStatus)}

    def updated(kind: str, obj: ObjectState) -> ObjectState:
        return replace(obj, status={**obj.status, **written.get((kind, obj.name), {})})

    return replace(inputs, pool_obj=updated(POOL_KIND, inputs.pool_obj),
                   groups=[replace(g, obj=updated(RESOURCE_GROUP_KIND, g.obj)) for g in inputs.groups])


def fresh_milvus(inputs: PassInputs) -> PassInputs:
    """The same observation in a new `MilvusState`: its cached indexes are built again, as in every real pass."""
    milvus = inputs.milvus
    assert milvus is not None
    return replace(inputs, milvus=MilvusState(dict(milvus.groups), dict(milvus.nodes), milvus.management_available,
                                              milvus.version))


@dataclass
class Timed:
    cpu_ms: float  # median
    actions: int


@dataclass
class Row:
    groups: int
    nodes: int
    first: Timed
    resync: Timed

    @property
    def total_ms(self) -> float:
        return self.first.cpu_ms  # the pass that computes and writes every status: the one the target is about


def timed_pass(inputs: PassInputs, runs: int) -> tuple[Timed, PassPlan]:
    durations: list[float] = []
    for _ in range(runs):
        fresh = fresh_milvus(inputs)
        started = time.process_time()
        plan = plan_pass(fresh)
        durations.append(time.process_time() - started)
    return Timed(statistics.median(durations) * 1000, len(plan.actions)), plan


def measure(group_count: int, node_count: int, runs: int) -> Row:
    inputs = pass_inputs(group_count, node_count)
    first, plan = timed_pass(inputs, runs)
    resync, _ = timed_pass(with_written_statuses(inputs, plan), runs)
    return Row(group_count, node_count, first, resync)


def status_bytes(group_count: int, node_count: int, *, joining: bool) -> tuple[int, int]:
    """JSON bytes of the pool's status and of the first group's status as a first pass writes them;
    `joining`: no pod registered yet (every pod needs attention), the worst case for the pool's status."""
    written = {(a.kind, a.name): a.status for a in plan_pass(pass_inputs(group_count, node_count, joining=joining))
               .actions if isinstance(a, WriteStatus)}
    pool, group = written[(POOL_KIND, POOL)], written[(RESOURCE_GROUP_KIND, "rg-0")]
    return len(json.dumps(pool, separators=(",", ":"))), len(json.dumps(group, separators=(",", ":")))


def profile_top(group_count: int, node_count: int, entries: int = 8) -> str:
    inputs = pass_inputs(group_count, node_count)
    profiler = cProfile.Profile()
    profiler.enable()
    plan_pass(inputs)
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
    rows = [measure(group_count, node_count, runs) for group_count, node_count in sizes]
    print(f"planner: plan_pass whole, CPU ms (median of {runs} runs, every size in full); first pass: no status "
          "yet, every status written; resync: statuses as written, nothing to do")
    header = (f"{'groups x nodes':>16} | {'first pass':>10} | {'actions':>7} | {'resync':>8} | {'actions':>7} | "
              "growth (first pass)")
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio, base = growth(rows, row), growth_base(rows, row)
        text = f"{ratio:5.1f}x from {base.groups:,} x {base.nodes:,}" if ratio and base else ""
        if base is not None and base.total_ms < GROWTH_BASE_MS:
            text += f" (base < {GROWTH_BASE_MS:.0f} ms: not judged)"
        print(f"{row.groups:>7,} x {row.nodes:>6,} | {row.first.cpu_ms:>10.1f} | {row.first.actions:>7,} | "
              f"{row.resync.cpu_ms:>8.1f} | {row.resync.actions:>7,} | {text}")
    worst_growth = max((g for row in rows if (g := growth(rows, row)) is not None
                        and (base := growth_base(rows, row)) is not None and base.total_ms >= GROWTH_BASE_MS),
                       default=0.0)
    target = next((r for r in rows if (r.groups, r.nodes) == TARGET_SIZE), None)
    if target is None:
        print(f"target <= {TARGET_MS:.0f} ms at 1,000 x 10,000: not run (--quick)")
    else:
        slowest = max(target.first.cpu_ms, target.resync.cpu_ms)
        print(f"target <= {TARGET_MS:.0f} ms at 1,000 x 10,000: {'met' if slowest <= TARGET_MS else 'MISSED'} "
              f"(first pass {target.first.cpu_ms:.1f} ms, resync {target.resync.cpu_ms:.1f} ms)")
    # Growth: a linear pass costs ~10x per 10x in size (groups + nodes); allow noise up to 15x.
    print(f"target each 10x in size (groups + nodes) costs <= ~10x: {'met' if worst_growth <= 15 else 'MISSED'} "
          f"(worst {worst_growth:.1f}x)")
    idle = [r for r in rows if r.resync.actions]
    print(f"target a resync over a converged pool plans no action: {'MISSED' if idle else 'met'}"
          + (f" ({', '.join(f'{r.groups:,} x {r.nodes:,}: {r.resync.actions}' for r in idle)})" if idle else ""))
    for group_count, node_count in ((20, 10_000),):
        for joining in (False, True):
            pool_size, group_size = status_bytes(group_count, node_count, joining=joining)
            state = "no pod registered yet" if joining else "converged"
            print(f"status JSON at {group_count} x {node_count:,} ({state}): pool {pool_size:,} bytes, one group "
                  f"{group_size:,} bytes (pool target <= 64 KB: {'met' if pool_size <= 64 * 1024 else 'MISSED'})")
    if (target is not None and max(target.first.cpu_ms, target.resync.cpu_ms) > TARGET_MS) or worst_growth > 15:
        big = target or rows[-1]
        print(f"what dominates at {big.groups:,} x {big.nodes:,} (profile of the first pass, by own time):")
        print(profile_top(big.groups, big.nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
