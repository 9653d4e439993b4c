"""What the operator benches share: a sandbox in a process of its own, and the real operator (kopf +
kubernetes client + pymilvus) in this one.

The sandbox runs apart so that this process's CPU time and RSS are the operator's alone (the bench's
own bookkeeping aside), and the operator never imports the sandbox. Everything talks over loopback.

`python bench/cluster.py serve --workdir DIR --query-nodes N [--pod-start-delay S]` is the child: it
starts the sandbox, creates the query-node StatefulSet with N replicas, writes the endpoints to
DIR/endpoints.json and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
NAMESPACE = "default"
STATEFULSET = "milvus-querynode"
POOL = "milvus"
PENDING = "__pending_nodes"
API_GROUP = "milvusrg.io"
VERSION = "v1alpha1"
REQUEST_TIMEOUT = 30  # seconds: a saturated sandbox must not hang a bench forever


# --------------------------------------------------------------------------- the child: the sandbox


async def serve(workdir: Path, query_nodes: int, pod_start_delay: float) -> None:
    from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=workdir, seed=7,
                           pod_start_delay=pod_start_delay, check_interval=0.2, session_ttl=1.0)
    async with Sandbox(config) as sandbox:
        await sandbox.create_query_node_statefulset(name=STATEFULSET, replicas=query_nodes, namespace=NAMESPACE)
        endpoints = sandbox.endpoints()
        partial = workdir / "endpoints.json.part"
        partial.write_text(json.dumps(endpoints))
        partial.rename(workdir / "endpoints.json")
        await stop.wait()


# --------------------------------------------------------------------------- the parent


@dataclass
class SandboxProcess:
    process: subprocess.Popen[bytes]
    endpoints: dict[str, str]

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.process.pid)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mib(pid: int | str = "self") -> float:
    """The resident set (VmRSS) of this process, or of process `pid`, now, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spawn_sandbox(workdir: Path, query_nodes: int, pod_start_delay: float) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "sandbox.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(BENCH / "cluster.py"), "serve", "--workdir", str(workdir),
             "--query-nodes", str(query_nodes), "--pod-start-delay", str(pod_start_delay)],
            stdout=log, stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def sandbox_process(workdir: Path, query_nodes: int = 1, pod_start_delay: float = 0.05,
                          timeout: float = 60) -> AsyncIterator[SandboxProcess]:
    process = _spawn_sandbox(workdir, query_nodes, pod_start_delay)
    try:
        endpoints_file = workdir / "endpoints.json"
        deadline = time.monotonic() + timeout
        while not endpoints_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start; see {workdir / 'sandbox.log'}")
            await asyncio.sleep(0.05)
        yield SandboxProcess(process, json.loads(endpoints_file.read_text()))
    finally:
        stop_process(process, timeout=30)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def pool_manifest(endpoints: dict[str, str], **spec: Any) -> dict[str, Any]:
    milvus = {"uri": endpoints["milvus"], "managementUri": endpoints["management"]}
    return {"apiVersion": f"{API_GROUP}/{VERSION}", "kind": "QueryNodePool", "metadata": {"name": POOL},
            "spec": {"milvus": milvus, "statefulSetName": STATEFULSET, **spec}}


def group_manifest(name: str, requests: int, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{API_GROUP}/{VERSION}", "kind": "ResourceGroup", "metadata": {"name": name},
            "spec": {"pool": POOL, "requests": {"nodeNum": requests}, **spec}}


@dataclass
class PassRecord:
    started: float
    ended: float
    cpu: float  # process CPU seconds during the pass (the operator's work, this process only)
    writes: list[str]
    converged: bool


