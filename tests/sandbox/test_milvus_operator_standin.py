"""The milvus-operator stand-in (milvus_rg_sandbox.milvus_operator): its `Milvus` CR and the two query-node
Deployments it keeps, on both backends; what needs a Deployment controller (pods, rollouts, status) on the
real one."""

from __future__ import annotations

from typing import Any

import pytest

from milvus_rg_sandbox.milvus.resource_manager import NodeState
from milvus_rg_sandbox.milvus_operator import (
    CURRENT_GROUP_ANNOTATION,
    DEPLOYMENTS,
    GROUP_ID_LABEL,
    MILVUSES,
    ONE_MONTH_SECONDS,
    ROLLING_ID_LABEL,
    USER_AGENT,
    MilvusOperatorStandIn,
)
from milvus_rg_sandbox.pytest_plugin import SandboxFactory
from milvus_rg_sandbox.realkube import ApiPodNodeWiring
from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import PODS, pod_is_ready
from tests.support import wait_for

from .deployment_helpers import replica_history

SYNC = 0.2  # the stand-in's unhealthySyncInterval: a pass 0.1 s after each write, status every 0.2 s
IMAGE = "milvusdb/milvus:v2.5.4"
NEW_IMAGE = "milvusdb/milvus:v2.5.16"
BLUE, GREEN = "my-milvus-milvus-querynode-0", "my-milvus-milvus-querynode-1"
POD_LABELS = {"app.kubernetes.io/instance": "my-milvus", "app.kubernetes.io/name": "milvus",
              "app.kubernetes.io/component": "querynode", "app.kubernetes.io/managed-by": "milvus-operator"}

both_backends = pytest.mark.kube_backends
real_only = pytest.mark.parametrize("kube_backend", ["real"], indirect=True)


def milvus_cr(replicas: int, image: str = IMAGE, **query_node: Any) -> dict[str, Any]:
    return {"apiVersion": "milvus.io/v1beta1", "kind": "Milvus",
            "metadata": {"name": "my-milvus", "namespace": "default"},
            "spec": {"mode": "cluster", "components": {"image": image,
                                                       "queryNode": {"replicas": replicas, **query_node}}}}


async def started(sandbox: Sandbox, min_ready_seconds: int = 0) -> MilvusOperatorStandIn:
    return await sandbox.start_milvus_operator(sync_interval=SYNC, min_ready_seconds=min_ready_seconds)


async def deployment(sandbox: Sandbox, name: str) -> dict[str, Any]:
    found = await sandbox.kube.store.get(DEPLOYMENTS, "default", name)
    assert found is not None, name
    return found


async def replicas_are(sandbox: Sandbox, **expected: int) -> bool:
    names = {"blue": BLUE, "green": GREEN}
    for key, replicas in expected.items():
        found = await sandbox.kube.store.get(DEPLOYMENTS, "default", names[key])
        if found is None or found["spec"]["replicas"] != replicas:
            return False
    return True


async def set_query_nodes(sandbox: Sandbox, replicas: int) -> None:
    await sandbox.kube.store.patch(MILVUSES, "default", "my-milvus",
                                   {"spec": {"components": {"queryNode": {"replicas": replicas}}}})


async def passes_go_by(stand_in: MilvusOperatorStandIn, count: int = 6) -> None:
    """Let the stand-in run `count` more jobs (its status syncer ticks every SYNC seconds)."""
    target = stand_in.jobs_done + count
    await wait_for(lambda: stand_in.jobs_done >= target, timeout=10, message=f"{count} more stand-in jobs")


