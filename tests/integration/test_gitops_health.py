"""GitOps tools see what the operator sees: kstatus (Flux's health engine, built from sigs.k8s.io/cli-utils) reads
the objects InProgress while the operator works or retries, Current once done, Failed for input it refuses; a
newer object claiming what an older one holds is refused alone and the older one stays Current."""

from __future__ import annotations

from typing import Any

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from tests.integration.harness import OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.kstatus import kstatus_of
from tests.support import wait_for


async def health(harness: OperatorHarness, *groups: str) -> dict[str, str]:
    objects = [await harness.get(POOL_PLURAL, "milvus"), *[await harness.get(RESOURCE_GROUP_PLURAL, g) for g in groups]]
    return kstatus_of(obj for obj in objects if obj is not None)


async def test_kstatus_reads_in_progress_current_and_failed(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, replicas=1) as harness:
        harness.sandbox.milvus.set_unavailable(True)
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await wait_for(lambda: harness.true_condition("Degraded", ("MilvusUnavailable",)), timeout=20,
                       message="the pool retrying an unavailable Milvus")
        await wait_for(lambda: harness.true_condition("Degraded", ("MilvusUnavailable",), RESOURCE_GROUP_PLURAL, "rg1"),
                       timeout=20, message="rg1 showing it")
        assert await health(harness, "rg1") == {"milvus": "InProgress", "rg1": "InProgress"}

        harness.sandbox.milvus.set_unavailable(False)
        await harness.wait_converged({"rg1": 1}, replicas=1)
        await wait_for(lambda: harness.true_condition("Ready", kind_plural=RESOURCE_GROUP_PLURAL, name="rg1"),
                       timeout=20, message="rg1 Ready")
        assert await health(harness, "rg1") == {"milvus": "Current", "rg1": "Current"}

        await harness.apply(group_manifest("rg-one", 1, groupName="rg1"), group_manifest("rg-bad", 1,
                                                                                            transferTo=["nowhere"]))
        for name in ("rg-one", "rg-bad"):
            await wait_for(lambda name=name: harness.true_condition("Stalled", kind_plural=RESOURCE_GROUP_PLURAL,
                                                                    name=name), timeout=20, message=f"{name} stalled")
        assert await health(harness, "rg1", "rg-one", "rg-bad") == {
            "milvus": "Current", "rg1": "Current", "rg-one": "Failed", "rg-bad": "Failed"}
