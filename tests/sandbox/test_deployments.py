"""Deployments and ReplicaSets on both Kubernetes backends: the embedded emulator (milvus_rg_sandbox.controllers)
must give the answers kube-controller-manager 1.37 gives (names, labels, annotations, status, which pods go on a
scale-down, the steps of a rollout)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import DEPLOYMENTS, PODS, REPLICASETS
from tests.support import wait_for

from .workload_helpers import (
    GENERATED,
    HASH,
    MERGE,
    NS,
    Obj,
    RawApi,
    deployment,
    name_of,
    owned_by,
    ready_pods,
    recording,
)

pytestmark = pytest.mark.kube_backends
COST = "controller.kubernetes.io/pod-deletion-cost"
REVISION = "deployment.kubernetes.io/revision"


async def replicasets_of(sandbox: Sandbox, owner: Obj) -> list[Obj]:
    """The Deployment's ReplicaSets, oldest revision first."""
    return sorted((rs for rs in await sandbox.kube.store.list(REPLICASETS, NS) if owned_by(rs, owner)),
                  key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))


async def settled(sandbox: Sandbox, name: str, replicas: int, timeout: float = 30) -> Obj:
    """The Deployment once its controller has observed its spec and every replica is updated and available."""
    async def probe() -> Obj | None:
        d = await sandbox.kube.store.get(DEPLOYMENTS, NS, name)
        status = (d or {}).get("status") or {}
        done = d is not None and status.get("observedGeneration") == d["metadata"]["generation"] and all(
            status.get(field, 0) == replicas for field in ("replicas", "updatedReplicas", "availableReplicas"))
        progressing = [c for c in status.get("conditions") or [] if c["type"] == "Progressing"]
        return d if done and progressing and progressing[0]["reason"] == "NewReplicaSetAvailable" else None

    return await wait_for(probe, timeout=timeout, message=f"deployment {name} settled at {replicas}")


def conditions(obj: Obj) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in (obj.get("status") or {}).get("conditions")
            or []}


async def test_a_deployment_owns_a_replicaset_named_by_its_template_hash(sandbox: Sandbox) -> None:
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 3))
    settled_d = await settled(sandbox, "web", 3)
    (rs,) = await replicasets_of(sandbox, d)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert HASH.fullmatch(pod_hash), pod_hash
    assert name_of(rs) == f"web-{pod_hash}"
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1",
                                             "deployment.kubernetes.io/desired-replicas": "3",
                                             "deployment.kubernetes.io/max-replicas": "4"}  # 3 + 25% rounded up
    assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": d["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}}
    assert rs["spec"]["replicas"] == 3
    pods = await ready_pods(sandbox, "app=web", 3)
    for pod in pods:
        assert re.fullmatch(f"web-{pod_hash}-{GENERATED}{{5}}", name_of(pod)), name_of(pod)
        assert pod["metadata"]["generateName"] == f"web-{pod_hash}-"
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                       "name": name_of(rs), "uid": rs["metadata"]["uid"],
                                                       "controller": True, "blockOwnerDeletion": True}]
    rs = await wait_for(lambda: _with_status(sandbox, REPLICASETS, name_of(rs), "availableReplicas", 3))
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                            "terminatingReplicas": 0, "observedGeneration": 1}
    assert settled_d["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    assert settled_d["spec"]["strategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (settled_d["spec"]["revisionHistoryLimit"], settled_d["spec"]["progressDeadlineSeconds"]) == (10, 600)
    status = {k: v for k, v in settled_d["status"].items() if k != "conditions"}
    assert status == {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                      "availableReplicas": 3, "terminatingReplicas": 0}
    assert conditions(settled_d) == {
        "Available": ("True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
        "Progressing": ("True", "NewReplicaSetAvailable", f'ReplicaSet "{name_of(rs)}" has successfully progressed.'),
    }


async def _with_status(sandbox: Sandbox, resource: str, name: str, field: str, value: int) -> Obj | None:
    obj = await sandbox.kube.store.get(resource, NS, name)
    return obj if obj is not None and (obj.get("status") or {}).get(field) == value else None


async def test_the_scale_subresource_of_a_deployment(sandbox: Sandbox) -> None:
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 1))
    await settled(sandbox, "web", 1)
    api = RawApi(sandbox)
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web/scale"
    scaled = await api.call("PATCH", path, {"spec": {"replicas": 4}}, content_type=MERGE)
    assert scaled.status == 200, scaled.body
    assert (scaled.body["kind"], scaled.body["apiVersion"], scaled.body["spec"]) == (
        "Scale", "autoscaling/v1", {"replicas": 4})
    await settled(sandbox, "web", 4)
    read = await api.call("GET", path)
    assert read.body["spec"] == {"replicas": 4} and read.body["status"] == {"replicas": 4, "selector": "app=web"}