@both_backends
async def test_a_cluster_cr_gets_the_two_blue_green_deployments(sandbox: Sandbox) -> None:
    await started(sandbox, min_ready_seconds=30)
    milvus = await sandbox.kube.store.create(MILVUSES, milvus_cr(2, env=[{"name": "EXTRA", "value": "1"}]))
    await wait_for(lambda: replicas_are(sandbox, blue=2, green=0), timeout=20, message="blue at 2, green at 0")
    blue, green = await deployment(sandbox, BLUE), await deployment(sandbox, GREEN)
    for name, found in ((BLUE, blue), (GREEN, green)):
        group = name[-1]
        assert found["metadata"]["labels"] == {**POD_LABELS, GROUP_ID_LABEL: group}
        assert found["spec"]["selector"]["matchLabels"] == {**POD_LABELS, GROUP_ID_LABEL: group}
        assert found["spec"]["template"]["metadata"]["labels"] == {**POD_LABELS, GROUP_ID_LABEL: group}
        assert [(ref["kind"], ref["name"], ref["uid"], ref["controller"])
                for ref in found["metadata"]["ownerReferences"]] == [("Milvus", "my-milvus", milvus["metadata"]["uid"],
                                                                       True)]
        assert found["spec"]["minReadySeconds"] == 30
        assert found["spec"]["progressDeadlineSeconds"] == ONE_MONTH_SECONDS
        assert found["spec"]["strategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        pod = found["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == ONE_MONTH_SECONDS
        (container,) = pod["containers"]
        assert container["name"] == "querynode"
        assert container["args"] == ["/milvus/tools/run.sh", "milvus", "run", "querynode"]
        assert container["ports"] == [{"name": "metrics", "containerPort": 9091, "protocol": "TCP"}]
        assert [env["name"] for env in container["env"]] == ["EXTRA", "CACHE_SIZE"]
    assert blue["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "dummy"
    cr = await sandbox.kube.store.get(MILVUSES, "default", "my-milvus")
    assert cr is not None
    assert cr["metadata"]["annotations"][CURRENT_GROUP_ANNOTATION] == "0"
    assert cr["spec"]["components"]["rollingMode"] == 2 and cr["status"]["rollingModeVersion"] == 2

    async def endpoint() -> Any:
        return (await cr_status(sandbox)).get("endpoint")

    assert await wait_for(endpoint, timeout=10, message="the status syncer's endpoint") == \
        "my-milvus-milvus.default:19530"


@both_backends
async def test_scale_in_one_replica_per_pass_and_out_in_one_step(sandbox: Sandbox) -> None:
    await started(sandbox)
    async with replica_history(sandbox) as history:
        await sandbox.kube.store.create(MILVUSES, milvus_cr(4))
        await wait_for(lambda: replicas_are(sandbox, blue=4), timeout=20, message="blue at 4")
        await set_query_nodes(sandbox, 1)
        await wait_for(lambda: replicas_are(sandbox, blue=1), timeout=20, message="blue at 1")
        await set_query_nodes(sandbox, 3)
        await wait_for(lambda: replicas_are(sandbox, blue=3), timeout=20, message="blue at 3")
    assert history.of(BLUE) == [0, 4, 3, 2, 1, 3]
    writers = {m.user_agent for m in sandbox.kube.mutations if f"/deployments/{BLUE}" in m.path}
    assert writers == {USER_AGENT}


async def status_shows_the_deployment(sandbox: Sandbox) -> bool:
    """The CR's status reflects the current Deployment as it is: nothing is left for the stand-in to do, so
    only its status syncer can notice a later change of the Deployment."""
    status = await cr_status(sandbox)
    shown = (status.get("componentsDeployStatus") or {}).get("querynode") or {}
    return bool(shown.get("generation") == (await deployment(sandbox, BLUE))["metadata"]["generation"])


@both_backends
async def test_scaling_its_deployment_directly_is_put_back(sandbox: Sandbox) -> None:
    await started(sandbox)
    async with replica_history(sandbox) as history:
        await sandbox.kube.store.create(MILVUSES, milvus_cr(2))
        await wait_for(lambda: replicas_are(sandbox, blue=2), timeout=20, message="blue at 2")
        await wait_for(lambda: status_shows_the_deployment(sandbox), timeout=20, message="the status caught up")
        await sandbox.kube.store.patch(DEPLOYMENTS, "default", BLUE, {"spec": {"replicas": 4}})
        await wait_for(lambda: history.of(BLUE)[-1:] == [2] and len(history.of(BLUE)) > 3, timeout=20,
                       message="blue back at 2")
    assert history.of(BLUE) == [0, 2, 4, 3, 2]


@both_backends
async def test_a_settled_cr_costs_no_writes(sandbox: Sandbox) -> None:
    stand_in = await started(sandbox)
    await sandbox.kube.store.create(MILVUSES, milvus_cr(2))
    await wait_for(lambda: replicas_are(sandbox, blue=2), timeout=20, message="blue at 2")

    def writes() -> int:
        return len([m for m in sandbox.kube.mutations if m.user_agent == USER_AGENT])

    async def settled() -> bool:
        before = writes()
        await passes_go_by(stand_in)
        return writes() == before

    await wait_for(settled, timeout=30, message="a round of passes without a write")
    before = writes()
    await passes_go_by(stand_in, 10)
    assert writes() == before


@both_backends
async def test_zero_replicas_stops_both_deployments_at_once(sandbox: Sandbox) -> None:
    await started(sandbox)
    async with replica_history(sandbox) as history:
        await sandbox.kube.store.create(MILVUSES, milvus_cr(3))
        await wait_for(lambda: replicas_are(sandbox, blue=3), timeout=20, message="blue at 3")
        await set_query_nodes(sandbox, 0)

        async def stopped() -> bool:
            return (await cr_status(sandbox)).get("status") == "Stopped"

        await wait_for(stopped, timeout=20, message="status Stopped")
    assert history.of(BLUE) == [0, 3, 0] and history.of(GREEN) == [0]


@both_backends
async def test_replicas_minus_one_leaves_the_deployment_to_an_hpa(sandbox: Sandbox) -> None:
    stand_in = await started(sandbox)
    await sandbox.kube.store.create(MILVUSES, milvus_cr(-1))
    await wait_for(lambda: replicas_are(sandbox, blue=1, green=0), timeout=20,
                   message="blue started at 1 (an HPA cannot scale from 0)")
    await sandbox.kube.store.patch(DEPLOYMENTS, "default", BLUE, {"spec": {"replicas": 3}})
    await passes_go_by(stand_in)
    assert await replicas_are(sandbox, blue=3, green=0)


@both_backends
async def test_requantified_resources_are_no_template_change(sandbox: Sandbox) -> None:
    """The API server rewrites quantities ("1024Mi" -> "1Gi"); milvus-operator compares them by value, so the
    template it renders again equals the stored one and no rollout starts."""
    stand_in = await started(sandbox)
    resources = {"limits": {"memory": "1024Mi", "cpu": "1000m"}}
    await sandbox.kube.store.create(MILVUSES, milvus_cr(1, resources=resources))
    await wait_for(lambda: replicas_are(sandbox, blue=1), timeout=20, message="blue at 1")
    await passes_go_by(stand_in)
    cr = await sandbox.kube.store.get(MILVUSES, "default", "my-milvus")
    assert cr is not None and ROLLING_ID_LABEL not in (cr["metadata"].get("labels") or {})
    assert (await deployment(sandbox, GREEN))["spec"]["template"]["spec"]["containers"][0]["image"] == "dummy"


@both_backends
async def test_deleting_the_cr_deletes_its_deployments(sandbox: Sandbox) -> None:
    await started(sandbox)
    await sandbox.kube.store.create(MILVUSES, milvus_cr(1))
    await wait_for(lambda: replicas_are(sandbox, blue=1, green=0), timeout=20, message="both deployments")
    await sandbox.kube.store.delete(MILVUSES, "default", "my-milvus")

    async def gone() -> bool:
        return not await sandbox.kube.store.list(DEPLOYMENTS, "default")

    # A real garbage collector learns a new CRD's kind at its next discovery sync (every 30 s).
    await wait_for(gone, timeout=90, message="the garbage collector deleted both deployments")


def live_hostnames(sandbox: Sandbox) -> set[str]:
    return {node.hostname for node in sandbox.milvus.rm.nodes.values() if node.state is NodeState.HEALTHY}


async def ready_pods(sandbox: Sandbox, deployment_name: str) -> list[str]:
    pods = await sandbox.kube.store.list(PODS, "default", label_selector=f"{GROUP_ID_LABEL}={deployment_name[-1]}")
    return sorted(p["metadata"]["name"] for p in pods if pod_is_ready(p) and not p["metadata"].get("deletionTimestamp"))


async def cr_status(sandbox: Sandbox) -> dict[str, Any]:
    cr = await sandbox.kube.store.get(MILVUSES, "default", "my-milvus")
    assert cr is not None
    status: dict[str, Any] = cr.get("status") or {}
    return status


def condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == kind), None)


