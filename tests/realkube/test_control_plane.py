"""The real control plane itself: processes on loopback, RBAC with the admin token, the StatefulSet
controller, the scheduler and kwok turning a StatefulSet into Running and Ready pods."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from milvus_rg_sandbox.realkube import ApiStatusError, KubeRestClient, RealControlPlane
from milvus_rg_sandbox.realkube.control_plane import BINARIES, POD_CIDR
from milvus_rg_sandbox.sandbox import query_node_statefulset
from milvus_rg_sandbox.workloads import STATEFULSETS
from tests.support import wait_for

from .conftest import wait_ready_pods

SELECTOR = "app.kubernetes.io/instance=qn"


async def test_statefulset_pods_are_scheduled_on_kwok_nodes_and_become_ready(api: KubeRestClient) -> None:
    await api.create(STATEFULSETS, query_node_statefulset("qn", 3, "default"))
    pods = await wait_ready_pods(api, "default", SELECTOR, 3)
    assert sorted(p["metadata"]["name"] for p in pods) == ["qn-0", "qn-1", "qn-2"]
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("kwok-node-")  # bound by kube-scheduler
        assert pod["status"]["phase"] == "Running"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDR, strict=False)
    assert len({p["status"]["podIP"] for p in pods}) == 3

    async def sts_ready() -> bool:
        sts = await api.get(STATEFULSETS, "default", "qn")
        return bool(sts and (sts.get("status") or {}).get("readyReplicas") == 3)

    await wait_for(sts_ready, timeout=30, message="the StatefulSet controller's status")


async def test_a_token_without_rights_is_refused_by_rbac(cluster: RealControlPlane) -> None:
    anonymous = KubeRestClient(cluster.url, "not-a-token")
    try:
        with pytest.raises(ApiStatusError) as refused:
            await anonymous.list("v1/pods", "default")
        assert refused.value.status == 401
    finally:
        await anonymous.close()


async def test_a_control_plane_of_its_own_starts_and_stops_by_pid(real_control_plane: RealControlPlane,
                                                                   tmp_path: Path) -> None:
    own = RealControlPlane(workdir=tmp_path / "own", bin_dir=real_control_plane.bin_dir, node_count=1)
    await own.start()
    pids = own.pids()
    try:
        assert sorted(pids) == sorted(BINARIES)
        assert await own.store.get("v1/nodes", "", "kwok-node-0") is not None
    finally:
        await own.stop()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
