"""PodDisruptionBudgets and the eviction API (what `kubectl drain` uses) on both Kubernetes backends: the embedded
disruption controller must keep a PDB's status as kube-controller-manager 1.37 does, and the embedded API server
must allow or refuse an eviction as kube-apiserver 1.37 does (same codes, same Status bodies)."""

from __future__ import annotations

from typing import Any

import pytest

from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import DEPLOYMENTS, PDBS, PODS, REPLICASETS, STATEFULSETS
from tests.support import wait_for

from .workload_helpers import GATED, NS, Obj, RawApi, deployment, name_of, ready_pods, replicaset, statefulset

pytestmark = pytest.mark.kube_backends
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def pdb(name: str, selector: dict[str, str] | None, **spec: Any) -> Obj:
    body: Obj = dict(spec)
    if selector is not None:
        body["selector"] = {"matchLabels": selector}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": NS},
            "spec": body}


async def pdb_status(sandbox: Sandbox, name: str, **expected: object) -> Obj:
    """The PDB's status once the disruption controller has observed its spec and shows the `expected` fields."""
    async def probe() -> Obj | None:
        found = await sandbox.kube.store.get(PDBS, NS, name)
        status = (found or {}).get("status") or {}
        if found is None or status.get("observedGeneration") != found["metadata"]["generation"]:
            return None
        return status if all(status.get(k) == v for k, v in expected.items()) else None

    return await wait_for(probe, timeout=30, message=f"PDB {name} status {expected}")


def condition(status: Obj) -> tuple[str, str, str, int]:
    (found,) = [c for c in status.get("conditions") or [] if c["type"] == "DisruptionAllowed"]
    return found["status"], found["reason"], found["message"], found.get("observedGeneration", 0)


async def test_min_available_lets_one_pod_go_then_refuses(sandbox: Sandbox) -> None:
    """A ReplicaSet of 3 whose replacement pods stay Pending (its template changed: gated), minAvailable 2."""
    await sandbox.kube.store.create(REPLICASETS, replicaset("web", 3))
    pods = await ready_pods(sandbox, "app=web", 3)
    await sandbox.kube.store.patch(REPLICASETS, NS, "web", GATED)
    await sandbox.kube.store.create(PDBS, pdb("web", {"app": "web"}, minAvailable=2))
    status = await pdb_status(sandbox, "web", currentHealthy=3)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
        "expectedPods": 3}
    assert condition(status) == ("True", "SufficientPods", "", 1)

    api = RawApi(sandbox)
    allowed = await api.evict(name_of(pods[0]))
    assert (allowed.status, allowed.body) == (201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                    "status": "Success", "code": 201})
    evicted = await sandbox.kube.store.get(PODS, NS, name_of(pods[0]))
    if evicted is not None:  # kwok (the real tier) removes a terminating pod at once; the embedded kubelet soon
        assert evicted["metadata"]["deletionTimestamp"]
        target = [c for c in evicted["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert [(c["status"], c["reason"], c["message"]) for c in target] == [
            ("True", "EvictionByEvictionAPI", "Eviction API: evicting")]
    status = await pdb_status(sandbox, "web", currentHealthy=2, expectedPods=3)  # the replacement: Pending
    assert (status["disruptionsAllowed"], condition(status)[:2]) == (0, ("False", "InsufficientPods"))
    refused = await api.evict(name_of(pods[1]))
    assert refused.status == 429
    assert refused.body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": VIOLATION,
        "reason": "TooManyRequests", "code": 429,
        "details": {"causes": [{"reason": "DisruptionBudget",
                                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}}
    assert "Retry-After" not in refused.headers
    survivor = await sandbox.kube.store.get(PODS, NS, name_of(pods[1]))
    assert survivor is not None and not survivor["metadata"].get("deletionTimestamp")

    (replacement,) = [p for p in await sandbox.kube.store.list(PODS, NS, label_selector="app=web")
                      if name_of(p) not in {name_of(old) for old in pods}]
    assert replacement["status"]["phase"] == "Pending"
    assert [(c["type"], c["status"], c["reason"]) for c in replacement["status"]["conditions"]] == [
        ("PodScheduled", "False", "SchedulingGated")]
    await sandbox.kube.store.patch(PODS, NS, name_of(replacement), {"spec": {"schedulingGates": None}})
    await ready_pods(sandbox, "app=web", 3)
    await pdb_status(sandbox, "web", currentHealthy=3, disruptionsAllowed=1)
    again = await api.evict(name_of(pods[1]))
    assert again.status == 201, again.body


async def test_max_unavailable_percentage_counts_the_statefulset_scale(sandbox: Sandbox) -> None:
    """maxUnavailable 50% of a 4-replica StatefulSet: 2 may go (rounded up), desiredHealthy 2. Its pods are
    replaced from a gated template (OnDelete), so evicted pods stay unhealthy."""
    await sandbox.kube.store.create(STATEFULSETS, statefulset("db", 4, policy="Parallel",
                                                             strategy={"type": "OnDelete"}))
    pods = await ready_pods(sandbox, "app=db", 4)
    await sandbox.kube.store.patch(STATEFULSETS, NS, "db", GATED)
    await sandbox.kube.store.create(PDBS, pdb("db", {"app": "db"}, maxUnavailable="50%"))
    status = await pdb_status(sandbox, "db", currentHealthy=4)
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (4, 2, 2)
    api = RawApi(sandbox)
    answers = [await api.evict(name_of(pod)) for pod in pods[:3]]
    assert [answer.status for answer in answers] == [201, 201, 429]
    assert answers[2].body["details"]["causes"][0]["message"] == (
        "The disruption budget db needs 2 healthy pods and has 2 currently")


async def test_a_percentage_min_available_uses_the_deployment_scale(sandbox: Sandbox) -> None:
    """minAvailable 60% of a Deployment of 3: expectedPods is the Deployment's replicas, desiredHealthy 2 (1.8 up)."""
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 3))
    await ready_pods(sandbox, "app=web", 3)
    await sandbox.kube.store.create(PDBS, pdb("web", {"app": "web"}, minAvailable="60%"))
    status = await pdb_status(sandbox, "web", currentHealthy=3)
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (3, 2, 1)
    await sandbox.kube.store.patch(DEPLOYMENTS, NS, "web", {"spec": {"replicas": 5}})
    await ready_pods(sandbox, "app=web", 5)
    status = await pdb_status(sandbox, "web", currentHealthy=5)
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (5, 3, 2)


