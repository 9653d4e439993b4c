"""The CRDs: generated files match the models, schemas are structural, CEL rules compile and behave,
and the examples (plus our own samples) are what the API server would accept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from milvus_rg_operator.api import crds
from milvus_rg_operator.api.models import QueryNodePool, QueryNodePoolSpec, ResourceGroup, ResourceGroupSpec
from milvus_rg_operator.api.reference import render_api_reference
from tests.api.schema_tools import (
    apply_defaults,
    cel_errors,
    cel_rules,
    evaluate,
    node_at,
    rule_holds,
    structural_violations,
    walk,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MODELS: dict[str, type[BaseModel]] = {"QueryNodePool": QueryNodePool, "ResourceGroup": ResourceGroup}
SPEC_MODELS: dict[str, type[BaseModel]] = {"QueryNodePool": QueryNodePoolSpec, "ResourceGroup": ResourceGroupSpec}


def schema_of(kind: str) -> dict[str, Any]:
    crd = next(c for c in crds.render_crds() if c["spec"]["names"]["kind"] == kind)
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def admission_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Defaulting, then OpenAPI validation, then CEL: roughly what the API server does on create/update."""
    schema = schema_of(obj["kind"])
    defaulted = apply_defaults(schema, obj)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(defaulted)]
    return errors + cel_errors(schema, defaulted, apply_defaults(schema, old) if old else None)


POOL_OBJ: dict[str, Any] = {
    "apiVersion": "milvusrg.io/v1alpha1", "kind": "QueryNodePool",
    "metadata": {"name": "milvus", "namespace": "db"},
    "spec": {"milvus": {"uri": "http://milvus.db.svc:19530"}, "statefulSetName": "milvus-querynode"},
}
GROUP_OBJ: dict[str, Any] = {
    "apiVersion": "milvusrg.io/v1alpha1", "kind": "ResourceGroup",
    "metadata": {"name": "tenant-a", "namespace": "db"},
    "spec": {"pool": "milvus", "requests": {"nodeNum": 2}},
}


def with_spec(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**obj, "spec": {**obj["spec"], **spec}}


# ---------------------------------------------------------------- drift


@pytest.mark.parametrize("relative", sorted(str(p) for p in crds.generated_files()))
def test_generated_file_is_up_to_date(relative: str) -> None:
    path = ROOT / relative
    assert path.exists(), f"{relative} is missing: run `make crds`"
    assert path.read_text() == crds.generated_files()[Path(relative)], f"{relative} drifted: run `make crds`"


def test_crd_directories_hold_exactly_the_rendered_files() -> None:
    expected = set(crds.render_crds_yaml())
    assert {p.name for p in (ROOT / crds.CRDS_DIR).glob("*.yaml")} == expected
    assert {p.name for p in (ROOT / crds.CHART_CRDS_DIR).glob("*.yaml")} == expected


def test_api_reference_is_rendered_from_the_schema() -> None:
    reference = render_api_reference()
    assert reference == (ROOT / crds.API_REFERENCE).read_text()
    for row in ("`spec.scaleDown.drainTimeoutSeconds` | integer | `600`", "`spec.requests.nodeNum` | integer | `0`",
                "`status.scaleDown.draining[].phase`", "spec.groupName is immutable",
                "max items 64; each item: min length 1; max length 255"):
        assert row in reference


def test_rendering_is_deterministic_and_parses_back() -> None:
    first, second = crds.render_crds_yaml(), crds.render_crds_yaml()
    assert first == second
    assert [yaml.safe_load(text) for text in first.values()] == crds.render_crds()


