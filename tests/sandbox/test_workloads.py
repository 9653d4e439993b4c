"""The workload emulator (StatefulSet controller + kubelet) against the sandbox's object store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from milvus_rg_sandbox.kube.store import ObjectStore
from milvus_rg_sandbox.workloads import PODS, STATEFULSETS, IpPool, WorkloadEmulator, pod_is_ready
from tests.support import wait_for

NS = "default"
START_DELAY = 0.05


class CountingStore(ObjectStore):
    """Counts patch calls per (resource, name, subresource), to catch write churn."""

    def __init__(self) -> None:
        super().__init__()
        self.patches: Counter[tuple[str, str, str | None]] = Counter()

    async def patch(self, resource: str, namespace: str | None, name: str, patch: dict[str, Any],
                    subresource: str | None = None) -> dict[str, Any]:
        self.patches[(resource, name, subresource)] += 1
        return await super().patch(resource, namespace, name, patch, subresource)


class HookLog:
    """Records hook calls as (event, pod name); `release` lets blocked terminations finish."""

    def __init__(self, emulator: WorkloadEmulator) -> None:
        self.events: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.block_termination = False
        emulator.on_pod_ready(self._ready)
        emulator.on_pod_terminating(self._terminating)
        emulator.on_pod_crashed(self._crashed)

    async def _ready(self, pod: dict[str, Any]) -> None:
        self.events.append(("ready", pod["metadata"]["name"]))

    async def _terminating(self, pod: dict[str, Any]) -> None:
        self.events.append(("terminating", pod["metadata"]["name"]))
        if self.block_termination:
            await self.release.wait()

    async def _crashed(self, pod: dict[str, Any]) -> None:
        self.events.append(("crashed", pod["metadata"]["name"]))

    def of(self, name: str) -> list[str]:
        return [event for event, pod in self.events if pod == name]


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
async def emulator(store: CountingStore) -> AsyncIterator[WorkloadEmulator]:
    workloads = WorkloadEmulator(store, pod_start_delay=START_DELAY, tick_interval=0.2)
    await workloads.start()
    try:
        yield workloads
    finally:
        await workloads.stop()


@pytest.fixture
def hooks(emulator: WorkloadEmulator) -> HookLog:
    return HookLog(emulator)


def statefulset(name: str = "qn", replicas: int = 1, grace: int = 30, policy: str = "Parallel") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas, "serviceName": f"{name}-headless", "selector": {"matchLabels": labels},
            "podManagementPolicy": policy,
            "template": {
                "metadata": {"labels": labels, "annotations": {"note": "kept"}},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [{"name": "main", "image": "img:1", "command": ["milvus", "run", "querynode"],
                                    "args": ["--x"], "env": [{"name": "A", "value": "1"}]}],
                },
            },
        },
    }


async def pod(store: ObjectStore, name: str) -> dict[str, Any] | None:
    return await store.get(PODS, NS, name)


async def ready_pods(store: ObjectStore) -> list[str]:
    return sorted(p["metadata"]["name"] for p in await store.list(PODS, NS) if pod_is_ready(p))


async def pod_names(store: ObjectStore) -> list[str]:
    return sorted(p["metadata"]["name"] for p in await store.list(PODS, NS))


async def scale(store: ObjectStore, name: str, replicas: int) -> None:
    await store.patch(STATEFULSETS, NS, name, {"spec": {"replicas": replicas}})


async def test_statefulset_pods_carry_template_identity_and_become_ready(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    sts = await store.create(STATEFULSETS, statefulset(replicas=2))
    await wait_for(lambda: ready_pods(store), message="pods ready")
    first = await wait_for(lambda: pod(store, "qn-0"))
    meta, spec = first["metadata"], first["spec"]
    revision = (await wait_for(lambda: store.get(STATEFULSETS, NS, "qn")))["status"]["updateRevision"]
    assert meta["labels"] == {"app": "qn", "statefulset.kubernetes.io/pod-name": "qn-0",
                              "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": revision}
    assert meta["annotations"] == {"note": "kept"}
    assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "qn",
                                        "uid": sts["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
    assert spec["hostname"] == "qn-0" and spec["subdomain"] == "qn-headless"
    container = spec["containers"][0]
    assert container["command"] == ["milvus", "run", "querynode"] and container["args"] == ["--x"]
    assert container["env"] == [{"name": "A", "value": "1"}]

    await wait_for(lambda: ready_pods(store), message="both ready")
    assert await wait_for(lambda: _equals(ready_pods(store), ["qn-0", "qn-1"]))
    pods = await store.list(PODS, NS)
    status = pods[0]["status"]
    assert status["phase"] == "Running" and status["hostIP"] == "127.0.0.1"
    assert {c["type"]: c["status"] for c in status["conditions"]}["ContainersReady"] == "True"
    assert status["containerStatuses"][0]["ready"] is True and status["containerStatuses"][0]["started"]
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 2 and all(ip.startswith("127.0.0.") and ip != "127.0.0.1" for ip in ips)
    assert sorted(hooks.events) == [("ready", "qn-0"), ("ready", "qn-1")]


async def _equals(probe: Any, expected: Any) -> bool:
    return bool(await probe == expected)


async def test_pod_is_pending_until_its_start_delay_passed(store: CountingStore, emulator: WorkloadEmulator) -> None:
    emulator.set_start_delay(NS, "qn-1", 60)
    await store.create(STATEFULSETS, statefulset(replicas=2))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0"]))
    slow = await pod(store, "qn-1")
    assert slow is not None and slow["status"]["phase"] == "Pending" and "podIP" not in slow["status"]


async def test_scale_down_deletes_highest_ordinals_gracefully(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    await store.create(STATEFULSETS, statefulset(replicas=3))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0", "qn-1", "qn-2"]))
    hooks.block_termination = True
    await scale(store, "qn", 1)
    await wait_for(lambda: all(hooks.of(name) == ["ready", "terminating"] for name in ("qn-1", "qn-2")))
    for name in ("qn-1", "qn-2"):  # graceful: marked first, still there while the container stops
        terminating = await pod(store, name)
        assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    hooks.release.set()
    await wait_for(lambda: _equals(pod_names(store), ["qn-0"]), message="surplus pods purged")
    assert hooks.of("qn-0") == ["ready"]

    await scale(store, "qn", 2)
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0", "qn-1"]))


async def test_status_is_truthful_and_not_rewritten_when_unchanged(
    store: CountingStore, emulator: WorkloadEmulator
) -> None:
    emulator.never_ready(NS, "qn-2")
    await store.create(STATEFULSETS, statefulset(replicas=3))

    async def status() -> dict[str, Any]:
        sts = await store.get(STATEFULSETS, NS, "qn")
        assert sts is not None
        return dict(sts.get("status") or {})

    revision = (await wait_for(status))["updateRevision"]
    expected = {"replicas": 3, "readyReplicas": 2, "currentReplicas": 3, "updatedReplicas": 3,
                "availableReplicas": 2, "observedGeneration": 1, "currentRevision": revision,
                "updateRevision": revision, "collisionCount": 0}
    await wait_for(lambda: _equals(status(), expected), message="status")
    writes = store.patches[(STATEFULSETS, "qn", "status")]
    for _ in range(5):
        await emulator.reconcile_once()
    assert store.patches[(STATEFULSETS, "qn", "status")] == writes

    await scale(store, "qn", 1)
    await wait_for(lambda: _equals(status(), {**expected, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1,
                                              "updatedReplicas": 1, "availableReplicas": 1,
                                              "observedGeneration": 2}))


async def test_missing_pod_is_recreated(store: CountingStore, emulator: WorkloadEmulator) -> None:
    await store.create(STATEFULSETS, statefulset(replicas=2))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0", "qn-1"]))
    old = await pod(store, "qn-1")
    assert old is not None
    await store.purge(PODS, NS, "qn-1")

    async def recreated() -> bool:
        new = await pod(store, "qn-1")
        return new is not None and new["metadata"]["uid"] != old["metadata"]["uid"] and pod_is_ready(new)

    await wait_for(recreated, message="qn-1 recreated")


async def test_crash_pod_restarts_the_container_as_a_new_process(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    await store.create(STATEFULSETS, statefulset(replicas=1))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0"]))
    uid = (await pod(store, "qn-0") or {})["metadata"]["uid"]
    emulator.crash_pod(NS, "qn-0")
    await wait_for(lambda: hooks.of("qn-0") == ["ready", "crashed", "ready"], message="crash then restart")
    restarted = await pod(store, "qn-0")
    assert restarted is not None and pod_is_ready(restarted) and restarted["metadata"]["uid"] == uid
    container = restarted["status"]["containerStatuses"][0]
    assert container["restartCount"] == 1 and container["lastState"]["terminated"]["exitCode"] == 137


async def test_never_ready_pod_runs_without_becoming_ready(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    emulator.never_ready(NS, "qn-[1-9]")
    await store.create(STATEFULSETS, statefulset(replicas=2))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0"]))

    async def running_unready() -> bool:
        stuck = await pod(store, "qn-1")
        return stuck is not None and stuck["status"].get("phase") == "Running" and not pod_is_ready(stuck)

    await wait_for(running_unready)
    assert hooks.of("qn-1") == []


async def test_delete_pod_now_loses_the_pod_without_graceful_stop(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    await store.create(STATEFULSETS, statefulset(replicas=1))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0"]))
    uid = (await pod(store, "qn-0") or {})["metadata"]["uid"]
    emulator.delete_pod_now(NS, "qn-0")
    await wait_for(lambda: hooks.of("qn-0") == ["ready", "crashed", "ready"], message="lost, then recreated")
    replacement = await pod(store, "qn-0")
    assert replacement is not None and replacement["metadata"]["uid"] != uid


async def test_termination_is_killed_after_the_grace_period(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    await store.create(STATEFULSETS, statefulset(replicas=2, grace=1))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0", "qn-1"]))
    hooks.block_termination = True  # the container ignores SIGTERM
    await scale(store, "qn", 1)
    await wait_for(lambda: _equals(pod_names(store), ["qn-0"]), timeout=5, message="killed after grace")
    assert hooks.of("qn-1") == ["ready", "terminating", "crashed"]


async def test_bare_pods_get_the_kubelet_too(store: CountingStore, emulator: WorkloadEmulator) -> None:
    await store.create(PODS, {"metadata": {"name": "solo", "namespace": NS},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    await wait_for(lambda: _equals(ready_pods(store), ["solo"]))
    await store.delete(PODS, NS, "solo")
    await wait_for(lambda: _equals(pod_names(store), []), message="bare pod purged")


async def test_deleting_the_statefulset_terminates_its_pods(
    store: CountingStore, emulator: WorkloadEmulator, hooks: HookLog
) -> None:
    await store.create(STATEFULSETS, statefulset(replicas=2))
    await wait_for(lambda: _equals(ready_pods(store), ["qn-0", "qn-1"]))
    await store.delete(STATEFULSETS, NS, "qn")
    await wait_for(lambda: _equals(pod_names(store), []), message="pods garbage-collected and purged")
    assert sorted(hooks.events) == [("ready", "qn-0"), ("ready", "qn-1"),
                                    ("terminating", "qn-0"), ("terminating", "qn-1")]


def test_pod_ips_are_distinct_loopback_addresses_beyond_250_pods() -> None:
    pool = IpPool()
    addresses = [pool.allocate() for _ in range(600)]
    assert len(set(addresses)) == 600
    assert addresses[0] == "127.0.0.2" and "127.0.1.1" in addresses
    assert not any(ip.endswith((".0", ".255")) or ip == "127.0.0.1" for ip in addresses)
    pool.release("127.0.0.7")
    usable = 256 * 254 - 1  # 127.0.0.0/16 without x.0, x.255 and 127.0.0.1
    rest = [pool.allocate() for _ in range(usable - 600)]
    assert not set(rest) & set(addresses), "fresh addresses first"
    assert pool.allocate() == "127.0.0.7", "then only the released one, never one still in use"


async def test_the_store_hands_out_copies_and_keeps_none_of_a_callers_objects(store: CountingStore) -> None:
    """The emulator's cache and the store's cheaper writes (one copy in, one out) never share an object a
    caller could change."""
    body = statefulset()
    created = await store.create(STATEFULSETS, body)
    body["spec"]["template"]["metadata"]["labels"]["app"] = "changed-after-create"
    created["spec"]["replicas"] = 99
    status = {"replicas": 1, "conditions": [{"type": "Ready"}]}
    patched = await store.patch(STATEFULSETS, NS, "qn", {"status": status}, subresource="status")
    status["conditions"][0]["type"] = "changed-after-patch"
    patched["status"]["replicas"] = 42
    labels = {"tier": "a"}
    relabelled = await store.patch(STATEFULSETS, NS, "qn", {"metadata": {"labels": labels}})
    labels["tier"] = "changed-after-patch"
    relabelled["metadata"]["labels"]["tier"] = "changed-in-answer"
    stored = await store.get(STATEFULSETS, NS, "qn")
    assert stored is not None
    stored["spec"]["selector"]["matchLabels"]["app"] = "changed-in-get"
    again = await store.get(STATEFULSETS, NS, "qn")
    assert again is not None
    assert again["spec"]["template"]["metadata"]["labels"]["app"] == "qn"
    assert again["spec"]["replicas"] == 1 and again["spec"]["selector"]["matchLabels"]["app"] == "qn"
    assert again["status"] == {"replicas": 1, "conditions": [{"type": "Ready"}]}
    assert again["metadata"]["labels"] == {"tier": "a"}
