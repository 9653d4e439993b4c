"""The ReplicaSet's deletion order (`ActivePodsWithRanks.Less`), rule by rule, including the rules the fidelity
tests cannot reach on both backends (unassigned pods, phases, readiness, nodes, restarts, age)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from milvus_rg_sandbox.controllers.podorder import deletion_cost, pods_to_delete

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready_for: float | None = 100, cost: str | None = None,
        restarts: int = 0, age: float = 1000) -> dict[str, Any]:
    conditions = [] if ready_for is None else [{"type": "Ready", "status": "True",
                                                "lastTransitionTime": stamp(ready_for)}]
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": stamp(age),
                         "annotations": {} if cost is None else {"controller.kubernetes.io/pod-deletion-cost": cost}},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": [{"restartCount": restarts}]}}


def first(*pods: dict[str, Any], related: list[dict[str, Any]] | None = None) -> str:
    return str(pods_to_delete(list(pods), related or list(pods), 1, NOW)[0]["metadata"]["name"])


def test_each_rule_in_turn() -> None:
    assert first(pod("assigned"), pod("unassigned", node="")) == "unassigned"  # 1
    assert first(pod("running"), pod("pending", phase="Pending", ready_for=None)) == "pending"  # 2
    assert first(pod("running"), pod("unknown", phase="Unknown")) == "unknown"  # 2
    assert first(pod("ready"), pod("not-ready", ready_for=None)) == "not-ready"  # 3
    assert first(pod("costly", cost="10"), pod("cheap", cost="-10")) == "cheap"  # 4, before readiness time
    crowded = [pod("alone", node="n2"), pod("crowded", node="n1")]
    assert first(*crowded, related=[*crowded, pod("neighbour", node="n1")]) == "crowded"  # 5
    assert first(pod("old-ready", ready_for=1000), pod("new-ready", ready_for=10)) == "new-ready"  # 6
    assert first(pod("steady"), pod("restarted", restarts=3)) == "restarted"  # 7
    assert first(pod("old", age=1000), pod("new", age=10)) == "new"  # 8


def test_times_compare_on_a_logarithmic_scale_with_the_uid_breaking_ties() -> None:
    """Ready 100 s and 120 s ago fall in one power of two of nanoseconds: the smaller uid goes first."""
    assert first(pod("b", ready_for=100), pod("a", ready_for=120)) == "a"
    assert first(pod("b", ready_for=10), pod("a", ready_for=120)) == "b"


def test_the_cost_is_an_int32_without_a_sign_or_leading_zeros() -> None:
    assert [deletion_cost(pod("p", cost=value)) for value in ("-5", "0", "2147483647", "007", "+1", "x",
                                                               "2147483648")] == [-5, 0, 2147483647, 0, 0, 0, 0]


def test_all_pods_go_without_ranking_when_all_must() -> None:
    pods = [pod("a"), pod("b")]
    assert pods_to_delete(pods, pods, 2, NOW) == pods