def test_write_command_regenerates_every_file_once(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "milvus_rg_operator.api.crds", "--write", "--root", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert first.stdout.count("wrote ") == len(crds.generated_files())
    for relative, text in crds.generated_files().items():
        assert (tmp_path / relative).read_text() == text
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout == ""


# ---------------------------------------------------------------- shape of the CRDs


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_schema_is_structural(kind: str) -> None:
    assert structural_violations(schema_of(kind)) == []


def test_structural_checker_catches_what_kubernetes_refuses() -> None:
    bad = {"type": "object", "properties": {
        "a": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "b": {"$ref": "#/defs/B"},
        "c": {"type": "array"},
        "d": {"type": "object", "additionalProperties": False},
    }}
    problems = structural_violations(bad)
    assert {".a: no type", ".a: anyOf", ".b: $ref", ".c: array without items",
            ".d: boolean additionalProperties"} <= set(problems)


class UnionField(BaseModel):
    value: int | str


class FreeFormField(BaseModel):
    value: dict[str, Any]


@pytest.mark.parametrize(("model", "reason"), [
    (UnionField, "union cannot be expressed"), (FreeFormField, "needs x-kubernetes-preserve-unknown-fields")])
def test_renderer_refuses_what_a_structural_schema_cannot_say(model: type[BaseModel], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        crds.model_schema(model)


def test_optional_fields_become_omittable_fields_without_null() -> None:
    limits = node_at(schema_of("ResourceGroup"), ".spec.limits")
    assert limits["type"] == "object" and "limits" not in node_at(schema_of("ResourceGroup"), ".spec")["required"]
    assert "default" not in limits


def test_every_field_has_a_description() -> None:
    for kind in MODELS:
        schema = schema_of(kind)
        for part in ("spec", "status"):
            # List items and map values are not fields: `kubectl explain` shows their parent's description.
            missing = [path for path, node in walk(schema["properties"][part], part)
                       if not node.get("description") and not path.endswith(("[]", "{}"))]
            assert missing == [], f"{kind}: fields without description: {missing}"


def test_names_columns_and_subresources() -> None:
    pool, group = crds.render_crds()
    assert pool["metadata"]["name"] == "querynodepools.milvusrg.io"
    assert pool["spec"]["names"]["shortNames"] == ["qnp"] and group["spec"]["names"]["shortNames"] == ["mrg"]
    assert all(c["spec"]["names"]["categories"] == ["milvus"] and c["spec"]["scope"] == "Namespaced"
               for c in (pool, group))
    pool_version, group_version = pool["spec"]["versions"][0], group["spec"]["versions"][0]
    assert [c["name"] for c in pool_version["additionalPrinterColumns"]] == [
        "Desired", "Current", "Ready", "Status", "Age"]
    assert [c["name"] for c in group_version["additionalPrinterColumns"]] == [
        "Group", "Requests", "Nodes", "Ready", "Spread", "Age"]
    assert pool_version["subresources"] == {"status": {}}
    assert group_version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.requests.nodeNum", "statusReplicasPath": ".status.nodes",
        "labelSelectorPath": ".status.selector"}


def test_status_is_declared_with_a_map_list_of_conditions() -> None:
    for kind in MODELS:
        conditions = node_at(schema_of(kind), ".status.conditions")
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert "type" in conditions["items"]["required"]
        assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    drain = node_at(schema_of("QueryNodePool"), ".status.scaleDown.draining[]")
    assert drain["properties"]["startedAt"]["format"] == "date-time"
    assert drain["properties"]["phase"]["enum"] == [
        "Surging", "Suspending", "WaitingForReplacement", "MovingData", "Drained", "Stalled"]


def test_only_the_pod_spec_preserves_unknown_fields() -> None:
    preserving = [path for kind in MODELS for path, node in walk(schema_of(kind))
                  if node.get("x-kubernetes-preserve-unknown-fields")]
    assert preserving == [".spec.template.spec", ".spec.template.spec"]  # the pool's and a group's own template


# ---------------------------------------------------------------- CEL

# (kind, schema path, message) -> passing and failing (self, oldSelf) pairs. Every rule must be listed.
CEL_CASES: dict[tuple[str, str, str], tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]] = {
    ("QueryNodePool", ".spec", "spec.minNodes must be <= spec.maxNodes"): (
        [({"minNodes": 2, "maxNodes": 2}, None), ({"minNodes": 5}, None)],
        [({"minNodes": 3, "maxNodes": 2}, None)]),
    ("QueryNodePool", ".spec", "spec.pendingGroup must not be __default_resource_group"): (
        [({"pendingGroup": "__pending_nodes"}, None)],
        [({"pendingGroup": "__default_resource_group"}, None)]),
    ("QueryNodePool", ".spec", "set exactly one of spec.scaleTargetRef and spec.statefulSetName"): (
        [({"statefulSetName": "qn"}, None), ({"scaleTargetRef": {"kind": "Deployment"}}, None)],
        [({}, None), ({"statefulSetName": "qn", "scaleTargetRef": {"kind": "Deployment"}}, None)]),
    ("QueryNodePool", ".spec", "spec.scaleTargetRef of kind Milvus has apiVersion milvus.io/v1beta1"): (
        [({"scaleTargetRef": {"apiVersion": "milvus.io/v1beta1", "kind": "Milvus"}}, None),
         ({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment"}}, None), ({}, None)],
        [({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Milvus"}}, None)]),
    ("QueryNodePool", ".spec", "spec.scaleTargetRef of kind StatefulSet or Deployment has apiVersion apps/v1"): (
        [({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet"}}, None),
         ({"scaleTargetRef": {"apiVersion": "milvus.io/v1beta1", "kind": "Milvus"}}, None)],
        [({"scaleTargetRef": {"apiVersion": "milvus.io/v1beta1", "kind": "Deployment"}}, None)]),
    ("QueryNodePool", ".spec", "spec.template makes the operator create a StatefulSet: spec.scaleTargetRef.kind "
                               "must be StatefulSet"): (
        [({"template": {}, "scaleTargetRef": {"kind": "StatefulSet"}}, None), ({"template": {}}, None),
         ({"scaleTargetRef": {"kind": "Deployment"}}, None)],
        [({"template": {}, "scaleTargetRef": {"kind": "Deployment"}}, None)]),
    ("QueryNodePool", ".spec", "spec.milvus.tls needs an https:// spec.milvus.uri"): (
        [({"milvus": {"uri": "https://m:19530", "tls": {}}}, None), ({"milvus": {"uri": "http://m:19530"}}, None)],
        [({"milvus": {"uri": "http://m:19530", "tls": {}}}, None)]),
    ("QueryNodePool", ".spec", "spec.milvus.tls.clientCertSecretRef needs spec.milvus.tls.caSecretRef"): (
        [({"milvus": {"uri": "https://m", "tls": {"caSecretRef": {"name": "c"}, "clientCertSecretRef": {"name": "k"}}}},
          None), ({"milvus": {"uri": "https://m", "tls": {"serverName": "m"}}}, None),
         ({"milvus": {"uri": "http://m"}}, None)],
        [({"milvus": {"uri": "https://m", "tls": {"clientCertSecretRef": {"name": "k"}}}}, None)]),
    ("QueryNodePool", ".spec.pendingGroup", "must start with a letter or _ and contain only letters, digits and _"): (
        [("_pending1", None)], [("pending-nodes", None), ("1pending", None)]),
    ("ResourceGroup", ".spec", "spec.groupName is immutable"): (
        [({"groupName": "a"}, {"groupName": "a"}), ({}, {})],
        [({"groupName": "b"}, {"groupName": "a"}), ({"groupName": "a"}, {}), ({}, {"groupName": "a"})]),
    ("ResourceGroup", ".spec", "set at most one of spec.scaleTargetRef and spec.template"): (
        [({"template": {}}, None), ({"scaleTargetRef": {"kind": "Deployment"}}, None), ({}, None)],
        [({"template": {}, "scaleTargetRef": {"kind": "Deployment"}}, None)]),
    ("ResourceGroup", ".spec", "spec.limits.nodeNum must be >= spec.requests.nodeNum"): (
        [({"requests": {"nodeNum": 2}}, None), ({"requests": {"nodeNum": 2}, "limits": {"nodeNum": 2}}, None)],
        [({"requests": {"nodeNum": 2}, "limits": {"nodeNum": 1}}, None)]),
    ("ResourceGroup", ".spec", "spec.transferFrom must not contain spec.groupName"): (
        [({"groupName": "a", "transferFrom": ["b"]}, None), ({"transferFrom": ["a"]}, None)],
        [({"groupName": "a", "transferFrom": ["b", "a"]}, None)]),
    ("ResourceGroup", ".spec", "spec.transferTo must not contain spec.groupName"): (
        [({"groupName": "a", "transferTo": ["b"]}, None), ({"groupName": "a"}, None)],
        [({"groupName": "a", "transferTo": ["a"]}, None)]),
    ("ResourceGroup", ".spec.groupName", "must start with a letter or _ and contain only letters, digits and _"): (
        [("__default_resource_group", None), ("rg_1", None)], [("rg-1", None), ("9rg", None)]),
    ("ResourceGroup", ".spec.transferFrom[]", "must start with a letter or _ and contain only letters, digits and _"): (
        [("rg1", None)], [("rg 1", None)]),
    ("ResourceGroup", ".spec.transferTo[]", "must start with a letter or _ and contain only letters, digits and _"): (
        [("rg1", None)], [("rg.1", None)]),
    ("ResourceGroup", ".spec", "spec.collections must name each collection once"): (
        [({"collections": [{"name": "a", "replicas": 1}, {"name": "b", "replicas": 2}]}, None), ({}, None),
         ({"collections": []}, None)],
        [({"collections": [{"name": "a", "replicas": 1}, {"name": "b", "replicas": 1}, {"name": "a", "replicas": 2}]},
          None)]),
    ("ResourceGroup", ".spec.nodeLabels", "spec.nodeLabels keys must contain only letters, digits and _"): (
        [({"ZONE": "az-1", "disk_type": "ssd"}, None), ({}, None)], [({"ZONE": "a", "zone-b": "x"}, None)]),
}


def all_rules() -> list[tuple[str, Any]]:
    return [(kind, rule) for kind in MODELS for rule in cel_rules(schema_of(kind))]


def test_every_cel_rule_has_behaviour_samples() -> None:
    declared = {(kind, rule.path, rule.message) for kind, rule in all_rules()}
    assert declared == set(CEL_CASES)


@pytest.mark.parametrize(("kind", "rule"), all_rules(), ids=lambda v: getattr(v, "message", v))
def test_cel_rule_compiles_and_behaves(kind: str, rule: Any) -> None:
    passing, failing = CEL_CASES[(kind, rule.path, rule.message)]
    for self_value, old_self in passing:
        assert rule_holds(rule, self_value, old_self), f"{rule.rule} should accept {self_value} (old {old_self})"
    for self_value, old_self in failing:
        assert not rule_holds(rule, self_value, old_self), f"{rule.rule} should refuse {self_value}"


def test_cel_evaluation_is_real() -> None:
    # Guards the harness: a rule that is always false must fail, so passing samples mean something.
    assert evaluate("self.a == 1", {"a": 1}) and not evaluate("self.a == 1", {"a": 2})


# ---------------------------------------------------------------- admission of whole objects


def load_examples() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.relative_to(EXAMPLES)}#{i}", doc)
            for path in sorted(EXAMPLES.rglob("*.yaml"))
            for i, doc in enumerate(yaml.safe_load_all(path.read_text())) if doc]


def test_there_are_examples_to_check() -> None:
    assert load_examples(), "examples/ holds no manifests"


@pytest.mark.parametrize(("name", "obj"), load_examples(), ids=[name for name, _ in load_examples()])
def test_examples_are_accepted_by_schema_cel_and_models(name: str, obj: dict[str, Any]) -> None:
    assert obj["kind"] in MODELS, f"{name}: unexpected kind {obj['kind']}"
    assert admission_errors(obj) == []
    MODELS[obj["kind"]].model_validate(obj)


FULL_POOL = with_spec(
    POOL_OBJ,
    milvus={"uri": "https://milvus:19530", "secretRef": {"name": "milvus-token"},
            "managementUri": "http://milvus:9091", "timeoutSeconds": 30},
    template={"metadata": {"labels": {"app": "qn"}},
              "spec": {"containers": [{"name": "querynode", "image": "milvusdb/milvus:v2.6.8"}]}},
    pendingGroup="__pending", spareNodes=1, minNodes=1, maxNodes=10,
    scaleDown={"maxUnavailable": 2, "drainTimeoutSeconds": 60, "forceAfterTimeout": True}, resyncSeconds=60,
)
FULL_GROUP = with_spec(GROUP_OBJ, groupName="tenant_a", limits={"nodeNum": 3}, transferFrom=["__pending"],
                       transferTo=["__pending", "spare"], nodeLabels={"ZONE": "az1"})


@pytest.mark.parametrize("obj", [POOL_OBJ, FULL_POOL, GROUP_OBJ, FULL_GROUP],
                         ids=["pool", "full-pool", "group", "full-group"])
def test_valid_samples_are_accepted(obj: dict[str, Any]) -> None:
    assert admission_errors(obj) == []


@pytest.mark.parametrize(("obj", "expected"), [
    (with_spec(POOL_OBJ, milvus={"uri": "milvus:19530"}), "does not match"),
    (with_spec(POOL_OBJ, milvus={"uri": "ftp://milvus:19530"}), "does not match"),
    (with_spec(POOL_OBJ, statefulSetName="Query_Nodes"), "does not match"),
    (with_spec(POOL_OBJ, spareNodes=-1), "less than the minimum"),
    (with_spec(POOL_OBJ, resyncSeconds=1), "less than the minimum"),
    (with_spec(POOL_OBJ, minNodes=4, maxNodes=3), "spec.minNodes must be <= spec.maxNodes"),
    (with_spec(POOL_OBJ, scaleDown={"maxUnavailable": 0}), "less than the minimum"),
    (with_spec(GROUP_OBJ, limits={"nodeNum": 1}), "spec.limits.nodeNum must be >= spec.requests.nodeNum"),
    (with_spec(GROUP_OBJ, groupName="tenant-a"), "must start with a letter or _"),
    (with_spec(GROUP_OBJ, transferTo=[f"g{i}" for i in range(65)]), "is too long"),
    (with_spec(GROUP_OBJ, nodeLabels={"zone-a": "x"}), "keys must contain only letters, digits and _"),
    ({**GROUP_OBJ, "spec": {"requests": {"nodeNum": 1}}}, "'pool' is a required property"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_invalid_samples_are_refused_with_a_clear_message(obj: dict[str, Any], expected: str) -> None:
    errors = admission_errors(obj)
    assert any(expected in error for error in errors), errors


def test_group_name_cannot_change_after_creation() -> None:
    created = with_spec(GROUP_OBJ, groupName="tenant_a")
    assert admission_errors(with_spec(GROUP_OBJ, groupName="tenant_a", requests={"nodeNum": 5}), old=created) == []
    assert ".spec: spec.groupName is immutable" in admission_errors(with_spec(GROUP_OBJ, groupName="b"), old=created)
    assert ".spec: spec.groupName is immutable" in admission_errors(GROUP_OBJ, old=created)
    assert ".spec: spec.groupName is immutable" in admission_errors(created, old=GROUP_OBJ)


@pytest.mark.parametrize("obj", [POOL_OBJ, GROUP_OBJ, FULL_POOL, FULL_GROUP],
                         ids=["pool", "group", "full-pool", "full-group"])
def test_schema_defaults_equal_model_defaults(obj: dict[str, Any]) -> None:
    schema = schema_of(obj["kind"])
    from_schema = apply_defaults(schema, obj)["spec"]
    from_model = SPEC_MODELS[obj["kind"]].model_validate(obj["spec"]).model_dump(by_alias=True, exclude_none=True)
    assert from_schema == from_model
