"""The sandbox's external metrics API (milvus_rg_sandbox.external_metrics): the values a test sets, served
over HTTPS; on the real backend through kube-apiserver's aggregator, where the HPA controller reads them."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import pytest

from milvus_rg_sandbox.external_metrics import API_PATH, APISERVICE_NAME, APISERVICES, quantity
from milvus_rg_sandbox.milvus_operator import DEPLOYMENTS
from milvus_rg_sandbox.pytest_plugin import SandboxFactory
from milvus_rg_sandbox.sandbox import Sandbox
from tests.support import wait_for

from .deployment_helpers import replica_history

METRIC = "milvus_query_load"
HPAS = "autoscaling/v2/horizontalpodautoscalers"


async def get(sandbox: Sandbox, path: str, base: str | None = None) -> tuple[int, Any]:
    """GET from the API clients use: kube-apiserver on the real backend (the aggregated API), the metrics
    server itself on the embedded one (no aggregator there)."""
    if base is None:
        base = str(sandbox.kube.url) if sandbox.config.kubernetes == "real" else sandbox.metrics.url
    token = "sandbox-token"
    if sandbox.config.kubernetes == "real":
        token = sandbox.api_client("test").token
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session, \
            session.get(base + path, ssl=context) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.kube_backends
async def test_the_values_a_test_sets_are_served_as_the_external_metrics_api(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(external_metrics=True)
    sandbox.metrics.set(METRIC, 3, labels={"resource_group": "rg1"})
    sandbox.metrics.set(METRIC, 0.25, labels={"resource_group": "rg2"})
    sandbox.metrics.set(METRIC, 7, labels={"resource_group": "rg1"}, namespace="other")
    status, body = await get(sandbox, f"{API_PATH}/namespaces/default/{METRIC}?labelSelector=resource_group%3Drg1")
    assert status == 200, body
    assert body["kind"] == "ExternalMetricValueList"
    assert [(item["metricName"], item["metricLabels"], item["value"]) for item in body["items"]] == [
        (METRIC, {"resource_group": "rg1"}, "3")]
    _, both = await get(sandbox, f"{API_PATH}/namespaces/default/{METRIC}")
    assert sorted(item["value"] for item in both["items"]) == ["250m", "3"]
    _, resources = await get(sandbox, API_PATH)
    assert [r["name"] for r in resources["resources"]] == [METRIC]


async def test_a_value_can_be_set_over_http(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(external_metrics=True)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{sandbox.metrics.url}/sandbox/v1/namespaces/default/metrics/{METRIC}", ssl=context,
                               json={"value": 1.5, "labels": {"resource_group": "rg1"}}) as response:
            assert response.status == 200
        async with session.put(f"{sandbox.metrics.url}/sandbox/v1/namespaces/default/metrics/{METRIC}", ssl=context,
                               json={"labels": {}}) as response:
            assert response.status == 400
    assert [(s.labels, s.value) for s in sandbox.metrics.series(METRIC, "default")] == [({"resource_group": "rg1"},
                                                                                          1.5)]


def test_values_are_kubernetes_quantities() -> None:
    assert [quantity(v) for v in (0, 3, 3.0, 0.25, 1.5, 2.0005, 1 / 3)] == [
        "0", "3", "3", "250m", "1500m", "2000500u", "333333334n"]


@pytest.mark.parametrize("kube_backend", ["real"], indirect=True)
async def test_the_registration_is_taken_back_when_the_sandbox_stops(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(external_metrics=True)
    registered = await sandbox.kube.store.get(APISERVICES, "", APISERVICE_NAME)
    assert registered is not None and registered["spec"]["service"]["port"] == int(sandbox.metrics.port)
    await sandbox.stop()
    assert await sandbox.kube.store.get(APISERVICES, "", APISERVICE_NAME) is None


def load_target(replicas: int) -> dict[str, Any]:
    labels = {"app": "load-target"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "load-target", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}}


def query_load_hpa(target_kind: str, target_name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    """One replica per unit of the group's query load (External metric, AverageValue 1)."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "rg1", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": target_kind, "name": target_name},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": METRIC, "selector": {"matchLabels": {"resource_group": "rg1"}}},
                         "target": {"type": "AverageValue", "averageValue": "1"}}}]}}


@pytest.mark.parametrize("kube_backend", ["real"], indirect=True)
async def test_an_hpa_scales_a_deployment_up_and_down_with_the_metric(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(external_metrics=True)
    sandbox.metrics.set(METRIC, 1, labels={"resource_group": "rg1"})
    async with replica_history(sandbox) as history:
        await sandbox.kube.store.create(DEPLOYMENTS, load_target(1))
        await sandbox.kube.store.create(HPAS, query_load_hpa("Deployment", "load-target"))
        await wait_for(lambda: sandbox.metrics.reads > 0, timeout=30, message="the HPA controller read the metric")
        sandbox.metrics.set(METRIC, 3, labels={"resource_group": "rg1"})
        await wait_for(lambda: history.of("load-target")[-1:] == [3], timeout=30, message="scaled up to 3")
        sandbox.metrics.set(METRIC, 0.5, labels={"resource_group": "rg1"})
        await wait_for(lambda: history.of("load-target")[-1:] == [1], timeout=30, message="scaled down to 1")
    assert history.of("load-target") == [1, 3, 1]

    async def hpa_reports_the_metric() -> Any:
        hpa = await sandbox.kube.store.get(HPAS, "default", "rg1")
        external = ((hpa or {}).get("status", {}).get("currentMetrics") or [{}])[0].get("external") or {}
        return external.get("metric", {}).get("name") == METRIC and external["current"]["averageValue"] == "500m"

    await wait_for(hpa_reports_the_metric, timeout=30, message="the HPA's status shows 0.5 per replica")