async def test_an_eviction_of_a_pod_without_a_budget_deletes_it(sandbox: Sandbox) -> None:
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 1))
    (pod,) = await ready_pods(sandbox, "app=web", 1)
    answer = await RawApi(sandbox).evict(name_of(pod))
    assert (answer.status, answer.body["status"]) == (201, "Success")

    async def replaced() -> bool:
        pods = await sandbox.kube.store.list(PODS, NS, label_selector="app=web")
        return name_of(pod) not in {name_of(p) for p in pods if not p["metadata"].get("deletionTimestamp")}

    await wait_for(replaced, timeout=30, message="the pod deleted")


async def test_a_pod_under_two_budgets_cannot_be_evicted(sandbox: Sandbox) -> None:
    """eviction.go: more than one PDB is a Status with code 500."""
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 2))
    (pod, _) = await ready_pods(sandbox, "app=web", 2)
    await sandbox.kube.store.create(PDBS, pdb("one", {"app": "web"}, minAvailable=0))
    await sandbox.kube.store.create(PDBS, pdb("two", {"app": "web"}, maxUnavailable=1))
    await pdb_status(sandbox, "one", currentHealthy=2)
    await pdb_status(sandbox, "two", currentHealthy=2)
    answer = await RawApi(sandbox).evict(name_of(pod))
    assert (answer.status, answer.body) == (500, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        "code": 500})
    still = await sandbox.kube.store.get(PODS, NS, name_of(pod))
    assert still is not None and not still["metadata"].get("deletionTimestamp")


async def test_evicting_a_missing_pod_or_with_a_wrong_name_fails(sandbox: Sandbox) -> None:
    api = RawApi(sandbox)
    missing = await api.evict("nobody")
    assert (missing.status, missing.body["reason"], missing.body["message"]) == (
        404, "NotFound", 'pods "nobody" not found')
    await sandbox.kube.store.create(DEPLOYMENTS, deployment("web", 1))
    (pod,) = await ready_pods(sandbox, "app=web", 1)
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}
    wrong = await api.call("POST", f"/api/v1/namespaces/{NS}/pods/{name_of(pod)}/eviction", body)
    assert (wrong.status, wrong.body["message"]) == (400, "name in URL does not match name in Eviction object")


async def test_a_budget_selecting_no_pod_allows_no_disruption(sandbox: Sandbox) -> None:
    await sandbox.kube.store.create(PDBS, pdb("none", {"app": "nothing"}, minAvailable=1))
    status = await pdb_status(sandbox, "none")
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 1,
        "expectedPods": 0}
    assert condition(status) == ("False", "InsufficientPods", "", 1)
