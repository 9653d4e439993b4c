"""Where a pod may run, when the sandbox has Node objects: the filters of kube-scheduler's default plugins that
concern the sandbox (k8s.io/kubernetes v1.37.2 `pkg/scheduler/framework/plugins/`): `nodeunschedulable`
(a cordoned node takes no pod unless it tolerates `node.kubernetes.io/unschedulable:NoSchedule`), `tainttoleration`
(NoSchedule and NoExecute taints need a toleration: `v1helper.TolerationsTolerateTaint`) and `nodeaffinity`
(`spec.nodeSelector`; required node affinity terms are not evaluated). Among the nodes that fit, the one with the
fewest pods is chosen (kube-scheduler scores nodes instead: spreading, least allocated).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .common import Obj

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """`Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key with Exists every key."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def refusal(pod: Obj, node: Obj) -> str | None:
    """Why `node` cannot take `pod` (None: it can)."""
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not any(tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations):
        return "node(s) were unschedulable"
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tolerations):
            return "node(s) had untolerated taint(s)"
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def choose_node(pod: Obj, nodes: Iterable[Obj], pods_on_node: Mapping[str, int]) -> tuple[Obj | None, str]:
    """The node to bind `pod` to (the least loaded that fits, by name on a tie), or None and the reason in
    kube-scheduler's words (`0/N nodes are available: ...`)."""
    candidates = sorted(nodes, key=lambda node: node["metadata"]["name"])
    fitting = [node for node in candidates if refusal(pod, node) is None]
    if fitting:
        return min(fitting, key=lambda node: pods_on_node.get(node["metadata"]["name"], 0)), ""
    reasons: dict[str, int] = {}
    for node in candidates:
        reason = refusal(pod, node) or ""
        reasons[reason] = reasons.get(reason, 0) + 1
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return None, f"0/{len(candidates)} nodes are available: {detail}."
