"""Each spec field, end to end against the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from milvus_rg_operator.api.models import ANNOTATION_PAUSED, API_GROUP, VERSION
from tests.integration.harness import NAMESPACE, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

PENDING = "__pending_nodes"


async def test_spare_nodes_stay_warm_in_the_pending_group(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(spareNodes=2), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1, PENDING: 2}, replicas=3)


async def test_min_and_max_nodes_clamp_replicas(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(minNodes=3, maxNodes=5), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1, PENDING: 2}, replicas=3)
        pool = await harness.get(POOL_PLURAL, "milvus")
        assert pool is not None and pool["status"]["desiredReplicas"] == 3


async def test_explicit_group_name_limits_and_transfers_reach_milvus(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("search", 1, groupName="search_rg", limits={"nodeNum": 2}),
                            group_manifest("batch", 1, transferFrom=["search_rg", PENDING], transferTo=[PENDING]))
        await harness.wait_converged({"search_rg": 1, "batch": 1}, replicas=2)
        search = await harness.group_config("search_rg")
        assert (search.requests.node_num, search.limits.node_num) == (1, 2)
        batch = await harness.group_config("batch")
        assert sorted(t.resource_group for t in batch.transfer_from) == [PENDING, "search_rg"]
        group = await harness.get(RESOURCE_GROUP_PLURAL, "search")
        assert group is not None and group["status"]["groupName"] == "search_rg"
        assert group["status"]["selector"] == "milvusrg.io/resource-group=search_rg"


async def test_node_labels_become_a_milvus_node_filter(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("zoned", 1, nodeLabels={"ZONE": "az1"}))
        await wait_for(lambda: _group_nodes(harness, "zoned", 0, exists=True), timeout=15, message="group created")
        config = await harness.group_config("zoned")
        assert [(kv.key, kv.value) for kv in config.node_filter.node_labels] == [("ZONE", "az1")]


async def test_scale_subresource_sets_requests_and_limits_in_one_step(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1}, replicas=1)
        await asyncio.to_thread(harness.custom.patch_namespaced_custom_object_scale, API_GROUP, VERSION, NAMESPACE,
                                RESOURCE_GROUP_PLURAL, "rg1", {"spec": {"replicas": 3}})
        await harness.wait_converged({"rg1": 3}, replicas=3)
        config = await harness.group_config("rg1")
        assert config.requests.node_num == config.limits.node_num == 3
        scale = await asyncio.to_thread(harness.custom.get_namespaced_custom_object_scale, API_GROUP, VERSION,
                                        NAMESPACE, RESOURCE_GROUP_PLURAL, "rg1")
        assert scale["status"]["replicas"] == 3


async def test_deleted_group_is_emptied_then_dropped(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1), group_manifest("rg2", 1))
        await harness.wait_converged({"rg1": 1, "rg2": 1}, replicas=2)
        await harness.delete(RESOURCE_GROUP_PLURAL, "rg2")
        await wait_for(lambda: _gone(harness, "rg2"), timeout=20, message="rg2 dropped and its CR released")
        await harness.wait_converged({"rg1": 1}, replicas=1)
        assert "rg2" not in await harness.placement()


async def _gone(harness: Any, name: str) -> bool:
    return await harness.get(RESOURCE_GROUP_PLURAL, name) is None


async def test_operator_creates_and_owns_a_statefulset_from_the_template(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        template = {"metadata": {"labels": {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/component":
                                            "querynode", "app.kubernetes.io/instance": "owned"}},
                    "spec": {"containers": [{"name": "querynode", "image": "milvusdb/milvus:v2.5.4",
                                             "command": ["milvus", "run", "querynode"]}]}}
        await harness.apply(pool_manifest("owned", statefulSetName="owned-querynode", template=template),
                            group_manifest("rg1", 2, pool="owned"))
        sts = await wait_for(lambda: _statefulset(harness, "owned-querynode"), timeout=15,
                             message="StatefulSet created")
        assert sts.metadata.owner_references[0].kind == "QueryNodePool"
        await wait_for(lambda: _group_nodes(harness, "rg1", 2), timeout=20, message="rg1 has its 2 nodes")


async def _statefulset(harness: Any, name: str) -> Any:
    items = (await asyncio.to_thread(harness.apps.list_namespaced_stateful_set, NAMESPACE)).items
    return next((s for s in items if s.metadata.name == name), None)


async def _group_nodes(harness: Any, group: str, count: int, exists: bool = False) -> bool:
    placement = await harness.placement()
    return (group in placement or not exists) and len(placement.get(group, [])) == count


async def test_paused_pool_writes_nothing_and_says_so(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1}, replicas=1)
        await harness.patch(POOL_PLURAL, "milvus", {"metadata": {"annotations": {ANNOTATION_PAUSED: "true"}}})
        await wait_for(lambda: harness.true_condition("Paused"), timeout=10, message="Paused condition")
        milvus_before = harness.milvus_writes()
        await harness.apply(group_manifest("rg1", 3))
        await harness.resync_passes(2)
        assert harness.milvus_writes() == milvus_before
        assert await harness.replicas() == 1
        await harness.patch(POOL_PLURAL, "milvus", {"metadata": {"annotations": {ANNOTATION_PAUSED: None}}})
        await harness.wait_converged({"rg1": 3}, replicas=3)


async def test_restarted_operator_converges_with_no_extra_change(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 2), group_manifest("rg2", 1))
        await harness.wait_converged({"rg1": 2, "rg2": 1}, replicas=3)
        await harness.resync_passes(2)
        await harness.kill_operator()
        kube_before, milvus_before = harness.kube_writes(), harness.milvus_writes()
        await harness.start_operator()
        await harness.resync_passes(2)
        await harness.wait_converged({"rg1": 2, "rg2": 1}, replicas=3)
        assert harness.kube_writes() == kube_before
        assert harness.milvus_writes() == milvus_before


async def test_milvus_outage_degrades_then_recovers_without_manual_steps(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1}, replicas=1)
        harness.sandbox.milvus.set_unavailable(True)
        await harness.apply(group_manifest("rg1", 2))
        degraded = await wait_for(lambda: harness.true_condition("Degraded"), timeout=20,
                                  message="Degraded: Milvus unavailable")
        assert degraded["reason"] == "MilvusUnavailable"
        assert await harness.replicas() == 1  # nothing scaled while Milvus cannot confirm placement
        harness.sandbox.milvus.set_unavailable(False)
        await harness.wait_converged({"rg1": 2}, replicas=2, timeout=60)


async def test_milvus_outage_is_shown_on_every_group_and_a_waiting_deletion_says_why(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1), group_manifest("rg2", 1))
        await harness.wait_converged({"rg1": 1, "rg2": 1}, replicas=2)
        harness.sandbox.milvus.set_unavailable(True)
        await harness.delete(RESOURCE_GROUP_PLURAL, "rg2")

        async def deletion_waits() -> dict[str, Any] | None:
            found = await harness.condition(RESOURCE_GROUP_PLURAL, "rg2", "Ready")
            return found if found and "deletion waits" in found["message"] else None

        waiting = await wait_for(deletion_waits, timeout=20, message="rg2 says why its deletion waits")
        assert waiting["reason"] == "MilvusUnavailable"
        rg1 = await harness.condition(RESOURCE_GROUP_PLURAL, "rg1", "Degraded")
        assert rg1 is not None and rg1["status"] == "True" and rg1["reason"] == "MilvusUnavailable"
        await harness.resync_passes(2)
        warnings = [e for e in await harness.events("MilvusUnavailable") if e.type == "Warning"]
        assert sorted(e.involved_object.name for e in warnings) == ["milvus", "rg1", "rg2"]  # once each
        assert await harness.get(RESOURCE_GROUP_PLURAL, "rg2") is not None  # held by its finalizer
        harness.sandbox.milvus.set_unavailable(False)

        async def rg2_gone() -> bool:
            return await harness.get(RESOURCE_GROUP_PLURAL, "rg2") is None

        await wait_for(rg2_gone, timeout=60, message="rg2 deleted once Milvus is back")
        await harness.wait_converged({"rg1": 1}, replicas=1, timeout=60)
