"""The kstatus tool itself (scripts/kstatus/) on hand-made objects: it reads `Reconciling`, `Stalled`, `Ready`
and `status.observedGeneration` as Flux does, and keeps integers exact (decoded with apimachinery's json)."""

from __future__ import annotations

from typing import Any

from tests.kstatus import Health, kstatus_health, kstatus_of


def pool(name: str, generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "milvusrg.io/v1alpha1", "kind": "QueryNodePool",
                           "metadata": {"name": name, "namespace": "milvus", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


def condition(type_: str, status: str, reason: str = "Testing", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message or f"{type_} is {status}",
            "lastTransitionTime": "2026-12-02T00:00:00Z"}


def test_kstatus_reads_the_conditions_and_the_observed_generation() -> None:
    objects = [
        pool("no-status"),
        pool("reconciling", status={"observedGeneration": 1, "conditions": [condition("Reconciling", "True")]}),
        pool("stalled", status={"observedGeneration": 1, "conditions": [condition("Stalled", "True")]}),
        pool("ready", generation=4, status={"observedGeneration": 4, "conditions": [condition("Ready", "True")]}),
        pool("behind", generation=5, status={"observedGeneration": 4, "conditions": [condition("Ready", "True")]}),
    ]
    assert kstatus_of(objects) == {"no-status": "Current", "reconciling": "InProgress", "stalled": "Failed",
                                   "ready": "Current", "behind": "InProgress"}


def test_the_message_comes_from_the_condition_and_integers_stay_exact() -> None:
    generation = 2**53 + 1  # not a float64: read as one, it would equal its observedGeneration below
    stalled = pool("stalled", status={"observedGeneration": 1,
                                      "conditions": [condition("Stalled", "True", "ValidationFailed",
                                                               "spec.maxNodes: 2 is below the requests (3)")]})
    behind = pool("behind", generation=generation, status={"observedGeneration": generation - 1})
    assert kstatus_health([stalled, behind]) == [
        Health("QueryNodePool", "stalled", "Failed", "spec.maxNodes: 2 is below the requests (3)"),
        Health("QueryNodePool", "behind", "InProgress",
               f"QueryNodePool generation is {generation}, but latest observed generation is {generation - 1}"),
    ]
