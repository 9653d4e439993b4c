"""`milvus-rg-operator plan --milvus URI` against Milvus versions the operator cannot fully work with
(the simulator at that version; tests/realmilvus checks a real 2.3.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.test_cli import cli


def manifests(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(
        "apiVersion: milvusrg.io/v1alpha1\nkind: QueryNodePool\nmetadata: {name: milvus}\n"
        f"spec: {{milvus: {{uri: '{uri}'}}, statefulSetName: milvus-querynode}}\n"
        "---\napiVersion: milvusrg.io/v1alpha1\nkind: ResourceGroup\nmetadata: {name: rg1}\n"
        "spec: {pool: milvus, requests: {nodeNum: 1}}\n")
    return path


async def test_plan_refuses_a_milvus_older_than_2_4_1_and_prints_no_plan(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = await sandbox_factory(milvus_version="v2.3.5")
    writes = sum(sandbox.milvus.write_rpcs.values())
    code, out, err = await cli("plan", "-f", str(manifests(tmp_path, sandbox.milvus.uri)),
                               "--milvus", sandbox.milvus.uri)
    assert code == 1
    assert "Milvus v2.3.5 is older than 2.4.1" in err and "UpdateResourceGroups" in err
    assert out == ""  # no plan at all, so nothing misread (e.g. the default group's limits as 0)
    assert sum(sandbox.milvus.write_rpcs.values()) == writes


async def test_plan_on_2_4_5_plans_but_says_no_drain_can_start(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = await sandbox_factory(milvus_version="v2.4.5")
    code, out, err = await cli("plan", "-f", str(manifests(tmp_path, sandbox.milvus.uri)),
                               "--milvus", sandbox.milvus.uri)
    assert code == 0, err
    assert "+ create_resource_group rg1" in out
    assert "Milvus v2.4.5: node/suspend keeps the node in its group before 2.4.10" in err
