"""What an SRE reads: one INFO log line per write with its reason, no secret anywhere, metrics that match
what happened, and one bad ResourceGroup that cannot block the rest of its pool."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from typing import Any

import pytest
from kubernetes.client import V1ObjectMeta, V1Secret
from prometheus_client.parser import text_string_to_metric_families

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from milvus_rg_operator.metrics import OperatorMetrics, serve
from tests.integration.harness import NAMESPACE, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

PENDING = "__pending_nodes"
WRITE_LOG = "milvus_rg_operator.reconcile"
TOKEN = "svc-operator:Qz7-unlikely-p4ssw0rd-3141"


def write_lines(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records
            if r.name == WRITE_LOG and r.levelno == logging.INFO and r.getMessage().startswith("pool default/milvus: ")]


async def test_every_write_is_one_info_line_with_its_reason(sandbox_factory: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=WRITE_LOG)
    async with operator_on_sandbox(sandbox_factory, replicas=1) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1, PENDING: 0}, replicas=1)
        await harness.resync_passes()
        caplog.clear()
        milvus_before = harness.milvus_writes()
        kube_before = len(harness.sandbox.kube.mutations)
        await harness.apply(group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, PENDING: 0}, replicas=2)
        await harness.resync_passes()
        lines = write_lines(caplog.records)
        operator_kube_writes = [m for m in harness.sandbox.kube.mutations[kube_before:]
                                if m.user_agent.startswith("milvus-rg-operator/")]
        operator_milvus_writes = harness.milvus_writes() - milvus_before
        assert operator_kube_writes and operator_milvus_writes
        assert len(lines) == len(operator_kube_writes) + operator_milvus_writes, "\n".join(lines)
        update = [line for line in lines if line.startswith("pool default/milvus: update_resource_groups")]
        assert update == [
            "pool default/milvus: update_resource_groups rg1 requests 1->2 limits 1->2 "
            "(ResourceGroup rg1 generation 2)"], lines
        scale = [line for line in lines if line.startswith("pool default/milvus: scale StatefulSet")]
        assert len(scale) == 1 and "milvus-querynode 1->2" in scale[0] and "(" in scale[0], lines
        # Every line says why: "<what> (<reason>)".
        assert all(line.endswith(")") and " (" in line for line in lines), lines


async def test_no_secret_in_any_log_status_or_event(sandbox_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = TOKEN.split(":", 1)[1]
    async with operator_on_sandbox(sandbox_factory, token=TOKEN) as harness:
        body = V1Secret(metadata=V1ObjectMeta(name="milvus-token"), string_data={"token": TOKEN})
        await asyncio.to_thread(harness.core.create_namespaced_secret, NAMESPACE, body)
        pool = pool_manifest()
        pool["spec"]["milvus"]["secretRef"] = {"name": "milvus-token", "key": "token"}
        await harness.apply(pool, group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1, PENDING: 0}, replicas=1)
        # A wrong password, then the right one again: the failure path logs and reports too.
        await asyncio.to_thread(harness.core.patch_namespaced_secret, "milvus-token", NAMESPACE,
                                {"stringData": {"token": "svc-operator:Wr0ng-but-also-secret-2718"}})
        await harness.resync_passes()
        await wait_for(lambda: harness.true_condition("Degraded"), timeout=20, message="credentials refused")
        everything = [json.dumps(await harness.get(POOL_PLURAL, "milvus")),
                      json.dumps(await harness.get(RESOURCE_GROUP_PLURAL, "rg1")),
                      *(f"{e.reason} {e.message}" for e in await harness.events()),
                      *(r.getMessage() for r in caplog.records), caplog.text]
    for text in everything:
        assert password not in text and "Wr0ng-but-also-secret-2718" not in text


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_match_what_happened(sandbox_factory: Any) -> None:
    metrics = OperatorMetrics()
    server = serve(metrics, 0, "127.0.0.1")
    try:
        async with operator_on_sandbox(sandbox_factory, replicas=1, metrics=metrics) as harness:
            await harness.apply(pool_manifest(), group_manifest("rg1", 2), group_manifest("rg2", 1))
            await harness.wait_converged({"rg1": 2, "rg2": 1, PENDING: 0}, replicas=3)
            await harness.resync_passes()
            values = await asyncio.to_thread(scrape, server.port)
    finally:
        server.stop()
    pool = ("pool", "default/milvus")
    assert values[("milvusrg_reconcile_passes_total", (pool, ("result", "converged")))] >= 1
    assert values[("milvusrg_writes_total", (("target", "milvus"), ("verb", "create_resource_group")))] == 3
    assert values[("milvusrg_writes_total", (("target", "kubernetes"), ("verb", "scale_workload")))] >= 1
    assert values[("milvusrg_group_desired_nodes", (("group", "rg1"), pool))] == 2
    assert values[("milvusrg_group_actual_nodes", (("group", "rg1"), pool))] == 2
    assert values[("milvusrg_group_actual_nodes", (("group", "rg2"), pool))] == 1
    assert values[("milvusrg_drains", (("phase", "MovingData"), pool))] == 0
    assert values[("milvusrg_last_success_timestamp_seconds", (pool,))] > 0


async def test_an_invalid_group_is_reported_and_the_others_go_on(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=1) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1), group_manifest("rg2", 1))
        await harness.wait_converged({"rg1": 1, "rg2": 1, PENDING: 0}, replicas=2)
        rg2_before = str(await harness.group_config("rg2"))
        # rg2 turns invalid (a transfer target that exists nowhere); rg1 scales at the same time.
        await harness.apply(group_manifest("rg2", 3, transferTo=["nowhere"]), group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2, "rg2": 1, PENDING: 0}, replicas=3, timeout=30)
        degraded = await wait_for(lambda: harness.true_condition("Degraded", ("ValidationFailed",),
                                                                 RESOURCE_GROUP_PLURAL, "rg2"), timeout=10,
                                  message="rg2 Degraded")
        assert "spec.transferTo[0]" in degraded["message"]
        assert str(await harness.group_config("rg2")) == rg2_before  # left as it is in Milvus
        assert await harness.true_condition("Degraded", kind_plural=RESOURCE_GROUP_PLURAL, name="rg1") is None

        async def rg2_events() -> list[Any]:
            return [e for e in await harness.events("ValidationFailed") if e.involved_object.name == "rg2"]

        await wait_for(rg2_events, timeout=10, message="a ValidationFailed event on rg2")  # posted after the status
        await harness.resync_passes(2)
        events = await rg2_events()
        assert len(events) == 1 and "spec.transferTo[0]" in events[0].message
        # Fixed (the merge patch removes the bad target): rg2 goes on from where it was.
        await harness.apply(group_manifest("rg2", 2, transferTo=None))
        await harness.wait_converged({"rg1": 2, "rg2": 2, PENDING: 0}, replicas=4, timeout=30)


async def test_a_pool_wide_problem_stops_every_group(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=1) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1, PENDING: 0}, replicas=1)
        milvus_before = harness.milvus_writes()
        await harness.apply(pool_manifest(maxNodes=2), group_manifest("rg1", 2), group_manifest("rg2", 1))
        await wait_for(lambda: harness.true_condition("Degraded", ("ValidationFailed",)), timeout=10,
                       message="pool Degraded")
        async def pool_problem_on_rg1() -> dict[str, Any] | None:
            ready = await harness.condition(RESOURCE_GROUP_PLURAL, "rg1", "Ready")
            return ready if ready and ready["reason"] == "PoolInvalid" else None

        group = await wait_for(pool_problem_on_rg1, timeout=10, message="rg1 reports its pool's problem")
        assert group["status"] == "False" and "spec.maxNodes" in group["message"]
        assert harness.milvus_writes() == milvus_before
        assert await harness.replicas() == 1

