"""The pydantic models as the operator uses them: parsing API objects, defaults, refusing bad specs."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from pydantic import ValidationError

from milvus_rg_operator.api.models import (
    ANNOTATION_PAUSED,
    DEFAULT_PENDING_GROUP,
    QueryNodePool,
    QueryNodePoolSpec,
    ResourceGroup,
    ResourceGroupSpec,
)

POOL_SPEC: dict[str, Any] = {"milvus": {"uri": "http://milvus:19530"}, "statefulSetName": "milvus-querynode"}


def test_pool_spec_defaults_match_the_api() -> None:
    dumped = QueryNodePoolSpec.model_validate(POOL_SPEC).model_dump(by_alias=True, exclude_none=True)
    assert dumped == {
        "milvus": {"uri": "http://milvus:19530", "timeoutSeconds": 10},
        "statefulSetName": "milvus-querynode",
        "pendingGroup": DEFAULT_PENDING_GROUP,
        "spareNodes": 0,
        "minNodes": 0,
        "scaleDown": {"maxUnavailable": 1, "drainTimeoutSeconds": 600, "forceAfterTimeout": False},
        "resyncSeconds": 30,
        "podReadyTimeoutSeconds": 300,
        "balance": {"maxMemorySpreadPercent": 30, "idleNodeSeconds": 120, "scaleOutWaitsForData": False,
                    "maxMovesPerPass": 4},
    }


def test_group_spec_defaults_requests_to_zero_and_leaves_limits_absent() -> None:
    spec = ResourceGroupSpec.model_validate({"pool": "milvus"})
    assert spec.model_dump(by_alias=True, exclude_none=True) == {"pool": "milvus", "requests": {"nodeNum": 0}}


def test_camel_case_and_snake_case_are_both_accepted() -> None:
    camel = QueryNodePoolSpec.model_validate({**POOL_SPEC, "spareNodes": 2})
    snake = QueryNodePoolSpec.model_validate(
        {"milvus": {"uri": "http://milvus:19530"}, "stateful_set_name": "milvus-querynode", "spare_nodes": 2})
    assert camel == snake


@pytest.mark.parametrize("spec", [
    {**POOL_SPEC, "spareNode": 1},
    {**POOL_SPEC, "milvus": {"uri": "http://milvus:19530", "token": "x"}},
    {**POOL_SPEC, "scaleDown": {"maxUnavailble": 2}},
])
def test_pool_spec_refuses_unknown_fields(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        QueryNodePoolSpec.model_validate(spec)


@pytest.mark.parametrize(("spec", "message"), [
    ({**POOL_SPEC, "minNodes": 3, "maxNodes": 2}, "spec.minNodes must be <= spec.maxNodes"),
    ({**POOL_SPEC, "pendingGroup": "__default_resource_group"}, "must not be __default_resource_group"),
    ({**POOL_SPEC, "pendingGroup": "pending-nodes"}, "must start with a letter or _"),
    ({**POOL_SPEC, "milvus": {"uri": "milvus:19530"}}, "should match pattern"),
    ({**POOL_SPEC, "resyncSeconds": 4000}, "less than or equal to 3600"),
])
def test_pool_spec_refuses_invalid_values(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        QueryNodePoolSpec.model_validate(spec)


@pytest.mark.parametrize(("spec", "message"), [
    ({"pool": "milvus", "requests": {"nodeNum": 3}, "limits": {"nodeNum": 2}}, "spec.limits.nodeNum must be >="),
    ({"pool": "milvus", "groupName": "rg1", "transferFrom": ["rg1"]}, "spec.transferFrom must not contain"),
    ({"pool": "milvus", "groupName": "rg1", "transferTo": ["x", "rg1"]}, "spec.transferTo must not contain"),
    ({"pool": "milvus", "groupName": "rg-1"}, "must start with a letter or _ and contain only letters"),
    ({"pool": "milvus", "nodeLabels": {"zone-a": "x"}}, "should match pattern"),
    ({"pool": "milvus", "requests": {"nodeNum": -1}}, "greater than or equal to 0"),
    ({"pool": "milvus", "replicas": 3}, "Extra inputs are not permitted"),
])
def test_group_spec_refuses_invalid_values(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ResourceGroupSpec.model_validate(spec)


@pytest.mark.parametrize(("milvus", "expected"), [
    ({"uri": "http://milvus.db.svc:19530"}, "http://milvus.db.svc:9091"),
    ({"uri": "grpc://10.0.0.7:19530"}, "http://10.0.0.7:9091"),
    ({"uri": "http://milvus:19530", "managementUri": "https://mgmt:9999"}, "https://mgmt:9999"),
])
def test_management_uri_defaults_to_port_9091_of_the_milvus_host(milvus: dict[str, Any], expected: str) -> None:
    assert QueryNodePoolSpec.model_validate({**POOL_SPEC, "milvus": milvus}).management_uri() == expected


def test_secret_key_defaults_to_token() -> None:
    spec = QueryNodePoolSpec.model_validate(
        {**POOL_SPEC, "milvus": {"uri": "http://milvus:19530", "secretRef": {"name": "creds"}}})
    assert spec.milvus.secret_ref is not None and spec.milvus.secret_ref.key == "token"


@pytest.mark.parametrize(("name", "group_name", "expected"), [
    ("search-tenant-a", None, "search_tenant_a"),
    ("default", "__default_resource_group", "__default_resource_group"),
    ("rg1", "custom", "custom"),
])
def test_milvus_group_name(name: str, group_name: str | None, expected: str) -> None:
    spec = {"pool": "milvus"} | ({"groupName": group_name} if group_name else {})
    assert ResourceGroupSpec.model_validate(spec).milvus_group_name(name) == expected


WHOLE_POOL: dict[str, Any] = {
    "apiVersion": "milvusrg.io/v1alpha1",
    "kind": "QueryNodePool",
    "metadata": {
        "name": "milvus", "namespace": "db", "generation": 4, "uid": "u-1",
        "annotations": {ANNOTATION_PAUSED: "true"}, "finalizers": ["milvusrg.io/finalizer"],
        "deletionTimestamp": "2026-01-02T03:04:05Z", "managedFields": [{"manager": "kubectl"}],
    },
    "spec": POOL_SPEC,
    "status": {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "False", "reason": "ScalingDown",
                        "lastTransitionTime": "2026-01-02T03:00:00Z", "observedGeneration": 3}],
        "memberCounts": [{"group": "rg1", "state": "Serving", "count": 1},
                         {"group": "rg1", "state": "Draining", "count": 1}, {"state": "Joining", "count": 1}],
        "attention": [{"pod": "milvus-querynode-2", "ordinal": 2, "nodeId": 9, "group": "rg1", "state": "Draining"}],
        "attentionOmitted": 1,
        "scaleDown": {"victims": ["milvus-querynode-2"], "suspendedNodes": [9],
                      "draining": [{"pod": "milvus-querynode-2", "nodeId": 9, "group": "rg1",
                                    "startedAt": "2026-01-02T03:00:00Z", "phase": "MovingData"}]},
        "groups": [{"name": "rg1", "requests": 1, "limits": 1, "nodes": 1}],
        "aFieldOfANewerOperator": True,
    },
}


def test_whole_object_parses_metadata_spec_and_status() -> None:
    pool = QueryNodePool.model_validate(WHOLE_POOL)
    assert pool.metadata.name == "milvus" and pool.metadata.generation == 4
    assert pool.metadata.paused()
    assert pool.metadata.deletion_timestamp == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert pool.metadata.model_extra == {"managedFields": [{"manager": "kubectl"}]}
    assert pool.spec.pending_group == DEFAULT_PENDING_GROUP
    assert pool.status.scale_down is not None and pool.status.scale_down.draining is not None
    assert pool.status.scale_down.draining[0].phase == "MovingData"


def test_status_round_trips_to_the_same_json() -> None:
    status = QueryNodePool.model_validate(WHOLE_POOL).status
    expected = {k: v for k, v in WHOLE_POOL["status"].items() if k != "aFieldOfANewerOperator"}
    assert status.model_dump(mode="json", by_alias=True, exclude_none=True) == expected


def test_whole_group_object_resolves_its_milvus_name() -> None:
    group = ResourceGroup.model_validate({"apiVersion": "milvusrg.io/v1alpha1", "kind": "ResourceGroup",
                                          "metadata": {"name": "tenant-a"}, "spec": {"pool": "milvus"}})
    assert group.milvus_group_name() == "tenant_a"
    assert not group.metadata.paused()


def test_condition_status_is_restricted() -> None:
    broken = {**WHOLE_POOL, "status": {"conditions": [{"type": "Ready", "status": "yes"}]}}
    with pytest.raises(ValidationError, match="'True', 'False' or 'Unknown'"):
        QueryNodePool.model_validate(broken)


@pytest.mark.parametrize("name", ["1tenant", "tenant.a"])
def test_group_without_group_name_needs_a_name_milvus_accepts(name: str) -> None:
    obj = {"metadata": {"name": name}, "spec": {"pool": "milvus"}}
    with pytest.raises(ValidationError, match=re.escape("set spec.groupName")):
        ResourceGroup.model_validate(obj)
    named = ResourceGroup.model_validate({**obj, "spec": {"pool": "milvus", "groupName": "tenant_a"}})
    assert named.milvus_group_name() == "tenant_a"


def test_group_spec_collections_name_each_collection_once_with_a_replica_or_more() -> None:
    spec = ResourceGroupSpec.model_validate({"pool": "milvus", "collections": [{"name": "books", "replicas": 2}]})
    assert spec.model_dump(by_alias=True, exclude_none=True)["collections"] == [
        {"name": "books", "replicas": 2, "loadIfReleased": False}]
    with pytest.raises(ValidationError, match=r"spec\.collections must name each collection once"):
        ResourceGroupSpec.model_validate({"pool": "milvus", "collections": [{"name": "books", "replicas": 1},
                                                                           {"name": "books", "replicas": 1}]})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ResourceGroupSpec.model_validate({"pool": "milvus", "collections": [{"name": "books", "replicas": 0}]})
