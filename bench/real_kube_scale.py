"""The real operator on the real Kubernetes control plane (kube-apiserver, the StatefulSet controller,
kube-scheduler and kwok's fake nodes; docs/real-kubernetes.md): a pool of 1,000 query-node pods over 20
groups, from 1 pod to converged (the pool Ready). Prints the wall time, the operator's passes and writes,
this process's RSS (the operator's; the control plane and the Milvus simulator run in a child process), the
control plane's CPU, and where the time went: a timeline of the stages each pod goes through (StatefulSet
scaled, pod created by the StatefulSet controller, bound by kube-scheduler, made Ready by kwok, registered in
the Milvus simulator, labelled by the operator, pool Ready), read from kube-apiserver's audit log (every
write, microsecond stamps) and the sandbox's record of registrations. Figures only, no assertion.

Needs the control plane built (`make control-plane`); without it, says so and exits 0.
Run: `python bench/real_kube_scale.py [--pods 1000] [--groups 20] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import (
    API_GROUP,
    NAMESPACE,
    STATEFULSET,
    VERSION,
    Operator,
    group_manifest,
    pool_manifest,
    proc_cpu_seconds,
    rss_mib,
    stop_process,
    wait_until,
)

CPUS = os.cpu_count() or 1
TARGET_SECONDS = 30  # issue 9: 1,000 pods converge from an empty pool in under 30 s
REGISTERED = "registered.log"  # the child's record: "<wall-clock time> <pod name>" per pod registered in Milvus
CONTROL_PLANE_USERS = {"system:kube-controller-manager": "controller-manager", "system:kube-scheduler": "scheduler",
                       "kwok": "kwok", "milvus-rg-sandbox": "sandbox", "system:apiserver": "apiserver"}


async def serve(workdir: Path) -> None:
    """The child: a sandbox on the real control plane with a 1-pod query-node StatefulSet."""
    from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=workdir, seed=7,
                           check_interval=0.2, session_ttl=1.0, kubernetes="real")
    async with Sandbox(config) as sandbox:
        with (workdir / REGISTERED).open("w", buffering=1) as registered:
            sandbox.workloads.wiring.listeners.append(registration_recorder(registered))  # type: ignore[union-attr]
            await sandbox.create_query_node_statefulset(name=STATEFULSET, replicas=1, namespace=NAMESPACE)
            endpoints = {**sandbox.endpoints(), "pids": sandbox.kube.pids()}  # type: ignore[union-attr]
            partial = workdir / "endpoints.json.part"
            partial.write_text(json.dumps(endpoints))
            partial.rename(workdir / "endpoints.json")
            await stop.wait()


def registration_recorder(out: TextIO) -> Any:
    """A listener of the wiring's pod watch: the wiring registers a query-node pod in Milvus on the first
    event that shows it Ready with an IP (realkube/wiring.py), right after its listeners ran."""
    from milvus_rg_sandbox.wiring import is_query_node
    from milvus_rg_sandbox.workloads import is_terminating, pod_is_ready

    seen: set[str] = set()

    def record(event_type: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if (event_type != "DELETED" and name not in seen and is_query_node(pod) and not is_terminating(pod)
                and pod_is_ready(pod) and pod.get("status", {}).get("podIP")):
            seen.add(name)
            out.write(f"{time.time():.6f} {name}\n")

    return record


async def measure(child: subprocess.Popen[bytes], pods: int, groups: int, workdir: Path, timeout: float) -> None:
    await wait_until(lambda: (workdir / "endpoints.json").exists() or child.poll() is not None,
                     timeout=120, what="the sandbox on the real control plane")
    if child.poll() is not None:
        raise RuntimeError(f"the sandbox exited; see {workdir / 'sandbox.log'}")
    endpoints = json.loads((workdir / "endpoints.json").read_text())
    pids = {**endpoints.pop("pids"), "sandbox (wiring + Milvus simulator)": child.pid}
    operator = Operator(endpoints)
    rss_before = rss_mib()
    await operator.start()
    try:
        # kube-apiserver holds each create of a custom resource for 2 s while its CRD was established less
        # than 2 s ago (k8s.io/apiextensions-apiserver v0.37.2 customresource_handler.go, serveResource): a
        # cluster's one-time setup, kept off the clock by dry-run creates of the same objects first.
        crd_setup = time.perf_counter()
        await dry_run_create(operator, pool_manifest(endpoints), group_manifest("rg-0", 1))
        crd_setup = time.perf_counter() - crd_setup
        per_group, extra = divmod(pods, groups)
        sizes = [(f"rg-{i}", per_group + (1 if i < extra else 0)) for i in range(groups)]
        cpu_before = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        operator_cpu_before = time.process_time()
        started, started_wall = time.perf_counter(), time.time()
        await operator.apply(pool_manifest(endpoints), *(group_manifest(name, n) for name, n in sizes))
        await wait_until(operator.pool_ready, timeout=timeout, interval=0.2, what=f"{pods} pods converged")
        wall = time.perf_counter() - started
        cpu = {name: proc_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["operator (this process)"] = time.process_time() - operator_cpu_before
        writes = sum(len(p.writes) for p in operator.passes)
        print(f"real control plane + kwok: {pods:,} query-node pods over {groups} groups")
        print(f"  converged in {wall:.1f} s, {len(operator.passes)} operator passes, {writes} writes"
              f" (the new CRDs' {crd_setup:.1f} s setup before: not counted)")
        print(f"  operator process RSS {rss_mib():.0f} MB (before the operator started: {rss_before:.0f} MB)")
        print(f"  CPU s during convergence: {sum(cpu.values()):.1f} of the {wall * CPUS:.1f} that {CPUS} cores offer: "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(cpu.items(), key=lambda c: -c[1])))
        passes = [(p.started - started, p.ended - started, len(p.writes)) for p in operator.passes]
        print_phases(Timeline.read(workdir, started_wall, started_wall + wall), passes)
    finally:
        await operator.stop()


async def dry_run_create(operator: Operator, *objects: dict[str, Any]) -> None:
    from kubernetes.client import CustomObjectsApi

    api = CustomObjectsApi(operator.api)
    for obj in objects:
        plural = {"QueryNodePool": "querynodepools", "ResourceGroup": "resourcegroups"}[obj["kind"]]
        await asyncio.to_thread(api.create_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE, plural, obj,
                                dry_run="All")


@dataclass
class Stage:
    """One stage of the pods' way to serving: when (seconds after the groups were applied) each pod passed
    it, and how long the API server took to answer each write of it (received -> response)."""

    name: str
    at: dict[str, float]  # pod -> when it passed the stage (its last write of the stage); else one entry a write
    writes: int
    answer_seconds: list[float]

    @property
    def per_pod(self) -> bool:
        return self.name not in (STAGES[0], STAGES[5])


@dataclass
class Timeline:
    stages: list[Stage]
    writers: dict[str, tuple[int, int, float]]  # writer -> (writes, refused, seconds the API server took answering)
    converged: float

    @classmethod
    def read(cls, workdir: Path, start: float, seen_ready: float) -> Timeline:
        """The stages from kube-apiserver's audit log (writes only: see realkube/audit.py) and the sandbox's
        record of registrations; `start` and `seen_ready` are wall-clock times."""
        from milvus_rg_sandbox.realkube.audit import audit_time

        audit = workdir / "control-plane" / "logs" / "audit.log"
        kinds: dict[str, Stage] = {name: Stage(name, {}, 0, []) for name in STAGES}
        writers: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        for line in audit.read_text().splitlines():
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            received, answered = audit_time(event["requestReceivedTimestamp"]), audit_time(event["stageTimestamp"])
            if answered < start:
                continue
            user = CONTROL_PLANE_USERS.get(event["user"]["username"], "operator and bench")
            refused = int(event["responseStatus"].get("code", 0)) >= 300
            writers[user].append((answered - received, refused))
            stage = kinds.get(stage_of(user, event) or "")
            if stage is not None and answered <= seen_ready and not refused:
                name = (event.get("objectRef") or {}).get("name", "")
                stage.at[name if stage.per_pod else f"{name}/{stage.writes}"] = answered - start
                stage.writes += 1
                stage.answer_seconds.append(answered - received)
        registered = Stage("registered in Milvus (sandbox)", {}, 0, [])
        for line in (workdir / REGISTERED).read_text().splitlines():
            when, pod = line.split()
            if float(when) >= start:
                registered.at[pod] = float(when) - start
        ordered = [kinds[name] for name in STAGES]
        ordered.insert(4, registered)
        totals = {user: (len(writes), sum(refused for _, refused in writes), sum(seconds for seconds, _ in writes))
                  for user, writes in writers.items()}
        return cls(ordered, totals, seen_ready - start)


STAGES = ("StatefulSet scaled (operator)", "pod created (statefulset controller)", "pod bound (scheduler)",
          "pod Running+Ready (kwok)", "pod labelled (operator)", "pool status written (operator)")


def stage_of(user: str, event: dict[str, Any]) -> str | None:
    ref = event.get("objectRef") or {}
    resource, subresource, verb = ref.get("resource"), ref.get("subresource", ""), event.get("verb")
    if user == "operator and bench":
        if resource == "statefulsets":
            return STAGES[0]
        if resource == "pods" and not subresource and verb == "patch":
            return STAGES[4]
        if resource == "querynodepools" and subresource == "status":
            return STAGES[5]
    elif resource == "pods" and user == "controller-manager" and verb == "create" and not subresource:
        return STAGES[1]
    elif resource == "pods" and user == "scheduler" and subresource == "binding":
        return STAGES[2]
    elif resource == "pods" and user == "kwok" and subresource == "status":
        return STAGES[3]
    return None


def quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def print_phases(timeline: Timeline, passes: list[tuple[float, float, int]]) -> None:
    """Each stage's first, median and last pod (seconds after the groups were applied), its rate, and the
    API server's answer time for its writes; the per-pod delays between stages, the writers; then the target
    met or missed, with the control plane's share (until every pod is registered) and the operator's."""
    print(f"  where the time went (s after the groups were applied; pool Ready seen at {timeline.converged:.1f}):")
    print(f"    {'stage':<40} {'pods':>5} {'writes':>6} {'first':>6} {'median':>6} {'last':>6} {'pods/s':>7}"
          f" {'answer ms p50/max':>18}")
    for stage in timeline.stages:
        times = list(stage.at.values())
        if not times:
            print(f"    {stage.name:<40} {0:>5}")
            continue
        first, last = min(times), max(times)
        rate = (len(times) - 1) / (last - first) if last > first and stage.per_pod else float("nan")
        answer = (f"{1000 * statistics.median(stage.answer_seconds):.0f}/{1000 * max(stage.answer_seconds):.0f}"
                  if stage.answer_seconds else "-")
        print(f"    {stage.name:<40} {len(times) if stage.per_pod else '-':>5} {stage.writes or len(times):>6}"
              f" {first:>6.1f} {statistics.median(times):>6.1f} {last:>6.1f} {rate:>7.0f} {answer:>18}")
    print("    per-pod delay between consecutive stages, s (p50 / p95 / max):")
    slowest = ("", 0.0)
    for before, after in itertools.pairwise(timeline.stages[1:6]):
        delays = [after.at[pod] - before.at[pod] for pod in after.at if pod in before.at]
        if delays:
            step = f"{before.name.split(' (')[0]} -> {after.name.split(' (')[0]}"
            print(f"      {step}: {quantile(delays, 0.5):.2f} / {quantile(delays, 0.95):.2f} / {max(delays):.2f}")
            slowest = max(slowest, (step, quantile(delays, 0.5)), key=lambda s: s[1])
    print("    operator passes (start-end s, writes): "
          + ", ".join(f"{begin:.1f}-{end:.1f} ({writes})" for begin, end, writes in passes))
    writers = sorted(timeline.writers.items())
    print("    writes by writer (count, refused, API server answer time summed): "
          + ", ".join(f"{user} {count} ({refused}, {seconds:.1f} s)" for user, (count, refused, seconds) in writers))
    registered = timeline.stages[4].at.values()
    all_registered = max(registered) if registered else float("nan")
    print(f"  target under {TARGET_SECONDS} s: {'met' if timeline.converged < TARGET_SECONDS else 'MISSED'};"
          f" control plane (applied -> last pod Ready and registered) {all_registered:.1f} s, then the operator"
          f" (-> pool Ready) {timeline.converged - all_registered:.1f} s; slowest step per pod: {slowest[0]}"
          f" (p50 {slowest[1]:.1f} s)")


def run_measurement(pods: int, groups: int, timeout: float, keep: Path | None) -> int:
    from milvus_rg_sandbox.realkube import ControlPlaneUnavailable, find_binaries

    try:
        find_binaries()
    except ControlPlaneUnavailable as error:
        print(f"skipped: {error}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = keep or Path(tmp)
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        with (workdir / "sandbox.log").open("wb") as log:
            child = subprocess.Popen([sys.executable, __file__, "serve", "--workdir", str(workdir)],
                                     stdout=log, stderr=subprocess.STDOUT)
            try:
                asyncio.run(measure(child, pods, groups, workdir, timeout))
            finally:
                stop_process(child, timeout=60)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pods", type=int, default=1_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="run in DIR (emptied first) and keep it: the control plane's logs and audit log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    # The kubeconfig skips verifying the control plane's self-signed certificate, as the sandbox's does.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    if args.command == "serve":
        asyncio.run(serve(args.workdir))
        return 0
    return run_measurement(args.pods, args.groups, args.timeout, args.keep)


if __name__ == "__main__":
    sys.exit(main())
