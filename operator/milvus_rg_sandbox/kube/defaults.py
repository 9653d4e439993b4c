"""Defaults the API server writes into workload objects, as kube-apiserver's defaulting does on every decode.

k8s.io/kubernetes v1.37.2 `pkg/apis/apps/v1/defaults.go`: `SetDefaults_Deployment`, `SetDefaults_StatefulSet`
(the MaxUnavailableStatefulSet gate is on by default in 1.37: `maxUnavailable: 1`), `SetDefaults_ReplicaSet`.
Pod templates and pods are not defaulted (a real server fills in restartPolicy, dnsPolicy, ...).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _deployment(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    strategy = spec.get("strategy")
    if not isinstance(strategy, dict):
        strategy = spec["strategy"] = {}
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            rolling = strategy["rollingUpdate"] = {}
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)


def _statefulset(spec: Obj) -> None:
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        strategy.setdefault("rollingUpdate", {})
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict):
        rolling.setdefault("partition", 0)
        rolling.setdefault("maxUnavailable", 1)
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if not isinstance(retention, dict):
        retention = spec["persistentVolumeClaimRetentionPolicy"] = {}
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)


def _replicaset(spec: Obj) -> None:
    spec.setdefault("replicas", 1)


DEFAULTERS = {
    "apps/deployments": _deployment,
    "apps/statefulsets": _statefulset,
    "apps/replicasets": _replicaset,
}


def apply_defaults(storage_key: str, obj: Obj) -> None:
    """Fill in the defaults of a built-in kind in place (`obj` is the store's own copy)."""
    defaulter = DEFAULTERS.get(storage_key)
    if defaulter is None:
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    defaulter(spec)