@real_only
async def test_pods_register_in_milvus_and_the_cr_turns_healthy(sandbox: Sandbox) -> None:
    await started(sandbox)
    await sandbox.kube.store.create(MILVUSES, milvus_cr(2))
    await wait_for(lambda: len(live_hostnames(sandbox)) == 2, timeout=30, message="2 query nodes in Milvus")
    assert live_hostnames(sandbox) == set(await ready_pods(sandbox, BLUE))

    async def healthy() -> bool:
        status = await cr_status(sandbox)
        return status.get("status") == "Healthy" and condition(status, "MilvusUpdated") == "True"

    await wait_for(healthy, timeout=30, message="status Healthy, MilvusUpdated True")
    status = await cr_status(sandbox)
    assert condition(status, "MilvusReady") == "True"
    assert status["componentsDeployStatus"]["querynode"]["image"] == IMAGE
    assert status["componentsDeployStatus"]["querynode"]["status"]["readyReplicas"] == 2
    assert status["currentImage"] == IMAGE


@real_only
async def test_an_image_change_rolls_blue_to_green_one_pod_at_a_time(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(session_ttl=120)
    await started(sandbox, min_ready_seconds=1)  # a new pod counts as available 1 s after it is Ready
    await sandbox.kube.store.create(MILVUSES, milvus_cr(2))
    await wait_for(lambda: len(live_hostnames(sandbox)) == 2, timeout=30, message="2 query nodes in Milvus")
    serving: list[int] = []  # query nodes serving in Milvus at every pod event of the rollout
    assert isinstance(sandbox.wiring, ApiPodNodeWiring)
    sandbox.wiring.listeners.append(lambda _type, _pod: serving.append(len(live_hostnames(sandbox))))
    async with replica_history(sandbox) as history:
        history.track_pairs(BLUE, GREEN)
        await sandbox.kube.store.patch(MILVUSES, "default", "my-milvus",
                                       {"spec": {"components": {"image": NEW_IMAGE}}})

        async def rolled() -> bool:
            cr = await sandbox.kube.store.get(MILVUSES, "default", "my-milvus")
            assert cr is not None
            return (await replicas_are(sandbox, blue=0, green=2) and len(await ready_pods(sandbox, GREEN)) == 2
                    and ROLLING_ID_LABEL not in (cr["metadata"].get("labels") or {}))

        await wait_for(rolled, timeout=60, message="green serving 2 pods of the new image, the rollout finished")
    # new +1, old -1, each step once both Deployments were stable: never fewer than 2 serving query nodes
    assert history.pairs == [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]
    assert history.seen_before_scale_downs(BLUE, GREEN) == [(1, 1), (2, 2)]  # green's new pods were available
    assert serving and min(serving) == 2, serving
    green = await deployment(sandbox, GREEN)
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    cr = await sandbox.kube.store.get(MILVUSES, "default", "my-milvus")
    assert cr is not None and cr["metadata"]["annotations"][CURRENT_GROUP_ANNOTATION] == "1"
    green_pods = set(await ready_pods(sandbox, GREEN))
    await wait_for(lambda: live_hostnames(sandbox) == green_pods, timeout=30, message="only green's pods in Milvus")