async def test_scale_down_removes_the_pods_with_the_lowest_deletion_cost(sandbox: Sandbox) -> None:
    """`ActivePodsWithRanks.Less` rule 4: among Running, Ready pods, a lower pod-deletion-cost goes first."""
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 5))
    await settled(sandbox, "web", 5)
    pods = await ready_pods(sandbox, "app=web", 5)
    costs = dict(zip((name_of(p) for p in pods), ("100", "-5", "7", "0", "2147483647"), strict=True))
    for name, cost in costs.items():
        await sandbox.kube.store.patch(PODS, NS, name, {"metadata": {"annotations": {COST: cost}}})
    await RawApi(sandbox).call("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/web/scale",
                               {"spec": {"replicas": 2}}, content_type=MERGE)
    kept = await ready_pods(sandbox, "app=web", 2)
    assert sorted(name_of(p) for p in kept) == sorted(n for n, c in costs.items() if c in ("100", "2147483647"))
    assert [rs["spec"]["replicas"] for rs in await replicasets_of(sandbox, d)] == [2]


async def test_a_pod_without_a_deletion_cost_counts_as_cost_zero(sandbox: Sandbox) -> None:
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 3))
    await settled(sandbox, "web", 3)
    pods = await ready_pods(sandbox, "app=web", 3)
    for pod, cost in zip(pods, ("1", "-1"), strict=False):  # the third has none
        await sandbox.kube.store.patch(PODS, NS, name_of(pod), {"metadata": {"annotations": {COST: cost}}})
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"replicas": 1}})
    kept = await ready_pods(sandbox, "app=web", 1)
    assert name_of(kept[0]) == name_of(pods[0])


async def test_an_invalid_deletion_cost_is_refused(sandbox: Sandbox) -> None:
    """Pod validation (`ValidatePodSpecificAnnotations`): the cost must be an int32 without "+" or leading zeros."""
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 1))
    (pod,) = await ready_pods(sandbox, "app=web", 1)
    api = RawApi(sandbox)
    for value in ("abc", "+1", "007", "2147483648"):
        answer = await api.call("PATCH", f"/api/v1/namespaces/{NS}/pods/{name_of(pod)}",
                                {"metadata": {"annotations": {COST: value}}}, content_type=MERGE)
        assert answer.status == 422, answer.body
        field = f"metadata.annotations[{COST}]"
        assert answer.body["message"] == (f'Pod "{name_of(pod)}" is invalid: {field}: Invalid value: "{value}": '
                                          "must be a 32bit integer")
        assert answer.body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": field,
                                                     "message": f'Invalid value: "{value}": must be a 32bit integer'}]


def rs_steps(recorder: Any, old: Obj) -> list[tuple[int, int]]:
    """(old, new) spec.replicas of a Deployment's two ReplicaSets after each change of either, from the first
    appearance of the new one."""
    old_name = name_of(old)
    sizes: dict[str, int] = {old_name: old["spec"]["replicas"]}
    steps: list[tuple[int, int]] = []
    for _, rs in recorder.events:
        sizes[name_of(rs)] = rs["spec"]["replicas"]
        new = [size for name, size in sizes.items() if name != old_name]
        if new and (not steps or steps[-1] != (sizes[old_name], new[0])):
            steps.append((sizes[old_name], new[0]))
    return steps


