"""Custom resources are defaulted, pruned and validated against their CRD schema (and CEL rules)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_rg_sandbox.kube import KubeApiServer, validate_custom_resource

from .kube_helpers import crd_manifest, http, kube, wait_established

__all__ = ["http", "kube"]  # fixtures imported for pytest

MERGE = {"Content-Type": "application/merge-patch+json"}
COLLECTION = "/apis/example.io/v1/namespaces/default/pools"

POOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["pool"],
            "x-kubernetes-validations": [
                {"rule": "self.minNodes <= self.maxNodes", "message": "minNodes must not exceed maxNodes",
                 "fieldPath": ".minNodes"},
                {"rule": "!has(self.transferFrom) || self.transferFrom != self.pool",
                 "messageExpression": "'cannot transfer from itself: ' + self.pool", "reason": "FieldValueForbidden"},
            ],
            "properties": {
                "pool": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 20,
                         "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "pool is immutable"}]},
                "transferFrom": {"type": "string"},
                "minNodes": {"type": "integer", "minimum": 0, "default": 0},
                "maxNodes": {"type": "integer", "minimum": 0, "maximum": 100, "default": 10},
                "mode": {"type": "string", "enum": ["Strict", "Relaxed"], "default": "Strict"},
                "maxUnavailable": {"x-kubernetes-int-or-string": True, "default": 1},
                "requests": {
                    "type": "object",
                    "default": {},
                    "properties": {"nodeNum": {"type": "integer", "minimum": 0, "default": 1},
                                   "cpu": {"type": "string", "default": "1"}},
                },
                "selector": {"type": "object", "additionalProperties": {"type": "string"}},
                "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string"},
                         "x-kubernetes-validations": [{"rule": "self.all(t, t.matches('^[a-z]+$'))",
                                                       "message": "tags must be lowercase words"}]},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "note": {"type": "string", "nullable": True},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string", "enum": ["Pending", "Ready"]}}},
    },
}


@pytest.fixture
async def pools(kube: KubeApiServer, http: aiohttp.ClientSession) -> aiohttp.ClientSession:
    manifest = crd_manifest(POOL_SCHEMA, kind="Pool", plural="pools", short_names=("pl",), scale=False)
    async with http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=manifest) as response:
        assert response.status == 201
    await wait_established(http, "pools.example.io")
    return http


def pool(spec: dict[str, Any], name: str = "p") -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Pool", "metadata": {"name": name}, "spec": spec}


async def create(http: aiohttp.ClientSession, body: dict[str, Any], **params: str) -> tuple[int, dict[str, Any]]:
    async with http.post(COLLECTION, json=body, params=params) as response:
        return response.status, await response.json()


async def test_defaults_are_applied_and_unknown_fields_pruned(pools: aiohttp.ClientSession) -> None:
    status, created = await create(pools, pool({
        "pool": "rg1", "unknown": 1, "requests": {"cpu": "2", "unknown": 2},
        "selector": {"zone": "a"}, "extra": {"anything": {"goes": True}}, "note": None,
    }))
    assert status == 201, created
    assert created["spec"] == {
        "pool": "rg1", "minNodes": 0, "maxNodes": 10, "mode": "Strict", "maxUnavailable": 1,
        "requests": {"cpu": "2", "nodeNum": 1},  # defaults inside a present object, unknown pruned
        "selector": {"zone": "a"}, "extra": {"anything": {"goes": True}}, "note": None,
    }
    _, minimal = await create(pools, pool({"pool": "rg2", "maxUnavailable": "25%"}, name="q"))
    assert minimal["spec"]["requests"] == {"nodeNum": 1, "cpu": "1"}  # a defaulted object gets its defaults
    assert minimal["spec"]["maxUnavailable"] == "25%"


async def test_strict_field_validation_rejects_unknown_fields(pools: aiohttp.ClientSession, kube: Any) -> None:
    status, body = await create(pools, pool({"pool": "rg1", "foo": 1}), fieldValidation="Strict")
    # The decoding fails before any validation (400 BadRequest, not 422 Invalid), as kube-apiserver's does.
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == ('Pool in version "v1" cannot be handled as a Pool: '
                               'strict decoding error: unknown field "spec.foo"')
    status, created = await create(pools, pool({"pool": "rg1", "foo": 1}), fieldValidation="Ignore")
    assert status == 201
    # An update fails the decoding too; a patch is refused after it is applied (422, the "patch" field).
    replacement = {**pool({"pool": "rg1", "foo": 1}), "metadata": created["metadata"]}
    async with pools.put(f"{COLLECTION}/p", json=replacement, params={"fieldValidation": "Strict"}) as response:
        assert response.status == 400 and 'unknown field "spec.foo"' in (await response.json())["message"]
    async with pools.patch(f"{COLLECTION}/p", json={"spec": {"foo": 1}}, headers=MERGE,
                           params={"fieldValidation": "Strict"}) as response:
        assert response.status == 422 and 'unknown field "spec.foo"' in (await response.json())["message"]


async def test_message_is_formatted_like_the_api_server(pools: aiohttp.ClientSession) -> None:
    status, body = await create(pools, pool({"pool": "rg1", "requests": {"nodeNum": -1}}))
    assert status == 422 and body["reason"] == "Invalid"
    assert body["message"] == (
        'Pool.example.io "p" is invalid: spec.requests.nodeNum: Invalid value: -1: '
        "spec.requests.nodeNum in body should be greater than or equal to 0"
    )
    assert body["details"]["causes"][0]["field"] == "spec.requests.nodeNum"


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"pool": "rg1", "maxNodes": 101}, "spec.maxNodes", "less than or equal to 100"),
        ({"pool": "rg1", "minNodes": "3"}, "spec.minNodes", "must be of type integer"),
        ({"pool": "rg1", "mode": "Fast"}, "spec.mode", 'Unsupported value: "Fast"'),
        ({"pool": "Bad-Name"}, "spec.pool", "should match"),
        ({"pool": "a" * 21}, "spec.pool", "Too long: may not be more than 20 bytes"),
        ({"pool": "rg1", "maxUnavailable": [1]}, "spec.maxUnavailable", "must be of type integer,string"),
        ({"pool": "rg1", "tags": []}, "spec.tags", "at least 1 items"),
        ({"pool": "rg1", "tags": ["a", "b", "c", "d"]}, "spec.tags", "Too many: 4: must have at most 3 items"),
        ({"pool": "rg1", "tags": ["ok", "NOT"]}, "spec.tags", "tags must be lowercase words"),
        ({"pool": "rg1", "minNodes": 5, "maxNodes": 2}, "spec.minNodes", "minNodes must not exceed maxNodes"),
        ({"pool": "rg1", "transferFrom": "rg1"}, "spec", "Forbidden: cannot transfer from itself: rg1"),
        ({"minNodes": 1}, "spec.pool", "Required value"),
        ({"pool": "rg1", "selector": {"zone": 1}}, "spec.selector.zone", "must be of type string"),
    ],
)
async def test_each_violation_is_rejected_naming_the_field(
    pools: aiohttp.ClientSession, spec: dict[str, Any], field: str, fragment: str,
) -> None:
    status, body = await create(pools, pool(spec))
    assert status == 422, body
    assert f"{field}:" in body["message"] and fragment in body["message"], body["message"]
    assert field in [cause["field"] for cause in body["details"]["causes"]]


async def test_transition_rules_run_on_updates_only(pools: aiohttp.ClientSession) -> None:
    status, _ = await create(pools, pool({"pool": "rg1"}))
    assert status == 201  # `self == oldSelf` does not run on create
    path = f"{COLLECTION}/p"
    async with pools.patch(path, json={"spec": {"maxNodes": 20}}, headers=MERGE) as response:
        assert response.status == 200  # unchanged pool passes the immutability rule
    async with pools.patch(path, json={"spec": {"pool": "rg2"}}, headers=MERGE) as response:
        body = await response.json()
    assert response.status == 422 and "spec.pool: Invalid value" in body["message"]
    assert "pool is immutable" in body["message"]
    async with pools.get(path) as response:
        current = await response.json()
    current["spec"]["maxNodes"] = -5
    async with pools.put(path, json=current) as response:
        assert response.status == 422 and "spec.maxNodes" in (await response.json())["message"]


async def test_status_updates_are_validated_too(pools: aiohttp.ClientSession) -> None:
    await create(pools, pool({"pool": "rg1"}))
    async with pools.patch(f"{COLLECTION}/p/status", json={"status": {"phase": "Bogus"}}, headers=MERGE) as rsp:
        assert rsp.status == 422 and "status.phase" in (await rsp.json())["message"]
    async with pools.patch(f"{COLLECTION}/p/status", json={"status": {"phase": "Ready"}}, headers=MERGE) as rsp:
        assert rsp.status == 200 and (await rsp.json())["status"] == {"phase": "Ready"}


BOUNDED = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "n": {"type": "integer", "minimum": -10, "maximum": 10}}}}}


@given(st.integers(min_value=-1000, max_value=1000))
def test_integer_bounds_accept_exactly_the_values_within(value: int) -> None:
    processed, errors = validate_custom_resource(BOUNDED, {"spec": {"n": value}}, None)
    assert (not errors) == (-10 <= value <= 10)
    assert processed["spec"]["n"] == value


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=4))
def test_defaulting_and_pruning_are_idempotent(extra: dict[str, int]) -> None:
    obj = {"spec": {"pool": "rg", **extra}}
    once, _ = validate_custom_resource(POOL_SCHEMA, obj, None)
    twice, _ = validate_custom_resource(POOL_SCHEMA, once, None)
    assert once == twice
    assert set(once["spec"]) <= set(POOL_SCHEMA["properties"]["spec"]["properties"])
