"""StatefulSet pod management and update strategies on both Kubernetes backends: the embedded emulator must roll
pods as kube-controller-manager 1.37 does (OrderedReady order, RollingUpdate with partition, OnDelete, revisions
and their status)."""

from __future__ import annotations

import pytest

from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import CONTROLLER_REVISIONS, PODS, STATEFULSETS, pod_is_ready
from tests.support import wait_for

from .workload_helpers import HASH, NS, Obj, RawApi, name_of, owned_by, ready_pods, recording, statefulset

pytestmark = pytest.mark.kube_backends
REVISION = "controller-revision-hash"
NEW_IMAGE = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:2"}]}}}}


async def status_when(sandbox: Sandbox, name: str, **expected: object) -> Obj:
    """The StatefulSet's status once it has observed its spec and shows the `expected` fields."""
    async def probe() -> Obj | None:
        sts = await sandbox.kube.store.get(STATEFULSETS, NS, name)
        status = (sts or {}).get("status") or {}
        if sts is None or status.get("observedGeneration") != sts["metadata"]["generation"]:
            return None
        return status if all(status.get(k) == v for k, v in expected.items()) else None

    return await wait_for(probe, timeout=30, message=f"statefulset {name} status {expected}")


def revisions_of(pods: list[Obj]) -> dict[str, str]:
    return {name_of(p): p["metadata"]["labels"][REVISION] for p in pods}


def ready_events(recorder: object, revision: str) -> list[tuple[str, str]]:
    """(DELETED|READY, pod) in the order they happened: a pod deleted, a pod of `revision` Ready. A pod deleted
    again before it was Ready counts once: kwok (the real tier's kubelets) sometimes plays the delete stage of a
    pod it just removed on the replacement of the same name (a stale copy; docs/real-kubernetes.md)."""
    steps: list[tuple[str, str]] = []
    last: dict[str, str] = {}
    for kind, pod in recorder.events:  # type: ignore[attr-defined]
        name = name_of(pod)
        if kind == "DELETED":
            step = "DELETED"
        elif pod["metadata"]["labels"].get(REVISION) == revision and pod_is_ready(pod):
            step = "READY"
        else:
            continue
        if last.get(name) != step:
            steps.append((step, name))
            last[name] = step
    return steps


async def test_ordered_ready_creates_each_pod_once_its_predecessor_is_ready(sandbox: Sandbox) -> None:
    async with recording(RawApi(sandbox), f"/api/v1/namespaces/{NS}/pods") as recorder:
        await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 3))
        await ready_pods(sandbox, "app=db", 3)
        await wait_for(lambda: {name_of(p) for _, p in recorder.events if pod_is_ready(p)} == {"db-0", "db-1", "db-2"},
                       message="the watch caught up")
    created = [name_of(pod) for kind, pod in recorder.events if kind == "ADDED"]
    assert created == ["db-0", "db-1", "db-2"]
    for earlier, later in (("db-0", "db-1"), ("db-1", "db-2")):
        first_ready = next(i for i, (_, p) in enumerate(recorder.events) if name_of(p) == earlier and pod_is_ready(p))
        added = next(i for i, (k, p) in enumerate(recorder.events) if k == "ADDED" and name_of(p) == later)
        assert first_ready < added, (earlier, later)


async def test_a_new_statefulset_has_one_revision_its_pods_carry(sandbox: Sandbox) -> None:
    sts = await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 2, policy="Parallel"))
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"partition": 0, "maxUnavailable": 1}}
    assert sts["spec"]["podManagementPolicy"] == "Parallel" and sts["spec"]["revisionHistoryLimit"] == 10
    pods = await ready_pods(sandbox, "app=db", 2)
    status = await status_when(sandbox, "db", readyReplicas=2)
    revision = status["updateRevision"]
    assert status == {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "currentReplicas": 2,
                      "updatedReplicas": 2, "currentRevision": revision, "updateRevision": revision,
                      "collisionCount": 0, "availableReplicas": 2}
    assert revision.startswith("db-") and HASH.fullmatch(revision.removeprefix("db-"))
    assert revisions_of(pods) == {"db-0": revision, "db-1": revision}
    (controller_revision,) = [r for r in await sandbox.kube.store.list(CONTROLLER_REVISIONS, NS) if owned_by(r, sts)]
    assert name_of(controller_revision) == revision and controller_revision["revision"] == 1
    assert controller_revision["metadata"]["labels"] == {"app": "db",
                                                         "controller.kubernetes.io/hash": revision.removeprefix("db-")}
    assert controller_revision["data"]["spec"]["template"]["$patch"] == "replace"
    for pod in pods:
        assert pod["metadata"]["generateName"] == "db-"
        assert pod["spec"]["hostname"] == name_of(pod) and pod["spec"]["subdomain"] == "db"