async def test_a_rolling_update_moves_one_replica_at_a_time_within_max_surge(sandbox: Sandbox) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 3, strategy=strategy))
    await settled(sandbox, "web", 3)
    (old,) = await replicasets_of(sandbox, d)
    api = RawApi(sandbox)
    async with recording(api, f"/apis/apps/v1/namespaces/{NS}/replicasets") as recorder:
        await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "registry.example/app:2"}]}}}})
        done = await settled(sandbox, "web", 3)
        await wait_for(lambda: rs_steps(recorder, old)[-1:] == [(0, 3)], message="the watch caught up")
    assert rs_steps(recorder, old) == [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]
    old, new = await replicasets_of(sandbox, d)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)  # the old one is kept (history)
    assert old["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert done["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert done["metadata"]["generation"] == 2
    pods = await ready_pods(sandbox, "app=web", 3)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {
        new["metadata"]["labels"]["pod-template-hash"]}


async def test_a_percentage_max_unavailable_rounds_down_and_max_surge_up(sandbox: Sandbox) -> None:
    """`ResolveFenceposts` for 4 replicas: maxSurge 30% -> 2 (1.2 up), maxUnavailable 30% -> 1 (1.2 down). The new
    pods are held Pending by a scheduling gate, so the rollout stops where those bounds leave it."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "30%"}}
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 4, strategy=strategy))
    await settled(sandbox, "web", 4)
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"template": {"spec": {
        "schedulingGates": [{"name": "example.com/hold"}]}}}})

    async def stuck() -> list[int] | None:
        sizes = [rs["spec"]["replicas"] for rs in await replicasets_of(sandbox, d)]
        return sizes if sizes == [3, 3] else None

    # new 0 -> 2 (4 + 2 surge), old 4 -> 3 (4 - 1 unavailable), new 2 -> 3 (6 pods), then nothing is available.
    await wait_for(stuck, timeout=30, message="old 3, new 3")
    expected = {"observedGeneration": 2, "replicas": 6, "updatedReplicas": 3, "readyReplicas": 3,
                "availableReplicas": 3, "unavailableReplicas": 3, "terminatingReplicas": 0}

    async def counted() -> Obj | None:  # the old pod scaled away may still count as terminating for a moment
        dep = await sandbox.kube.store.get(DEPLOYMENTS, NS, "web")
        status = {k: v for k, v in ((dep or {}).get("status") or {}).items() if k != "conditions"}
        return dep if status == expected else None

    dep = await wait_for(counted, timeout=30, message=f"status {expected}")
    assert conditions(dep)["Available"][:2] == ("True", "MinimumReplicasAvailable")  # 3 >= 4 - 1
    assert conditions(dep)["Progressing"][:2] == ("True", "ReplicaSetUpdated")


async def test_scaling_during_a_rollout_is_shared_in_proportion(sandbox: Sandbox) -> None:
    """`scale` (sync.go), the documented example: 10 replicas, maxSurge 3, maxUnavailable 2, a rollout whose new pods
    never start stops at old 8 / new 5; scaled to 15 the 5 more replicas (18 with surge, 13 now) go 3 to the old
    ReplicaSet (8 * 18 / 13 = 11.1) and 2 to the new one."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 10, strategy=strategy))
    await settled(sandbox, "web", 10)
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"template": {"spec": {
        "schedulingGates": [{"name": "example.com/hold"}]}}}})

    async def sizes(expected: list[int]) -> list[int] | None:
        found = [rs["spec"]["replicas"] for rs in await replicasets_of(sandbox, d)]
        return found if found == expected else None

    await wait_for(lambda: sizes([8, 5]), timeout=30, message="old 8, new 5")
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"replicas": 15}})
    await wait_for(lambda: sizes([11, 7]), timeout=30, message="old 11, new 7")
    old, new = await replicasets_of(sandbox, d)
    for rs in (old, new):
        assert (rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
                rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"]) == ("15", "18")


async def test_recreate_stops_every_old_pod_before_a_new_one_exists(sandbox: Sandbox) -> None:
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 3, strategy={"type": "Recreate"}))
    await settled(sandbox, "web", 3)
    (old,) = await replicasets_of(sandbox, d)
    old_hash = old["metadata"]["labels"]["pod-template-hash"]
    async with recording(RawApi(sandbox), f"/api/v1/namespaces/{NS}/pods") as recorder:
        await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "registry.example/app:2"}]}}}})
        await settled(sandbox, "web", 3)
        await wait_for(lambda: sum(kind == "ADDED" for kind, _ in recorder.events) == 3, message="the watch caught up")
    events = [(kind, pod["metadata"]["labels"]["pod-template-hash"] == old_hash) for kind, pod in recorder.events]
    last_old_gone = max(i for i, (kind, is_old) in enumerate(events) if kind == "DELETED" and is_old)
    first_new = min(i for i, (kind, is_old) in enumerate(events) if kind == "ADDED" and not is_old)
    assert last_old_gone < first_new, events
    assert [rs["spec"]["replicas"] for rs in await replicasets_of(sandbox, d)] == [0, 3]


async def test_a_paused_deployment_rolls_out_nothing_until_resumed(sandbox: Sandbox) -> None:
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 2))
    await settled(sandbox, "web", 2)
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"paused": True, "template": {"spec": {
        "containers": [{"name": "app", "image": "registry.example/app:2"}]}}}})

    async def observed() -> Obj | None:
        dep = await sandbox.kube.store.get(DEPLOYMENTS, NS, "web")
        return dep if dep and (dep.get("status") or {}).get("observedGeneration") == 2 else None

    paused = await wait_for(observed, timeout=30, message="the paused template change observed")
    assert conditions(paused)["Progressing"] == ("Unknown", "DeploymentPaused", "Deployment is paused")
    assert len(await replicasets_of(sandbox, d)) == 1
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"paused": False}})
    resumed = await settled(sandbox, "web", 2)
    assert [rs["spec"]["replicas"] for rs in await replicasets_of(sandbox, d)] == [0, 2]
    assert resumed["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


async def test_old_replicasets_beyond_the_revision_history_limit_are_deleted(sandbox: Sandbox) -> None:
    d = await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 1, revisionHistoryLimit=1))
    await settled(sandbox, "web", 1)
    for version in (2, 3):
        await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": f"registry.example/app:{version}"}]}}}})
        await settled(sandbox, "web", 1)

    async def two_left() -> list[str] | None:
        revisions = [rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                     for rs in await replicasets_of(sandbox, d)]
        return revisions if sorted(revisions) == ["2", "3"] else None

    await wait_for(two_left, timeout=30, message="revision 1 cleaned up")
