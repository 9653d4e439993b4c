"""The CRDs (crds/, with their CEL rules) on the real API server: accepted (CEL cost limits included),
every invalid sample refused naming the field, printer columns, the scale subresource and an HPA."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from milvus_rg_sandbox.realkube import ApiStatusError, KubeRestClient
from milvus_rg_sandbox.realkube.client import resource_path
from tests.api.test_crds import GROUP_OBJ, POOL_OBJ, with_spec
from tests.sandbox.test_kubectl import Kubectl
from tests.support import wait_for

CRD_DIR = Path(__file__).parents[2] / "crds"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
POOLS = "milvusrg.io/v1alpha1/querynodepools"
GROUPS = "milvusrg.io/v1alpha1/resourcegroups"
NAMESPACE = "default"

# The invalid samples of tests/api/test_crds.py, with the field the API server must name.
INVALID = [
    (with_spec(POOL_OBJ, milvus={"uri": "milvus:19530"}), "spec.milvus.uri"),
    (with_spec(POOL_OBJ, milvus={"uri": "ftp://milvus:19530"}), "spec.milvus.uri"),
    (with_spec(POOL_OBJ, statefulSetName="Query_Nodes"), "spec.statefulSetName"),
    (with_spec(POOL_OBJ, spareNodes=-1), "spec.spareNodes"),
    (with_spec(POOL_OBJ, resyncSeconds=1), "spec.resyncSeconds"),
    (with_spec(POOL_OBJ, minNodes=4, maxNodes=3), "spec.minNodes must be <= spec.maxNodes"),
    (with_spec(POOL_OBJ, scaleDown={"maxUnavailable": 0}), "spec.scaleDown.maxUnavailable"),
    (with_spec(GROUP_OBJ, limits={"nodeNum": 1}), "spec.limits.nodeNum must be >= spec.requests.nodeNum"),
    (with_spec(GROUP_OBJ, groupName="tenant-a"), "spec.groupName"),
    (with_spec(GROUP_OBJ, transferTo=[f"g{i}" for i in range(65)]), "spec.transferTo"),
    (with_spec(GROUP_OBJ, nodeLabels={"zone-a": "x"}), "spec.nodeLabels"),
    ({**GROUP_OBJ, "spec": {"requests": {"nodeNum": 1}}}, "spec.pool"),
]


def in_default(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = NAMESPACE
    return obj


@pytest.fixture
async def crds(api: KubeRestClient) -> KubeRestClient:
    """The CRD files of crds/ created and Established (kept across tests: reset leaves CRDs)."""
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            await api.create(CRDS, crd)
        except ApiStatusError as error:
            assert error.status == 409, error.body  # created by an earlier test
    for path in sorted(CRD_DIR.glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]

        async def established(name: str = name) -> bool:
            crd = await api.get(CRDS, "", name)
            conditions = ((crd or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        await wait_for(established, timeout=30, message=f"{name} Established")
    return api


async def test_valid_samples_are_accepted(crds: KubeRestClient) -> None:
    pool = await crds.create(POOLS, in_default(POOL_OBJ))
    group = await crds.create(GROUPS, in_default(GROUP_OBJ))
    assert pool["spec"]["statefulSetName"] == "milvus-querynode"
    assert group["spec"]["requests"]["nodeNum"] == 2


@pytest.mark.parametrize(("obj", "field"), INVALID, ids=[field for _, field in INVALID])
async def test_invalid_samples_are_refused_naming_the_field(crds: KubeRestClient, obj: dict[str, Any],
                                                            field: str) -> None:
    resource = POOLS if obj["kind"] == "QueryNodePool" else GROUPS
    with pytest.raises(ApiStatusError) as refused:
        await crds.create(resource, in_default(obj))
    assert refused.value.status == 422, refused.value.body
    assert field in refused.value.body["message"], refused.value.body["message"]


async def test_group_name_is_immutable(crds: KubeRestClient) -> None:
    await crds.create(GROUPS, in_default(with_spec(GROUP_OBJ, groupName="tenant_a")))
    with pytest.raises(ApiStatusError) as refused:
        await crds.patch(GROUPS, NAMESPACE, "tenant-a", {"spec": {"groupName": "other"}})
    assert refused.value.status == 422 and "spec.groupName is immutable" in refused.value.body["message"]


async def test_kubectl_get_shows_the_printer_columns(crds: KubeRestClient, kubectl: Kubectl) -> None:
    await crds.create(POOLS, in_default(POOL_OBJ))
    await crds.create(GROUPS, in_default(GROUP_OBJ))
    output = await kubectl.run("get", "qnp,mrg", "-n", NAMESPACE)
    headers = [line.split() for line in output.splitlines() if line.startswith("NAME")]
    for path in sorted(CRD_DIR.glob("*.yaml")):
        columns = yaml.safe_load(path.read_text())["spec"]["versions"][0]["additionalPrinterColumns"]
        expected = ["NAME", *(c["name"].upper() for c in columns if c.get("priority", 0) == 0)]
        assert expected in headers, output
    assert "querynodepool.milvusrg.io/milvus" in output and "resourcegroup.milvusrg.io/tenant-a" in output


async def test_kubectl_scale_goes_through_the_scale_subresource(crds: KubeRestClient, kubectl: Kubectl) -> None:
    await crds.create(GROUPS, in_default(GROUP_OBJ))
    await kubectl.run("scale", "-n", NAMESPACE, "mrg/tenant-a", "--replicas=5")
    group = await crds.get(GROUPS, NAMESPACE, "tenant-a")
    assert group is not None and group["spec"]["requests"]["nodeNum"] == 5
    scale = await crds.request("GET", resource_path(GROUPS, NAMESPACE, "tenant-a", "scale"))
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5


async def test_an_hpa_targeting_a_resource_group_is_accepted(crds: KubeRestClient) -> None:
    await crds.create(GROUPS, in_default(GROUP_OBJ))
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "tenant-a", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "milvusrg.io/v1alpha1", "kind": "ResourceGroup", "name": "tenant-a"},
            "minReplicas": 1, "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }
    created = await crds.create("autoscaling/v2/horizontalpodautoscalers", hpa)
    assert created["spec"]["scaleTargetRef"]["kind"] == "ResourceGroup"
