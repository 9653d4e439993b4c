"""Scale-in never drops serving capacity: the docs' scenario under the InvariantChecker, with faults.

Every test scales out to default 1 / rg1 3 / rg2 1 (5 pods), then scales in while the checker runs:
no watched group stays below its requests longer than Milvus's own recovery time, and no pod whose
node serves a group is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from milvus_rg_operator.adapters.kube import POOL_PLURAL, KubernetesClientGateway, new_api_client
from milvus_rg_operator.reconcile import PoolReconciler
from tests.integration.harness import (
    NAMESPACE,
    STATEFULSET,
    OperatorHarness,
    group_manifest,
    operator_on_sandbox,
    pool_manifest,
)
from tests.integration.invariants import InvariantChecker
from tests.support import wait_for

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"
WATCHED = (DEFAULT, "rg1", "rg2")
SCALED_OUT = {DEFAULT: 1, "rg1": 3, "rg2": 1, PENDING: 0}
DOCS_SCALED_IN = {DEFAULT: 1, "rg1": 2, "rg2": 1, PENDING: 0}
VICTIM = f"{STATEFULSET}-4"  # the StatefulSet removes its highest ordinal


async def scale_out(harness: OperatorHarness) -> None:
    await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                        group_manifest("rg1", 3), group_manifest("rg2", 1))
    await harness.wait_converged(SCALED_OUT, replicas=5)


def group_of_pod(harness: OperatorHarness, pod: str) -> str | None:
    rm = harness.sandbox.milvus.rm
    for node in rm.nodes.values():
        if node.hostname == pod and node.state.value == "Healthy":
            return rm.group_of(node.node_id)  # type: ignore[no-any-return]
    return None


def drain_forcing_shrink(harness: OperatorHarness) -> tuple[dict[str, Any], dict[str, int]]:
    """A scale-in by one node such that Milvus can never pick the victim pod itself: it must be drained.
    rg2 -> 0 when the victim serves rg1, otherwise rg1 -> 2. Returns the change and the nodes per group
    once it has converged."""
    victim_group = group_of_pod(harness, VICTIM)
    assert victim_group in WATCHED, victim_group
    if victim_group == "rg1":
        return group_manifest("rg2", 0), {DEFAULT: 1, "rg1": 3, "rg2": 0, PENDING: 0}
    return group_manifest("rg1", 2), DOCS_SCALED_IN


def declared_requests(converged: Mapping[str, int]) -> dict[str, int]:
    """The watched groups' requests as declared after a scale-in (which only lowers them). The checker holds
    each group to these, not to Milvus's own requests: a drain's surge raises those by one until the victim
    has left, and an operator stopped in between leaves them raised for a moment while the group still
    serves all it was asked to."""
    return {group: converged[group] for group in WATCHED}


async def drain_recorded(harness: OperatorHarness) -> bool:
    pool = await harness.get(POOL_PLURAL, "milvus") or {}
    return bool(((pool.get("status") or {}).get("scaleDown") or {}).get("draining"))


def victim_suspended(harness: OperatorHarness) -> bool:
    rm = harness.sandbox.milvus.rm
    return any(n.hostname == VICTIM and n.state.value == "Suspend" for n in rm.nodes.values())


def assert_no_node_left_out(harness: OperatorHarness) -> None:
    """Every live query node (not stopping, not crashed) is in some group; none is suspended. (Milvus 2.6: the
    query nodes embedded in streaming nodes are in no group by design.)"""
    rm = harness.sandbox.milvus.rm
    with harness.sandbox.milvus.controls.lock:
        left_out = [(n.node_id, n.hostname, n.state.value) for n in rm.nodes.values()
                    if n.state.value not in ("Stopping", "Offline") and not n.embedded
                    and rm.group_of(n.node_id) is None]
        suspended = [n.node_id for n in rm.nodes.values() if n.state.value == "Suspend"]
    assert not left_out, f"nodes in no group: {left_out}"
    assert not suspended, f"nodes still suspended: {suspended}"


async def assert_drains_cleared(harness: OperatorHarness) -> None:
    pool = await harness.get(POOL_PLURAL, "milvus") or {}
    scale_down = (pool.get("status") or {}).get("scaleDown") or {}
    assert not scale_down.get("draining"), scale_down
    assert not scale_down.get("suspendedNodes"), scale_down


def assert_safe(checker: InvariantChecker, removed: str = VICTIM) -> None:
    checker.assert_ok()
    removed_pods = [pod for pod, _ in checker.removed]
    assert removed in removed_pods, checker.removed
    assert all(group is None for _, group in checker.removed), f"removed while serving: {checker.removed}"
    assert checker.samples > 10


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_docs_scale_in_keeps_capacity(sandbox_factory: Any, seed: int) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=seed) as harness:
        await scale_out(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(DOCS_SCALED_IN),
                                    pending=PENDING) as checker:
            await harness.apply(group_manifest("rg1", 2))
            await harness.wait_converged(DOCS_SCALED_IN, replicas=4)
        assert_safe(checker)
        assert_no_node_left_out(harness)


@pytest.mark.parametrize("kill_when", ["drain-recorded", "node-suspended"])
async def test_operator_killed_mid_drain_converges(sandbox_factory: Any, kill_when: str) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=11) as harness:
        await scale_out(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            await harness.apply(change)
            if kill_when == "drain-recorded":
                await wait_for(lambda: drain_recorded(harness), timeout=15, message="a draining entry")
            else:
                await wait_for(lambda: victim_suspended(harness), timeout=15, message=f"{VICTIM} suspended")
            await harness.kill_operator()
            await harness.start_operator()
            await harness.wait_converged(expected, replicas=4, timeout=40)
        assert_safe(checker)
        assert_no_node_left_out(harness)
        await assert_drains_cleared(harness)


async def test_milvus_unavailable_mid_drain_recovers(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=12) as harness:
        await scale_out(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            await harness.apply(change)
            await wait_for(lambda: drain_recorded(harness), timeout=15, message="a draining entry")
            harness.sandbox.milvus.set_unavailable(True)
            await wait_for(lambda: harness.true_condition("Degraded", ("MilvusUnavailable", "MilvusError")),
                           timeout=15, message="pool Degraded by Milvus being unavailable")
            harness.sandbox.milvus.set_unavailable(False)
            await harness.wait_converged(expected, replicas=4, timeout=40)
        assert_safe(checker)
        assert_no_node_left_out(harness)


async def test_management_api_disabled_blocks_drain(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=13) as harness:
        await scale_out(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            harness.sandbox.milvus.set_management_enabled(False)
            await harness.apply(change)
            found = await wait_for(lambda: harness.true_condition("Degraded"), timeout=15, message="pool Degraded")
            assert found["reason"] == "ManagementAPIUnavailable", found
            assert VICTIM in found["message"], found
            await harness.resync_passes(2)
            assert await harness.replicas() == 5
            victim = next(p for p in await harness.pods() if p.metadata.name == VICTIM)
            assert victim.metadata.deletion_timestamp is None
            assert group_of_pod(harness, VICTIM) in WATCHED  # still serving, untouched
            assert checker.removed == []

            # Back on: the drain goes ahead and the scale-in completes.
            harness.sandbox.milvus.set_management_enabled(True)
            await harness.wait_converged(expected, replicas=4, timeout=40)
        assert_safe(checker)
        assert_no_node_left_out(harness)


KUBE_FAULTS = [
    ("PATCH", r"/statefulsets/milvus-querynode/scale$", 409, 2),
    ("PATCH", r"/statefulsets/milvus-querynode/scale$", 500, 2),
    ("PATCH", r"/querynodepools/milvus/status$", 409, 3),
    ("PATCH", r"/querynodepools/milvus/status$", 429, 3),
    ("GET", r"/api/v1/namespaces/default/pods$", 500, 3),
    ("PATCH", r"/api/v1/namespaces/default/pods/", 429, 3),
]


@pytest.mark.parametrize(("method", "path", "status", "times"), KUBE_FAULTS,
                         ids=[f"{m}-{p.split('/')[-2] if p.endswith('/') else p.split('/')[-1]}-{s}"
                              .replace("$", "") for m, p, s, _ in KUBE_FAULTS])
async def test_kube_api_errors_during_scale_in_converge(sandbox_factory: Any, method: str, path: str,
                                                        status: int, times: int) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=14) as harness:
        await scale_out(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            # Only the operator's requests fail (its own client's user agent), not the test's probes.
            fault = harness.sandbox.kube.inject_fault(method, path, status, times, user_agent="milvus-rg-operator/")
            await harness.apply(change)
            await harness.wait_converged(expected, replicas=4, timeout=60)
        assert fault.hits > 0, "the injected fault was never hit"
        assert_safe(checker)
        assert_no_node_left_out(harness)


async def test_a_failed_pass_is_retried_with_exponential_backoff(sandbox_factory: Any) -> None:
    """The production schedule: 2, 4, 8, ... s after consecutive failures, at most 60 s; reset by a success."""
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.stop_operator()
        reconciler = PoolReconciler(KubernetesClientGateway(new_api_client()))
        pool_read = r"/querynodepools/milvus$"
        try:
            harness.sandbox.kube.inject_fault("GET", pool_read, 500, 7, user_agent="milvus-rg-operator/")
            delays = [(await reconciler.reconcile(NAMESPACE, "milvus")).requeue_after for _ in range(7)]
            assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
            recovered = await reconciler.reconcile(NAMESPACE, "milvus")  # the fault is spent; no pool exists
            assert recovered.pool_gone and recovered.requeue_after == 0
            harness.sandbox.kube.inject_fault("GET", pool_read, 500, 1, user_agent="milvus-rg-operator/")
            assert (await reconciler.reconcile(NAMESPACE, "milvus")).requeue_after == 2.0  # counted afresh
        finally:
            await reconciler.close()


@pytest.mark.parametrize("kill_when", ["configs-written", "replicas-raised"])
async def test_operator_killed_during_scale_out_converges(sandbox_factory: Any, kill_when: str) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                            group_manifest("rg1", 0), group_manifest("rg2", 0))
        await harness.wait_converged({DEFAULT: 1, "rg1": 0, "rg2": 0, PENDING: 0}, replicas=1)
        updates = harness.sandbox.milvus.write_rpcs["UpdateResourceGroups"]
        async with InvariantChecker(harness.sandbox, groups=(), pending=PENDING) as checker:
            await harness.apply(group_manifest("rg1", 3), group_manifest("rg2", 1))
            if kill_when == "configs-written":
                await wait_for(lambda: harness.sandbox.milvus.write_rpcs["UpdateResourceGroups"] > updates,
                               timeout=15, message="the Milvus update")
            else:
                await wait_for(lambda: _replicas_at_least(harness, 5), timeout=15, message="replicas raised")
            await harness.kill_operator()
            await harness.start_operator()
            await harness.wait_converged(SCALED_OUT, replicas=5)
        assert not checker.removal_violations, checker.removal_violations
        assert_no_node_left_out(harness)


async def _replicas_at_least(harness: OperatorHarness, count: int) -> bool:
    return await harness.replicas() >= count
