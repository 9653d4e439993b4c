"""Invalid input is refused with a message naming the field, and changes nothing in Milvus or the cluster.

Single-object mistakes are refused at admission by the CRD schema and its CEL rules (HTTP 422 naming the
field; an unknown field under fieldValidation=Strict fails the decoding first: HTTP 400 naming it).
Mistakes that need more than one object (or Milvus itself) are applied on top of a converged pool; the
operator must then report a Degraded condition and a Warning event naming the field, and leave Milvus's
placement and configs and the StatefulSet exactly as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client import V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL
from milvus_rg_operator.api.models import API_GROUP, VERSION
from tests.integration.harness import (
    NAMESPACE,
    OperatorHarness,
    group_manifest,
    operator_on_sandbox,
    pool_manifest,
)
from tests.support import wait_for

PENDING = "__pending_nodes"
BASELINE = {"rg1": 1, PENDING: 0}
TOKEN = "root:Milvus"

# --------------------------------------------------------------------------------------------------
# Refused at admission


@dataclass(frozen=True)
class Admission:
    """`obj` is sent (created, or merge-patched onto an existing object of `existing`); the API server
    must answer `status` naming `field`: 422 Invalid, or 400 BadRequest for the strict decoding error of an
    unknown field in a created object."""

    obj: dict[str, Any]
    field: str
    existing: tuple[dict[str, Any], ...] = ()
    status: int = 422


UNKNOWN_FIELD = 400


def with_spec(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**obj, "spec": {**obj["spec"], **spec}}


ADMISSION = [
    pytest.param(Admission(group_manifest("rg2", 1, groupName=""), "spec.groupName"), id="empty-group-name"),
    pytest.param(Admission(group_manifest("rg2", 1, groupName="g" * 256), "spec.groupName"), id="256-chars"),
    pytest.param(Admission(group_manifest("rg2", 1, groupName="2rg"), "spec.groupName"), id="leading-digit"),
    pytest.param(Admission(group_manifest("rg-2", 1, groupName="rg-2"), "spec.groupName"), id="dash-in-groupName"),
    pytest.param(Admission(group_manifest("rg2", -1), "spec.requests.nodeNum"), id="negative-requests"),
    pytest.param(Admission(group_manifest("rg2", 0, limits={"nodeNum": -1}), "spec.limits.nodeNum"),
                 id="negative-limits"),
    pytest.param(Admission(pool_manifest(spareNodes=-1), "spec.spareNodes"), id="negative-spareNodes"),
    pytest.param(Admission(pool_manifest(minNodes=-1), "spec.minNodes"), id="negative-minNodes"),
    pytest.param(Admission(pool_manifest(maxNodes=-1), "spec.maxNodes"), id="negative-maxNodes"),
    pytest.param(Admission(group_manifest("rg2", 3, limits={"nodeNum": 2}), "spec.limits.nodeNum"),
                 id="limits-below-requests"),
    pytest.param(Admission(group_manifest("rg2", 1, groupName="rg2", transferFrom=["rg2"]), "spec.transferFrom"),
                 id="transferFrom-itself"),
    pytest.param(Admission(group_manifest("rg2", 1, groupName="rg2", transferTo=["rg2"]), "spec.transferTo"),
                 id="transferTo-itself"),
    pytest.param(Admission(pool_manifest(minNodes=3, maxNodes=2), "spec.minNodes"), id="minNodes-above-maxNodes"),
    pytest.param(Admission(group_manifest("rg2", 1, groupName="rg_b"), "spec.groupName",
                           existing=(group_manifest("rg2", 1, groupName="rg_a"),)), id="changing-groupName"),
    pytest.param(Admission(group_manifest("rg2", 1, groupName=None), "spec.groupName",
                           existing=(group_manifest("rg2", 1, groupName="rg_a"),)), id="removing-groupName"),
    pytest.param(Admission(group_manifest("rg2", 1, replicas=3), "spec.replicas", status=UNKNOWN_FIELD),
                 id="unknown-group-field"),
    pytest.param(Admission(pool_manifest(maxNode=3), "spec.maxNode", status=UNKNOWN_FIELD), id="unknown-pool-field"),
    pytest.param(Admission(with_spec(pool_manifest(), milvus={"uri": "placeholder", "secretRef": {"nmae": "s"}}),
                           "spec.milvus.secretRef.nmae", status=UNKNOWN_FIELD), id="unknown-nested-field"),
]


def plural_of(obj: dict[str, Any]) -> str:
    return POOL_PLURAL if obj["kind"] == "QueryNodePool" else RESOURCE_GROUP_PLURAL


async def send(harness: OperatorHarness, obj: dict[str, Any], *, update: bool) -> None:
    """Create or merge-patch `obj` as `kubectl apply` does: with fieldValidation=Strict."""
    obj = harness.point_at_sandbox(obj)
    name = obj["metadata"]["name"]
    if update:
        await asyncio.to_thread(harness.custom.patch_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE,
                                plural_of(obj), name, {"spec": obj["spec"]}, field_validation="Strict")
    else:
        await asyncio.to_thread(harness.custom.create_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE,
                                plural_of(obj), obj, field_validation="Strict")


@contextlib.asynccontextmanager
async def api_only(sandbox_factory: Any) -> AsyncIterator[OperatorHarness]:
    """The sandbox with the CRDs and a StatefulSet, without the operator: admission needs no operator
    (a refused request never reaches the store, so no operator could react to it)."""
    harness = OperatorHarness(await sandbox_factory())
    try:
        await harness.install(replicas=1)
        yield harness
    finally:
        await harness.close()


@pytest.mark.parametrize("case", ADMISSION)
async def test_refused_at_admission(sandbox_factory: Any, case: Admission) -> None:
    async with api_only(sandbox_factory) as harness:
        await harness.apply(*case.existing)
        existing = [await harness.get(plural_of(o), o["metadata"]["name"]) for o in case.existing]
        kube_before, milvus_before = harness.kube_writes(), harness.milvus_writes()
        placement_before = await harness.placement()

        with pytest.raises(ApiException) as raised:
            await send(harness, case.obj, update=bool(case.existing))

        assert raised.value.status == case.status, raised.value.body
        message = json.loads(raised.value.body)["message"]
        assert case.field in message, message
        # The only write was the refused request itself; nothing was stored, Milvus was not touched.
        assert [m.status for m in harness.sandbox.kube.mutations[kube_before:]] == [case.status]
        assert harness.milvus_writes() == milvus_before
        assert await harness.placement() == placement_before
        after = [await harness.get(plural_of(o), o["metadata"]["name"]) for o in case.existing]
        assert after == existing
        if not case.existing:
            assert await harness.get(plural_of(case.obj), case.obj["metadata"]["name"]) is None


# --------------------------------------------------------------------------------------------------
# Refused by the operator: Degraded + Warning event naming the field, nothing changed


@dataclass(frozen=True)
class CrossObject:
    """`objects` are applied on top of the converged baseline; `degraded` (plural, name) must report
    Degraded naming `field`."""

    objects: tuple[dict[str, Any], ...]
    degraded: tuple[str, str]
    field: str
    secret: dict[str, str] | None = None  # data of a Secret "milvus-token", created first
    stays_ready: tuple[str, ...] = ()  # ResourceGroups a newer bad object must not touch (oldest first)
    collections: bool = False  # books loaded with one replica in rg1 and films released, before the change


def declaring(name: str, requests: int, *entries: tuple[str, int]) -> dict[str, Any]:
    return group_manifest(name, requests, collections=[
        {"name": collection, "replicas": replicas, "loadIfReleased": True} for collection, replicas in entries])


def secret_pool(key: str = "token") -> dict[str, Any]:
    return with_spec(pool_manifest(), milvus={"uri": "placeholder", "secretRef": {"name": "milvus-token", "key": key}})


CROSS_OBJECT = [
    pytest.param(CrossObject((group_manifest("rg2", 1, transferTo=["nowhere"]),), (RESOURCE_GROUP_PLURAL, "rg2"),
                             "spec.transferTo[0]"), id="transferTo-unknown-group"),
    pytest.param(CrossObject((group_manifest("rg1", 1, transferFrom=[PENDING, "nowhere"]),),
                             (RESOURCE_GROUP_PLURAL, "rg1"),
                             "spec.transferFrom[1]"), id="transferFrom-unknown-group"),
    pytest.param(CrossObject((group_manifest("rg2", 1, transferFrom=["rg2"]),), (RESOURCE_GROUP_PLURAL, "rg2"),
                             "spec.transferFrom[0]"), id="transferFrom-itself-derived-name"),
    pytest.param(CrossObject((group_manifest("rg-one", 1, groupName="rg1"),), (RESOURCE_GROUP_PLURAL, "rg-one"),
                             "spec.groupName", stays_ready=("rg1",)), id="duplicate-milvus-name"),
    pytest.param(CrossObject((group_manifest("rg2", 1, groupName=PENDING),), (RESOURCE_GROUP_PLURAL, "rg2"),
                             "spec.groupName"), id="pending-group-name"),
    pytest.param(CrossObject((group_manifest("9lives", 1),), (RESOURCE_GROUP_PLURAL, "9lives"), "metadata.name"),
                 id="underivable-milvus-name"),
    pytest.param(CrossObject((group_manifest("rg2", 1, pool="nope"),), (RESOURCE_GROUP_PLURAL, "rg2"), "spec.pool"),
                 id="missing-pool"),
    pytest.param(CrossObject((pool_manifest(maxNodes=2), group_manifest("rg2", 2)), (POOL_PLURAL, "milvus"),
                             "spec.maxNodes"), id="requests-above-maxNodes"),
    pytest.param(CrossObject((secret_pool(),), (POOL_PLURAL, "milvus"), "spec.milvus.secretRef.name"),
                 id="missing-secret"),
    pytest.param(CrossObject((declaring("rg2", 1, ("nope", 1)),), (RESOURCE_GROUP_PLURAL, "rg2"),
                             "spec.collections[0].name", collections=True), id="unknown-collection"),
    pytest.param(CrossObject((declaring("rg2", 2, ("books", 2)),), (RESOURCE_GROUP_PLURAL, "rg2"),
                             "spec.collections[0].replicas", collections=True), id="more-replicas-than-loaded"),
    pytest.param(CrossObject((declaring("rg1", 1, ("books", 1)), declaring("rg2", 1, ("books", 1))),
                             (RESOURCE_GROUP_PLURAL, "rg2"), "spec.collections[0].replicas", stays_ready=("rg1",),
                             collections=True), id="two-groups-claim-one-replica"),
    pytest.param(CrossObject((declaring("rg2", 1, ("films", 2)),), (RESOURCE_GROUP_PLURAL, "rg2"),
                             "spec.collections[0].replicas", collections=True), id="group-without-enough-nodes"),
    pytest.param(CrossObject((secret_pool("password"),), (POOL_PLURAL, "milvus"), "spec.milvus.secretRef.key",
                             secret={"token": TOKEN}), id="missing-secret-key"),
]


@dataclass(frozen=True)
class Snapshot:
    placement: dict[str, list[str]]
    configs: dict[str, Any]
    replicas: int
    pods: list[str]
    loaded: dict[str, dict[str, int]]  # group -> collection -> replicas (describe_resource_group)


async def snapshot(harness: OperatorHarness) -> Snapshot:
    placement = await harness.placement()
    configs = {name: str(await harness.group_config(name)) for name in placement}
    client = harness.milvus_client()
    try:
        loaded = {name: dict((await client.describe_resource_group(name, timeout=5)).num_loaded_replica)
                  for name in placement}
    finally:
        await client.close()
    return Snapshot(placement, configs, await harness.replicas(), [p.metadata.name for p in await harness.pods()],
                    loaded)


async def create_secret(harness: OperatorHarness, data: dict[str, str]) -> None:
    body = V1Secret(metadata=V1ObjectMeta(name="milvus-token"), string_data=data)
    await asyncio.to_thread(harness.core.create_namespaced_secret, NAMESPACE, body)


async def converged_baseline(harness: OperatorHarness, pool: dict[str, Any] | None = None) -> Snapshot:
    await harness.apply(pool or pool_manifest(), group_manifest("rg1", 1))
    await harness.wait_converged(BASELINE, replicas=1)
    await harness.resync_passes(2)  # let a pass that was already under way finish
    return await snapshot(harness)


async def assert_refused_without_change(harness: OperatorHarness, degraded: tuple[str, str], field: str,
                                        baseline: Snapshot, milvus_writes: int, kube_writes: int) -> None:
    plural, name = degraded

    async def degraded_naming_field() -> dict[str, Any] | None:
        condition = await harness.true_condition("Degraded", kind_plural=plural, name=name)
        return condition if condition and field in condition["message"] else None

    await wait_for(degraded_naming_field, timeout=10, message=f"{plural}/{name} Degraded naming {field}")
    ready = await harness.condition(plural, name, "Ready")
    assert ready is not None and ready["status"] == "False"

    async def warnings_naming_field() -> list[Any]:
        return [e for e in await harness.events() if e.type == "Warning" and e.involved_object.name == name
                and field in e.message]

    # The event is posted after the status write that the wait above saw: wait for it too.
    await wait_for(warnings_naming_field, timeout=10, message=f"a Warning event on {name} naming {field}")

    await harness.resync_passes(2)
    assert len(await warnings_naming_field()) == 1  # once per transition, not once per pass
    assert harness.milvus_writes() == milvus_writes
    assert await snapshot(harness) == baseline
    # The operator wrote only statuses and events: no StatefulSet, pod, finalizer or spec change.
    operator_writes = [(m.method, m.path) for m in harness.sandbox.kube.mutations[kube_writes:]]
    assert all(path.endswith("/status") or "/events" in path for _, path in operator_writes), operator_writes


@pytest.mark.parametrize("case", CROSS_OBJECT)
async def test_refused_by_operator(sandbox_factory: Any, case: CrossObject) -> None:
    async with operator_on_sandbox(sandbox_factory) as harness:
        baseline = await converged_baseline(harness)
        if case.collections:
            harness.sandbox.milvus.load_collection("books", replica_number=1, resource_groups=["rg1"])
            harness.sandbox.milvus.create_collection("films")
            await harness.resync_passes(2)
            baseline = await snapshot(harness)
            assert baseline.loaded["rg1"] == {"books": 1}
        milvus_writes = harness.milvus_writes()
        if case.secret is not None:
            await create_secret(harness, case.secret)
        await harness.apply(*case.objects)
        kube_writes = harness.kube_writes()
        await assert_refused_without_change(harness, case.degraded, case.field, baseline, milvus_writes,
                                            kube_writes)
        for name in case.stays_ready:  # the older claim keeps what it holds, untouched by the newer one
            ready = await harness.condition(RESOURCE_GROUP_PLURAL, name, "Ready")
            degraded = await harness.condition(RESOURCE_GROUP_PLURAL, name, "Degraded")
            assert ready is not None and ready["status"] == "True", ready
            assert degraded is not None and degraded["status"] == "False", degraded


# --------------------------------------------------------------------------------------------------
# Credentials: Milvus requires a token


async def test_right_token_converges(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, token=TOKEN) as harness:
        await create_secret(harness, {"token": TOKEN})
        await converged_baseline(harness, secret_pool())
        degraded = await harness.condition(POOL_PLURAL, "milvus", "Degraded")
        assert degraded is not None and degraded["status"] == "False"


async def test_wrong_token_is_refused(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, token=TOKEN) as harness:
        await create_secret(harness, {"token": TOKEN})
        baseline = await converged_baseline(harness, secret_pool())
        milvus_writes = harness.milvus_writes()
        await asyncio.to_thread(harness.core.patch_namespaced_secret, "milvus-token", NAMESPACE,
                                {"stringData": {"token": "root:wrong"}})
        kube_writes = harness.kube_writes()
        # A Secret change wakes no pool: the next periodic resync picks it up; make it happen now.
        await harness.resync_passes(1)
        await assert_refused_without_change(harness, (POOL_PLURAL, "milvus"), "spec.milvus.secretRef",
                                            baseline, milvus_writes, kube_writes)
