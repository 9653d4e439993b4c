"""`milvus-rg-operator demo`: the Milvus docs' scaling practice, done by the operator on the sandbox.

Starts the sandbox (Kubernetes API + Milvus simulator) with a one-node query-node StatefulSet in a
process of its own (`milvus-rg-operator sandbox`: the other side of the wire, as a cluster would be),
installs the CRDs, runs the operator in this process, then applies each numbered folder of `examples/`.
After each step it waits until Milvus itself (asked over pymilvus, not through the operator)
shows every group at its requested size and the StatefulSet at the expected size, then prints what the
operator did (the Kubernetes events it posted during the step, read back from the API: groups written,
pods drained, replicas changed) and a table of pods, their group labels and Milvus's placement.
Exit code 1 if a step does not converge.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi
from pymilvus import AsyncMilvusClient

from milvus_rg_operator.adapters.kube import OPERATOR_NAME, POOL_PLURAL, RESOURCE_GROUP_PLURAL, new_api_client
from milvus_rg_operator.api.crds import render_crds
from milvus_rg_operator.api.models import API_GROUP, LABEL_RESOURCE_GROUP, VERSION
from milvus_rg_operator.manifests import apply_manifests, load_manifests
from milvus_rg_operator.runner import run_operator

NAMESPACE = "default"
STATEFULSET = "milvus-querynode"


@dataclass(frozen=True)
class Placement:
    """What Milvus says, per group: the pod names (hostnames) of its nodes."""

    groups: dict[str, list[str]]

    def group_of(self, pod: str) -> str:
        return next((group for group, pods in self.groups.items() if pod in pods), "-")


async def milvus_placement(uri: str) -> Placement:
    client = AsyncMilvusClient(uri=uri)
    try:
        names = await client.list_resource_groups(timeout=5)
        groups = {}
        for name in names:
            info = await client.describe_resource_group(name, timeout=5)
            groups[name] = sorted(node.hostname for node in info.nodes)
        return Placement(groups)
    finally:
        await client.close()


def expected_sizes(custom: CustomObjectsApi) -> tuple[dict[str, int], int]:
    """Group name -> requested nodes (the pending group -> spare nodes), and the replicas to expect."""
    pool = custom.list_namespaced_custom_object(API_GROUP, VERSION, NAMESPACE, POOL_PLURAL)["items"][0]["spec"]
    sizes: dict[str, int] = {pool.get("pendingGroup", "__pending_nodes"): pool.get("spareNodes", 0)}
    for group in custom.list_namespaced_custom_object(API_GROUP, VERSION, NAMESPACE, RESOURCE_GROUP_PLURAL)["items"]:
        name = group["spec"].get("groupName") or group["metadata"]["name"].replace("-", "_")
        sizes[name] = group["spec"]["requests"]["nodeNum"]
    replicas = min(max(sum(sizes.values()), pool.get("minNodes", 0)), pool.get("maxNodes", 1 << 30))
    return sizes, replicas


def pods_table(core: CoreV1Api, placement: Placement) -> list[list[str]]:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=querynode").items
    rows = [["POD", "READY", "LABEL " + LABEL_RESOURCE_GROUP, "MILVUS GROUP"]]
    for pod in sorted(pods, key=lambda p: int(p.metadata.name.rsplit("-", 1)[1])):
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        label = (pod.metadata.labels or {}).get(LABEL_RESOURCE_GROUP, "-")
        terminating = " (terminating)" if pod.metadata.deletion_timestamp else ""
        rows.append([pod.metadata.name + terminating, str(ready).lower(), label,
                     placement.group_of(pod.metadata.name)])
    return rows


def operator_events(core: CoreV1Api, seen: set[tuple[str, int]]) -> list[list[str]]:
    """The operator's events not in `seen` (name and count: a repeated event counts up), oldest first, as
    table rows; `seen` is updated."""
    events = [event for event in core.list_namespaced_event(NAMESPACE).items
              if OPERATOR_NAME in ((event.source.component if event.source else None), event.reporting_component)
              and (event.metadata.name, event.count or 1) not in seen]
    seen.update((event.metadata.name, event.count or 1) for event in events)
    events.sort(key=lambda e: (str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""),
                               e.metadata.name))
    return [[event.type or "", event.reason or "", f"{event.involved_object.kind}/{event.involved_object.name}",
             event.message or ""] for event in events]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))).rstrip())


async def converged(api: Any, uri: str) -> tuple[bool, str, Placement]:
    custom, apps, core = CustomObjectsApi(api), AppsV1Api(api), CoreV1Api(api)
    sizes, replicas = await asyncio.to_thread(expected_sizes, custom)
    placement = await milvus_placement(uri)
    sts = await asyncio.to_thread(apps.read_namespaced_stateful_set, STATEFULSET, NAMESPACE)
    pods = await asyncio.to_thread(core.list_namespaced_pod, NAMESPACE,
                                   label_selector="app.kubernetes.io/component=querynode")
    wrong = [f"{name}: {len(placement.groups.get(name, []))}/{want}" for name, want in sizes.items()
             if len(placement.groups.get(name, [])) != want]
    labels_ok = all((p.metadata.labels or {}).get(LABEL_RESOURCE_GROUP) for p in pods.items)
    ready = (sts.spec.replicas == replicas and (sts.status.ready_replicas or 0) == replicas
             and len(pods.items) == replicas and labels_ok)
    why = f"groups {wrong or 'ok'}; replicas {sts.spec.replicas}/{replicas}, pods {len(pods.items)}"
    return not wrong and ready, why, placement


async def server_version(uri: str) -> str:
    client = AsyncMilvusClient(uri=uri)
    try:
        return str(await client.get_server_version(timeout=5))
    finally:
        await client.close()


async def run_demo(examples: Path, workdir: Path, step_timeout: float, seed: int | None,
                   milvus_version: str | None = None) -> int:
    steps = sorted(p for p in examples.iterdir() if p.is_dir())  # noqa: ASYNC240 - before anything runs
    if not steps:
        print(f"no step folders in {examples}", file=sys.stderr)
        return 2
    sandbox, endpoints = await start_sandbox(workdir, seed, milvus_version)
    try:
        os.environ["KUBECONFIG"] = endpoints["kubeconfig"]
        print("sandbox up:", ", ".join(f"{k}={v}" for k, v in endpoints.items()))
        print(f"Milvus {await server_version(endpoints['milvus'])}")
        api = new_api_client()
        await apply_manifests(api, render_crds())
        stop = asyncio.Event()
        operator = asyncio.create_task(run_operator(namespace=NAMESPACE, stop_flag=stop))
        seen_events: set[tuple[str, int]] = set()
        try:
            for step in steps:
                manifests = load_manifests([step])
                # The sandbox Milvus listens on a free port: point the pool at it.
                for obj in manifests:
                    if obj.get("kind") == "QueryNodePool":
                        obj["spec"]["milvus"]["uri"] = endpoints["milvus"]
                        obj["spec"]["milvus"]["managementUri"] = endpoints["management"]
                print(f"\n== step {step.name}")
                for line in await apply_manifests(api, manifests):
                    print("  " + line)
                started = time.monotonic()
                ok, why, placement = False, "", Placement({})
                while time.monotonic() - started < step_timeout and not operator.done():
                    ok, why, placement = await converged(api, endpoints["milvus"])
                    if ok:
                        break
                    await asyncio.sleep(0.25)
                print(f"  {'converged' if ok else 'NOT converged'} in {time.monotonic() - started:.1f}s")
                events = await asyncio.to_thread(operator_events, CoreV1Api(api), seen_events)
                print("  what the operator did (its events):" if events else "  the operator posted no event")
                if events:
                    print_table([["TYPE", "REASON", "OBJECT", "MESSAGE"], *events])
                print("  end state:")
                print_table(await asyncio.to_thread(pods_table, CoreV1Api(api), placement))
                print("  milvus: " + ", ".join(f"{g}={len(p)}" for g, p in sorted(placement.groups.items())))
                if not ok:
                    print(f"  step {step.name} did not converge within {step_timeout}s: {why}", file=sys.stderr)
                    return 1
            return 0
        finally:
            stop.set()
            await asyncio.wait({operator}, timeout=30)
            api.close()
    finally:
        await stop_process(sandbox)


async def start_sandbox(workdir: Path, seed: int | None,
                        milvus_version: str | None = None) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """`milvus-rg-operator sandbox` on free ports; its endpoints, read from what it prints."""
    args = [sys.executable, "-m", "milvus_rg_operator.cli", "sandbox", "--kube-port", "0", "--milvus-port", "0",
            "--management-port", "0", "--workdir", str(workdir), "--check-interval", "1", "--query-nodes", "1"]
    if seed is not None:
        args += ["--seed", str(seed)]
    if milvus_version is not None:
        args += ["--milvus-version", milvus_version]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    endpoints: dict[str, str] = {}
    while True:
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        if not line:
            raise RuntimeError(f"the sandbox exited early (code {await process.wait()})")
        if line.startswith("export KUBECONFIG="):
            return process, endpoints
        key, _, value = line.strip().partition(": ")
        endpoints[key] = value


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGINT (a clean stop), then SIGKILL if it has not exited within 15 s."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
