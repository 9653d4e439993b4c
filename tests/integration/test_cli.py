"""The console script's `plan` and `crds` commands, as a user runs them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_operator.adapters.kube import KubernetesClientGateway, new_api_client
from milvus_rg_operator.api.crds import render_crds_yaml
from milvus_rg_operator.core import actions as act
from milvus_rg_operator.dryrun import dry_run
from tests.integration.harness import OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "milvus_rg_operator.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_crds_command_prints_exactly_the_files_in_crds() -> None:
    code, out, _ = await cli("crds")
    assert code == 0
    assert out.strip() == "\n---\n".join(text.strip() for _, text in sorted(render_crds_yaml().items()))
    for name, text in render_crds_yaml().items():
        assert (ROOT / "crds" / name).read_text() == text


async def test_plan_without_milvus_shows_the_batch_and_replicas() -> None:
    code, out, err = await cli("plan", "-f", "examples/01-init", "-f", "examples/02-scale-out")
    assert code == 0, err
    assert "+ create_resource_group rg1" in out and '"nodeNum": 3' in out
    assert "+ create_resource_group __default_resource_group" not in out  # Milvus always has it
    assert "__default_resource_group:" in out  # ... so it is updated, in the one batch
    assert out.strip().endswith("replicas 5")


async def test_plan_refuses_invalid_manifests_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "examples/01-init/pool.yaml").read_text() + "\n---\n"
                   "apiVersion: milvusrg.io/v1alpha1\nkind: ResourceGroup\nmetadata: {name: rg1}\n"
                   "spec: {pool: milvus, requests: {nodeNum: 1}, transferFrom: [nowhere]}\n")
    code, _, err = await cli("plan", "-f", str(bad))
    assert code == 1
    assert "spec.transferFrom[0]" in err


async def test_plan_against_a_converged_milvus_changes_nothing(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1}, replicas=1)
        writes = harness.milvus_writes()
        manifest = Path(harness.sandbox.config.workdir) / "pool.yaml"
        manifest.write_text(
            "apiVersion: milvusrg.io/v1alpha1\nkind: QueryNodePool\nmetadata: {name: milvus}\n"
            f"spec: {{milvus: {{uri: '{harness.sandbox.milvus.uri}'}}, statefulSetName: milvus-querynode}}\n"
            "---\napiVersion: milvusrg.io/v1alpha1\nkind: ResourceGroup\nmetadata: {name: rg1}\n"
            "spec: {pool: milvus, requests: {nodeNum: 1}}\n")
        code, out, err = await cli("plan", "-f", str(manifest), "--milvus", harness.sandbox.milvus.uri)
        assert code == 0, err
        assert "(Milvus already matches)" in out
        assert harness.milvus_writes() == writes  # a dry run writes nothing


@pytest.mark.parametrize("version", [None, "v2.6.20"], ids=["default", "v2.6.20"])
async def test_demo_runs_the_docs_practice_and_exits_zero(tmp_path: Path, version: str | None) -> None:
    code, out, err = await cli("demo", "--workdir", str(tmp_path), *(("--milvus-version", version) if version else ()))
    assert code == 0, out + err
    assert f"Milvus {version or 'v2.5.16'}\n" in out
    assert out.count("converged in") == 3 and "NOT converged" not in out
    assert "milvus: __default_resource_group=1, __pending_nodes=0, rg1=2, rg2=1" in out
    # Each step shows the operator's events, read back from the API: groups written, replicas changed (a
    # drain only when Milvus's random choice left the highest pod serving).
    assert out.count("what the operator did") == 3
    assert all(reason in out for reason in ("GroupCreated", "GroupsUpdated", "ScaledOut", "ScaledIn")), out


def settled_world(harness: OperatorHarness) -> Any:
    """A probe true once two reads in a row see the same pods (names, uids) and Milvus nodes: the same world for
    the dry run and the first pass (kwok may still replace a just-created pod on the real backend)."""
    seen: list[Any] = []

    async def probe() -> bool:
        pods = sorted((p.metadata.name, p.metadata.uid) for p in await harness.pods())
        nodes = sorted((n.node_id, n.hostname) for n in harness.sandbox.milvus.rm.nodes.values())
        seen.append((pods, nodes))
        return len(seen) > 1 and seen[-1] == seen[-2]

    return probe


async def test_the_dry_run_plans_exactly_the_operators_first_pass(sandbox_factory: Any) -> None:
    """`plan` and `run` are one planner: on the same world (a StatefulSet of 3 pods registered in Milvus, a pool,
    a valid group and an invalid one), the dry run's actions are the writes of the operator's first pass."""
    sandbox = await sandbox_factory(seed=7)
    harness = OperatorHarness(sandbox)
    try:
        await harness.install(replicas=3)
        await wait_for(settled_world(harness), timeout=20, interval=0.5, message="pods and nodes settled")
        manifests = [harness.point_at_sandbox(o) for o in (
            pool_manifest(), group_manifest("rg1", 2), group_manifest("rg2", 1, transferTo=["nowhere"]))]
        cluster = KubernetesClientGateway(new_api_client())
        _, planned = await dry_run(manifests, milvus_uri=sandbox.milvus.uri, token=None, replicas=None,
                                   cluster=cluster)
        assert [(p.name, p.field) for p in planned.problems] == [("rg2", "spec.transferTo[0]")]
        assert any(isinstance(a, act.CreateGroup) and a.name == "rg1" for a in planned.actions)
        assert any(isinstance(a, act.LabelPod) for a in planned.actions)

        await harness.apply(*manifests)
        await harness.start_operator()
        await wait_for(lambda: harness.reports, timeout=10, message="the operator's first pass")
        _, first = harness.reports[0]
        def in_order(actions: Any) -> list[tuple[str, str]]:
            """The writes, pod labels by pod: they go out concurrently and are reported as they complete."""
            writes = [a for a in actions if not isinstance(a, act.PostEvent)]
            labels = sorted((a.summary, a.reason) for a in writes if isinstance(a, act.LabelPod))
            return [(a.summary, a.reason) for a in writes if not isinstance(a, act.LabelPod)] + labels

        assert in_order(first.actions) == in_order(planned.actions)
        assert [(p.name, p.field) for p in first.problems] == [("rg2", "spec.transferTo[0]")]
    finally:
        await harness.close()
