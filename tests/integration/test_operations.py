"""`milvus-rg-operator run` as the image runs it, a process of its own against the sandbox: after a scale-out
its /metrics endpoint shows the passes, writes and group sizes, its health endpoint answers, and its JSON log
has one line per write and neither kopf's per-event lines nor the Milvus token."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from kubernetes.client import V1ObjectMeta, V1Secret
from prometheus_client.parser import text_string_to_metric_families

from milvus_rg_operator.adapters.kube import request_json
from milvus_rg_operator.demo import stop_process
from milvus_rg_sandbox.realkube.control_plane import free_port
from tests.integration.harness import NAMESPACE, OperatorHarness, group_manifest, pool_manifest
from tests.support import wait_for

TOKEN = "root:Sup3rS3cret"
POOL = f"{NAMESPACE}/milvus"


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    _, text = http_get(url)
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(series: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(value for (sample, sample_labels), value in series.items()
               if sample == name and set(labels.items()) <= sample_labels)


@contextlib.asynccontextmanager
async def operator_process(kubeconfig: str, metrics_port: int, health_port: int, lease: str
                           ) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "milvus_rg_operator.cli", "run", "--namespace", NAMESPACE,
        "--metrics-port", str(metrics_port), "--liveness", f"http://127.0.0.1:{health_port}/healthz",
        "--log-format", "json", "--lease-name", lease, env={**os.environ, "KUBECONFIG": kubeconfig},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        yield process
    finally:
        await stop_process(process)  # SIGINT, then SIGKILL if it does not exit


async def test_metrics_health_and_logs_of_a_running_operator(sandbox_factory: Any) -> None:
    sandbox = await sandbox_factory(seed=7, token=TOKEN)
    harness = OperatorHarness(sandbox)
    metrics_port, health_port = free_port(), free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        await harness.install(replicas=1)
        secret = V1Secret(metadata=V1ObjectMeta(name="milvus-token"), string_data={"token": TOKEN})
        await asyncio.to_thread(harness.core.create_namespaced_secret, NAMESPACE, secret)
        pool = pool_manifest(milvus={"uri": "placeholder", "secretRef": {"name": "milvus-token"}})
        async with operator_process(str(sandbox.kubeconfig_path), metrics_port, health_port,
                                    harness.lease_name) as process:
            await harness.apply(pool, group_manifest("rg1", 1))
            await harness.wait_converged({"rg1": 1}, replicas=1, timeout=60)
            await harness.apply(group_manifest("rg1", 2))
            await harness.wait_converged({"rg1": 2}, replicas=2, timeout=60)

            def group_gauges_caught_up() -> bool:
                series = scrape(metrics_url)
                return (total(series, "milvusrg_group_actual_nodes", pool=POOL, group="rg1") == 2
                        and total(series, "milvusrg_reconcile_passes_total", pool=POOL, result="converged") > 0)

            await wait_for(lambda: asyncio.to_thread(group_gauges_caught_up), timeout=30,
                           message="metrics of the converged pool")
            series = await asyncio.to_thread(scrape, metrics_url)
            health = await asyncio.to_thread(http_get, f"http://127.0.0.1:{health_port}/healthz")
            assert health == (200, '{"leading": true}')
            signalled_at = time.time()
            process.send_signal(signal.SIGINT)
            assert process.stderr is not None
            async with asyncio.timeout(30):
                log = (await process.stderr.read()).decode()
                assert await process.wait() == 0
        lease = await asyncio.to_thread(request_json, harness.api, "GET", f"/apis/coordination.k8s.io/v1/namespaces/"
                                        f"{NAMESPACE}/leases/{harness.lease_name}")
        assert lease["spec"]["holderIdentity"] == ""  # released on the clean stop
    finally:
        await harness.close()

    assert total(series, "milvusrg_group_desired_nodes", pool=POOL, group="rg1") == 2
    assert total(series, "milvusrg_reconcile_pass_duration_seconds_count", pool=POOL) >= 2
    assert total(series, "milvusrg_last_success_timestamp_seconds", pool=POOL) > 0
    assert total(series, "milvusrg_reconcile_passes_total", pool=POOL, result="failed") == 0
    assert total(series, "milvusrg_drains", pool=POOL) == 0
    assert total(series, "milvusrg_leader") == 1
    writes = {dict(labels)["verb"]: value for (name, labels), value in series.items()
              if name == "milvusrg_writes_total"}
    # rg1 and the pending group created; rg1's requests 1 -> 2; the StatefulSet 1 -> 2.
    assert writes.get("create_resource_group", 0) >= 1 and writes.get("update_resource_groups", 0) >= 1
    assert writes.get("scale_workload", 0) >= 1

    not_json = [line for line in log.splitlines() if line.strip() and not line.startswith("{")]
    assert not_json == []
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert "Sup3rS3cret" not in log
    assert not [line for line in lines if "succeeded" in line["message"] and line["logger"].startswith("kopf")]
    ours = [line["message"] for line in lines if line["logger"].startswith("milvus_rg_operator")
            and line["level"] == "INFO"]
    assert any(f"pool {POOL}:" in message and "scale" in message for message in ours), ours
    # One INFO line per write the metrics counted (a write is logged before it is counted).
    write_lines = [message for message in ours if message.startswith(f"pool {POOL}: ")]
    assert len(write_lines) >= sum(writes.values()), (write_lines, writes)
    # The Lease's writes too, each with its reason: created at start, renewed, released on the clean stop.
    lease_writes = [message.split(": ", 1)[1] for message in ours if message.startswith("lease ")
                    and " for " in message]
    assert lease_writes[0].startswith("create for ") and lease_writes[-1].startswith("release for "), lease_writes
    # Released within moments of the signal: kopf is stopped through its stop flag (through its own signal
    # handler it would first wait 5 s for a task it leaves running).
    released_at = max(datetime.datetime.fromisoformat(line["time"]).timestamp() for line in lines
                      if line["message"].startswith("lease ") and " release for " in line["message"])
    assert released_at - signalled_at < 3, f"released {released_at - signalled_at:.1f} s after the signal"
