"""The real Kubernetes tier: the session's control plane (etcd, kube-apiserver, controllers, scheduler, kwok),
reset after every test. Skipped without the build (`make control-plane`), except under CI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from milvus_rg_sandbox.realkube import KubeRestClient, RealControlPlane
from milvus_rg_sandbox.realkube.control_plane import reset
from milvus_rg_sandbox.workloads import PODS, Obj, pod_is_ready
from tests.sandbox.test_kubectl import Kubectl
from tests.support import wait_for

pytestmark = pytest.mark.real_kube


@pytest.fixture
async def cluster(real_control_plane: RealControlPlane) -> AsyncIterator[RealControlPlane]:
    """The session's control plane, put back as it was after the test."""
    try:
        yield real_control_plane
    finally:
        await reset(real_control_plane.store)


@pytest.fixture
def api(cluster: RealControlPlane) -> KubeRestClient:
    return cluster.store


@pytest.fixture
def kubectl(cluster: RealControlPlane, tmp_path: Path) -> Kubectl:
    return Kubectl(cluster, tmp_path)


async def ready_pods(api: KubeRestClient, namespace: str, selector: str) -> list[Obj]:
    items = await api.list(PODS, namespace, label_selector=selector)
    return [p for p in items if pod_is_ready(p) and not p["metadata"].get("deletionTimestamp")]


async def wait_ready_pods(api: KubeRestClient, namespace: str, selector: str, count: int,
                          timeout: float = 60) -> list[Obj]:
    async def probe() -> bool:
        return len(await ready_pods(api, namespace, selector)) == count

    await wait_for(probe, timeout=timeout, message=f"{count} ready pods matching {selector}")
    return await ready_pods(api, namespace, selector)
