"""The real operator on the real Kubernetes control plane (kube-apiserver, the StatefulSet controller,
kube-scheduler and kwok's fake nodes; docs/real-kubernetes.md): a pool of 1,000 query-node pods over 20
groups, from 1 pod to converged (the pool Ready). Prints the wall time, the operator's passes and writes,
this process's RSS (the operator's; the control plane and the Milvus simulator run in a child process), and
the control plane's CPU. Figures only, no assertion.

Needs the control plane built (`make control-plane`); without it, says so and exits 0.
Run: `python bench/real_kube_scale.py [--pods 1000] [--groups 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import (
    NAMESPACE,
    STATEFULSET,
    Operator,
    group_manifest,
    pool_manifest,
    proc_cpu_seconds,
    rss_mib,
    stop_process,
    wait_until,
)


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
        await sandbox.create_query_node_statefulset(name=STATEFULSET, replicas=1, namespace=NAMESPACE)
        endpoints = {**sandbox.endpoints(), "pids": sandbox.kube.pids()}  # type: ignore[union-attr]
        partial = workdir / "endpoints.json.part"
        partial.write_text(json.dumps(endpoints))
        partial.rename(workdir / "endpoints.json")
        await stop.wait()


async def measure(child: subprocess.Popen[bytes], pods: int, groups: int, workdir: Path, timeout: float) -> None:
    await wait_until(lambda: (workdir / "endpoints.json").exists() or child.poll() is not None,
                     timeout=120, what="the sandbox on the real control plane")
    if child.poll() is not None:
        raise RuntimeError(f"the sandbox exited; see {workdir / 'sandbox.log'}")
    endpoints = json.loads((workdir / "endpoints.json").read_text())
    pids = endpoints.pop("pids")
    operator = Operator(endpoints)
    rss_before = rss_mib()
    await operator.start()
    try:
        per_group, extra = divmod(pods, groups)
        sizes = [(f"rg-{i}", per_group + (1 if i < extra else 0)) for i in range(groups)]
        cpu_before = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        await operator.apply(pool_manifest(endpoints), *(group_manifest(name, n) for name, n in sizes))
        await wait_until(operator.pool_ready, timeout=timeout, interval=0.5, what=f"{pods} pods converged")
        wall = time.perf_counter() - started
        cpu = {name: proc_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        writes = sum(len(p.writes) for p in operator.passes)
        print(f"real control plane + kwok: {pods:,} query-node pods over {groups} groups")
        print(f"  converged in {wall:.1f} s, {len(operator.passes)} operator passes, {writes} writes")
        print(f"  operator process RSS {rss_mib():.0f} MB (before the operator started: {rss_before:.0f} MB)")
        print("  control-plane CPU s during convergence: "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(cpu.items())))
    finally:
        await operator.stop()


def run_measurement(pods: int, groups: int, timeout: float) -> int:
    from milvus_rg_sandbox.realkube import ControlPlaneUnavailable, find_binaries

    try:
        find_binaries()
    except ControlPlaneUnavailable as error:
        print(f"skipped: {error}")
        return 0
    with tempfile.TemporaryDirectory() as tmp, (Path(tmp) / "sandbox.log").open("wb") as log:
        workdir = Path(tmp)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    # The kubeconfig skips verifying the control plane's self-signed certificate, as the sandbox's does.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    if args.command == "serve":
        asyncio.run(serve(args.workdir))
        return 0
    return run_measurement(args.pods, args.groups, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