@dataclass
class Operator:
    """The real operator in this process, every pass recorded."""

    endpoints: dict[str, str]
    passes: list[PassRecord] = field(default_factory=list)
    running: int = 0  # passes in progress
    api: Any = None
    reconciler: Any = None
    scheduler: Any = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        os.environ["KUBECONFIG"] = self.endpoints["kubeconfig"]
        from milvus_rg_operator.adapters.kube import KubernetesClientGateway, new_api_client
        from milvus_rg_operator.api.crds import render_crds
        from milvus_rg_operator.manifests import apply_manifests
        from milvus_rg_operator.reconcile import PoolReconciler
        from milvus_rg_operator.runner import run_operator
        from milvus_rg_operator.scheduler import PassOutcome, PoolScheduler

        self.api = new_api_client()
        await apply_manifests(self.api, render_crds())
        self.reconciler = PoolReconciler(KubernetesClientGateway(self.api))

        async def recorded(namespace: str, name: str) -> PassOutcome:
            started, cpu = time.perf_counter(), time.process_time()
            self.running += 1
            try:
                outcome: PassOutcome = await self.reconciler.reconcile(namespace, name)
            finally:
                self.running -= 1
            report = self.reconciler.last_report.get((namespace, name))
            self.passes.append(PassRecord(started, time.perf_counter(), time.process_time() - cpu,
                                          list(report.writes) if report else [],
                                          bool(report and report.converged)))
            return outcome

        self.scheduler = PoolScheduler(recorded)
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        self._task = asyncio.create_task(run_operator(
            namespace=NAMESPACE, stop_flag=self._stop, ready_flag=ready,
            memo={"reconciler": self.reconciler, "scheduler": self.scheduler, "embedded": True}))
        async with asyncio.timeout(30):
            await ready.wait()

    async def apply(self, *objects: dict[str, Any]) -> None:
        from milvus_rg_operator.manifests import apply_manifests

        await apply_manifests(self.api, list(objects), NAMESPACE)

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        return await get_custom_object(self.api, plural, name)

    async def pool_ready(self) -> bool:
        return await pool_is_ready(self.api)

    async def one_pass(self) -> PassRecord:
        """Trigger a pass now and return its record."""
        count = len(self.passes)
        self.scheduler.trigger(NAMESPACE, POOL)
        await wait_until(lambda: len(self.passes) > count, timeout=60, what="a pass")
        return self.passes[count]

    async def quiet(self, seconds: float = 1.5, timeout: float = 60) -> float:
        """Wait until no pass ran for `seconds` (the operator's requeue while progressing is 1 s); returns
        when the last pass ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.passes[-1].ended if self.passes else 0.0
            if not self.running and time.perf_counter() - last >= seconds:
                return last
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the operator did not settle within {timeout:.0f} s")

    async def stop(self) -> None:
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await asyncio.wait({self._task}, timeout=30)
        if self.reconciler is not None:
            await self.reconciler.close()
        if self.api is not None:
            self.api.close()


async def get_custom_object(api: Any, plural: str, name: str) -> dict[str, Any]:
    """One of our custom objects in NAMESPACE, through the ApiClient `api`."""
    from kubernetes.client import CustomObjectsApi

    return dict(await asyncio.to_thread(CustomObjectsApi(api).get_namespaced_custom_object,
                                        API_GROUP, VERSION, NAMESPACE, plural, name, _request_timeout=REQUEST_TIMEOUT))


async def pool_is_ready(api: Any) -> bool:
    """The pool exists and says Ready."""
    try:
        pool = await get_custom_object(api, "querynodepools", POOL)
    except Exception:  # not created yet, or a saturated API server timing out: not ready yet, ask again
        return False
    conditions = (pool.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def wait_until(probe: Callable[[], Awaitable[bool] | bool], *, timeout: float, what: str,
                     interval: float = 0.05) -> float:
    """Poll `probe` until true; returns the seconds it took. Raises TimeoutError naming `what`."""
    started = time.perf_counter()
    while True:
        result = probe()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        await asyncio.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    child = commands.add_parser("serve")
    child.add_argument("--workdir", type=Path, required=True)
    child.add_argument("--query-nodes", type=int, default=1)
    child.add_argument("--pod-start-delay", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(serve(args.workdir, args.query_nodes, args.pod_start_delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
