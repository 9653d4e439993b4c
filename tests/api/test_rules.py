"""The cross-field rules are written once (`api.rules`): the CEL the API server evaluates and the Python check
the models run must agree on every spec."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from milvus_rg_operator.api.models import GROUP_RULES, POOL_RULES
from milvus_rg_operator.api.rules import Rule
from tests.api.schema_tools import evaluate

names = st.sampled_from(["__pending_nodes", "__default_resource_group", "rg1", "rg2"])
counts = st.integers(0, 5)


@st.composite
def pool_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"minNodes": draw(counts), "pendingGroup": draw(names),
                            "milvus": {"uri": draw(st.sampled_from(["http://m:19530", "https://m:19530",
                                                                    "tcp://m:19530", "https"]))}}
    if draw(st.booleans()):
        spec["maxNodes"] = draw(counts)
    if draw(st.booleans()):
        spec["statefulSetName"] = "qn"
    if draw(st.booleans()):
        spec["scaleTargetRef"] = {"apiVersion": draw(st.sampled_from(["apps/v1", "milvus.io/v1beta1"])),
                                  "kind": draw(st.sampled_from(["StatefulSet", "Deployment", "Milvus"])), "name": "x"}
    if draw(st.booleans()):
        spec["template"] = {"spec": {}}
    if draw(st.booleans()):
        refs = {"caSecretRef": {"name": "ca", "key": "ca.crt"}, "clientCertSecretRef": {"name": "client"},
                "serverName": "milvus.example"}
        spec["milvus"]["tls"] = {key: value for key, value in refs.items() if draw(st.booleans())}
    return spec


@st.composite
def group_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"requests": {"nodeNum": draw(counts)}}
    if draw(st.booleans()):
        spec["limits"] = {"nodeNum": draw(counts)}
    if draw(st.booleans()):
        spec["groupName"] = draw(names)
    for field in ("transferFrom", "transferTo"):
        if draw(st.booleans()):
            spec[field] = draw(st.lists(names, max_size=3, unique=True))
    if draw(st.booleans()):
        spec["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}
    if draw(st.booleans()):
        spec["template"] = {"spec": {}}
        spec["collections"] = [{"name": name, "replicas": 1}
                               for name in draw(st.lists(st.sampled_from(["books", "films"]), max_size=3))]
    return spec


def cel_violated(rule: Rule, spec: dict[str, Any]) -> bool:
    return not evaluate(rule.cel(), spec)


@settings(deadline=None)  # cel-python compiles each rule anew: slow, not a timing check
@given(pool_specs())
def test_pool_rules_agree_with_their_cel(spec: dict[str, Any]) -> None:
    for rule in POOL_RULES:
        assert rule.violated_by(spec) == cel_violated(rule, spec), (rule.cel(), spec)


@settings(deadline=None)
@given(group_specs())
def test_group_rules_agree_with_their_cel(spec: dict[str, Any]) -> None:
    for rule in GROUP_RULES:
        assert rule.violated_by(spec) == cel_violated(rule, spec), (rule.cel(), spec)


def test_rules_render_the_cel_the_crds_carry() -> None:
    assert [r.cel() for r in POOL_RULES] == [
        "!has(self.maxNodes) || self.minNodes <= self.maxNodes",
        "self.pendingGroup != '__default_resource_group'",
        "has(self.scaleTargetRef) != has(self.statefulSetName)",
        "!has(self.scaleTargetRef) || !(self.scaleTargetRef.kind == 'Milvus') || "
        "self.scaleTargetRef.apiVersion == 'milvus.io/v1beta1'",
        "!has(self.scaleTargetRef) || !(self.scaleTargetRef.kind != 'Milvus') || "
        "self.scaleTargetRef.apiVersion == 'apps/v1'",
        "!has(self.template) || !has(self.scaleTargetRef) || self.scaleTargetRef.kind == 'StatefulSet'",
        "!has(self.milvus.tls) || self.milvus.uri.startsWith('https://')",
        "!has(self.milvus.tls) || !has(self.milvus.tls.clientCertSecretRef) || "
        "has(self.milvus.tls.caSecretRef) == true",
    ]
    assert GROUP_RULES[0].cel() == "!has(self.template) || has(self.scaleTargetRef) != true"
    assert GROUP_RULES[1].cel() == "!has(self.limits) || self.limits.nodeNum >= self.requests.nodeNum"
    assert GROUP_RULES[2].cel() == ("!has(self.groupName) || !has(self.transferFrom) || "
                                    "!(self.groupName in self.transferFrom)")