async def test_a_rolling_update_with_a_partition_replaces_the_highest_ordinals_one_at_a_time(
        sandbox: Sandbox) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 4, strategy=strategy))
    old = (await status_when(sandbox, "db", readyReplicas=4))["currentRevision"]
    async with recording(RawApi(sandbox), f"/api/v1/namespaces/{NS}/pods") as recorder:
        await sandbox.kube.store.patch(STATEFULSETS, NS, "db", NEW_IMAGE)
        status = await status_when(sandbox, "db", updatedReplicas=2, readyReplicas=4)
        new = status["updateRevision"]
        await wait_for(lambda: ("READY", "db-2") in ready_events(recorder, new), message="the watch caught up")
    assert new != old and status["currentRevision"] == old and status["currentReplicas"] == 2
    assert ready_events(recorder, new) == [("DELETED", "db-3"), ("READY", "db-3"), ("DELETED", "db-2"),
                                           ("READY", "db-2")]
    pods = await ready_pods(sandbox, "app=db", 4)
    assert revisions_of(pods) == {"db-0": old, "db-1": old, "db-2": new, "db-3": new}

    await sandbox.kube.store.patch(STATEFULSETS, NS, "db", {"spec": {"updateStrategy": {"rollingUpdate": {
        "partition": 0}}}})
    done = await status_when(sandbox, "db", updatedReplicas=4, readyReplicas=4, currentRevision=new)
    assert done["currentReplicas"] == 4 and done["updateRevision"] == new
    numbers = {name_of(r): r["revision"] for r in await sandbox.kube.store.list(CONTROLLER_REVISIONS, NS)}
    assert numbers == {old: 1, new: 2}


async def test_parallel_rolling_update_keeps_at_most_max_unavailable_pods_down(sandbox: Sandbox) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
    await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 4, policy="Parallel", strategy=strategy))
    await status_when(sandbox, "db", readyReplicas=4)
    async with recording(RawApi(sandbox), f"/api/v1/namespaces/{NS}/pods") as recorder:
        await sandbox.kube.store.patch(STATEFULSETS, NS, "db", NEW_IMAGE)
        new = (await status_when(sandbox, "db", updatedReplicas=4, readyReplicas=4))["updateRevision"]
        await wait_for(lambda: {pod for kind, pod in ready_events(recorder, new) if kind == "READY"}
                       == {"db-0", "db-1", "db-2", "db-3"}, message="the watch caught up")
    # Each pod's first deletion and first Ready at the new revision: kwok (the real tier's kubelets) may delete a
    # replacement once more after it was Ready (docs/real-kubernetes.md), which is not the controller's doing.
    seen: set[tuple[str, str]] = set()
    steps = [step for step in ready_events(recorder, new) if step not in seen and not seen.add(step)]
    assert sorted(pod for kind, pod in steps[:2]) == ["db-2", "db-3"] and {k for k, _ in steps[:2]} == {"DELETED"}
    assert {pod for kind, pod in steps if kind == "DELETED"} == {"db-0", "db-1", "db-2", "db-3"}
    down = 0
    for kind, _ in steps:  # deleted and not yet back Ready: never more than maxUnavailable
        down += 1 if kind == "DELETED" else -1
        assert down <= 2, steps


async def test_on_delete_updates_a_pod_only_when_it_is_deleted(sandbox: Sandbox) -> None:
    strategy = {"type": "OnDelete"}
    sts = await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 2, policy="Parallel", strategy=strategy))
    assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
    old = (await status_when(sandbox, "db", readyReplicas=2))["currentRevision"]
    await sandbox.kube.store.patch(STATEFULSETS, NS, "db", NEW_IMAGE)
    status = await status_when(sandbox, "db", readyReplicas=2, currentReplicas=2)
    new = status["updateRevision"]
    assert new != old and status["currentRevision"] == old and "updatedReplicas" not in status
    assert revisions_of(await ready_pods(sandbox, "app=db", 2)) == {"db-0": old, "db-1": old}
    await sandbox.kube.store.delete(PODS, NS, "db-1")
    await status_when(sandbox, "db", readyReplicas=2, updatedReplicas=1, currentReplicas=1)
    assert revisions_of(await ready_pods(sandbox, "app=db", 2)) == {"db-0": old, "db-1": new}


async def test_going_back_to_an_earlier_template_reuses_its_revision(sandbox: Sandbox) -> None:
    """`getStatefulSetRevisions`: an equal older revision is renumbered instead of a new one created."""
    await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 1, policy="Parallel"))
    first = (await status_when(sandbox, "db", readyReplicas=1))["currentRevision"]
    await sandbox.kube.store.patch(STATEFULSETS, NS, "db", NEW_IMAGE)
    second = (await status_when(sandbox, "db", updatedReplicas=1, readyReplicas=1))["updateRevision"]
    await sandbox.kube.store.patch(STATEFULSETS, NS, "db", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.example/app:1"}]}}}})
    back = await status_when(sandbox, "db", updatedReplicas=1, readyReplicas=1, currentRevision=first)
    assert back["updateRevision"] == first != second
    numbers = {name_of(r): r["revision"] for r in await sandbox.kube.store.list(CONTROLLER_REVISIONS, NS)}
    assert numbers == {second: 2, first: 3}
