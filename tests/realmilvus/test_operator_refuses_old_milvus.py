"""End to end against a real Milvus 2.3.5: the operator (kopf, kubernetes client, pymilvus; Kubernetes from
the sandbox) refuses it before any write, and so does `plan`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymilvus import AsyncMilvusClient

from milvus_rg_operator.core.types import DEFAULT_GROUP
from tests.integration.harness import group_manifest, operator_on_sandbox, pool_manifest
from tests.integration.test_cli import cli
from tests.realmilvus.conftest import RealMilvus
from tests.support import wait_for


async def milvus_groups(real_milvus: RealMilvus) -> list[str]:
    client = AsyncMilvusClient(uri=real_milvus.uri, timeout=10)
    try:
        return sorted(await client.list_resource_groups(timeout=10))
    finally:
        await client.close()


async def test_plan_exits_non_zero_and_prints_no_plan(real_milvus: RealMilvus, tmp_path: Path) -> None:
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(
        "apiVersion: milvusrg.io/v1alpha1\nkind: QueryNodePool\nmetadata: {name: milvus}\n"
        f"spec: {{milvus: {{uri: '{real_milvus.uri}'}}, statefulSetName: milvus-querynode}}\n"
        "---\napiVersion: milvusrg.io/v1alpha1\nkind: ResourceGroup\nmetadata: {name: rg1}\n"
        "spec: {pool: milvus, requests: {nodeNum: 2}}\n")
    code, out, err = await cli("plan", "-f", str(manifest), "--milvus", real_milvus.uri)
    assert code == 1
    assert "Milvus v2.3.5-lite is older than 2.4.1" in err
    assert out == ""
    assert await milvus_groups(real_milvus) == [DEFAULT_GROUP]


async def test_the_operator_refuses_it_and_writes_nothing(real_milvus: RealMilvus, sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        replicas = await harness.replicas()
        await harness.apply(pool_manifest(milvus={"uri": real_milvus.uri, "managementUri": real_milvus.management_uri}),
                            group_manifest("rg1", 2), group_manifest("rg2", 1))
        degraded = await wait_for(lambda: harness.true_condition("Degraded", ("UnsupportedMilvusVersion",)),
                                  timeout=30, message="Degraded UnsupportedMilvusVersion")
        assert "v2.3.5" in degraded["message"] and "2.4.1" in degraded["message"]
        await harness.resync_passes(3)  # later passes neither write nor repeat the event

        warnings = [e for e in await harness.events() if e.type == "Warning" and "v2.3.5" in (e.message or "")
                    and e.involved_object.kind == "QueryNodePool"]
        assert len(warnings) == 1, [(e.reason, e.message, e.count) for e in warnings]
        assert (warnings[0].count or 1) == 1
        assert await milvus_groups(real_milvus) == [DEFAULT_GROUP]  # no __pending_nodes, rg1, rg2
        assert await harness.replicas() == replicas
