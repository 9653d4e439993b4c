"""The pod eviction subresource (`POST .../pods/{name}/eviction`, policy/v1 Eviction), honouring
PodDisruptionBudgets as kube-apiserver does: k8s.io/kubernetes v1.37.2 `pkg/registry/core/pod/storage/eviction.go`
`EvictionREST.Create`, `checkAndDecrement`, `canIgnorePDB`, `addConditionAndDeletePod`.

The PDBs' status (`disruptionsAllowed`, `currentHealthy`, ...) is the disruption controller's: the workload
emulator keeps it (`milvus_rg_sandbox.controllers.disruption`). Synchronous, so an eviction is atomic here (the
real handler retries on write conflicts instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError, bad_request, not_found
from .selectors import label_selector_matcher

if TYPE_CHECKING:
    from .store import ObjectStore

Obj = dict[str, Any]

PODS = "v1/pods"
PDBS = "policy/v1/poddisruptionbudgets"
MAX_DISRUPTED_POD_SIZE = 2000  # eviction.go MaxDisruptedPodSize
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def _status(status: str, code: int, message: str | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if message is not None:
        body["message"] = message
    body["code"] = code
    return body


def _budget_error(code: int, message: str, cause: str, pdb_name: str, retry_after: int = 0) -> ApiError:
    details: Obj = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers: dict[str, str] = {}
    if code == 403:  # errors.NewForbidden: the PDB named in the details
        details = {"name": pdb_name, "group": "policy", "kind": "poddisruptionbudget", **details}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return ApiError(code, message, details=details, headers=headers)


def _too_many_requests(pdb_name: str) -> ApiError:
    """eviction.go `createTooManyRequestsError`: the PDB's status is older than its spec."""
    return _budget_error(429, VIOLATION, f"The disruption budget {pdb_name} is still being processed by the server.",
                         pdb_name, retry_after=10)


def _condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _pod_ready(pod: Obj) -> bool:
    condition = _condition(pod.get("status") or {}, "Ready")
    return condition is not None and condition.get("status") == "True"


def _can_ignore_pdb(pod: Obj) -> bool:
    """eviction.go `canIgnorePDB`: a terminal, Pending or terminating pod is deleted without a PDB check."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _check_and_decrement(store: ObjectStore, pdb: Obj, pod_name: str, now: str, dry_run: bool) -> None:
    """eviction.go `checkAndDecrement`: refuse (429/403) or take one disruption from the PDB's budget."""
    name = pdb["metadata"]["name"]
    status = pdb.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 0):
        raise _too_many_requests(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise _budget_error(
            403, f'poddisruptionbudget.policy "{name}" is forbidden: pdb disruptions allowed is negative',
            f"The disruption budget {name} does not allow evicting pods currently: pdb disruptions allowed is "
            "negative", name)
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
        raise _budget_error(
            403, f'poddisruptionbudget.policy "{name}" is forbidden: DisruptedPods map too big - too many evictions '
            "not confirmed by PDB controller",
            f"The disruption budget {name} does not allow evicting pods currently: too many pending evictions not "
            "confirmed by PDB controller", name)
    if allowed == 0:
        condition = _condition(status, "DisruptionAllowed")
        current, desired = int(status.get("currentHealthy") or 0), int(status.get("desiredHealthy") or 0)
        if condition and condition.get("status") == "False" and condition.get("message") \
                and condition.get("reason") == "SyncFailed":
            cause = (f"The disruption budget {name} does not allow evicting pods currently because it failed sync: "
                     f"{condition['message']}")
        elif current <= desired:
            cause = f"The disruption budget {name} needs {desired} healthy pods and has {current} currently"
        elif condition and condition.get("status") == "False" and condition.get("message"):
            cause = (f"The disruption budget {name} does not allow evicting pods currently "
                     f"({condition.get('reason')}): {condition['message']}")
        else:
            cause = f"The disruption budget {name} does not allow evicting pods currently"
        raise _budget_error(429, VIOLATION, cause, name)
    if dry_run:
        return
    new_status = dict(status)
    new_status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:  # pdbhelper.UpdateDisruptionAllowedCondition
        new_status["conditions"] = disruption_allowed_conditions(status, 0, now)
    new_status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now}

    def replace_status(current: Obj) -> Obj:
        current["status"] = new_status
        return current

    store.update_object(store.resource(PDBS), pdb["metadata"]["namespace"], name, replace_status,
                        subresource="status")


def disruption_allowed_conditions(status: Obj, allowed: int, now: str) -> list[Obj]:
    """The conditions with DisruptionAllowed set as component-helpers `apps/poddisruptionbudget`
    `UpdateDisruptionAllowedCondition` does through `meta.SetStatusCondition` (the transition time changes only
    with the status)."""
    wanted: Obj = {"type": "DisruptionAllowed", "status": "True" if allowed > 0 else "False"}
    if status.get("observedGeneration"):
        wanted["observedGeneration"] = status["observedGeneration"]
    wanted.update(reason="SufficientPods" if allowed > 0 else "InsufficientPods", message="")
    conditions = [dict(c) for c in status.get("conditions") or []]
    for index, condition in enumerate(conditions):
        if condition.get("type") == "DisruptionAllowed":
            same = condition.get("status") == wanted["status"]
            conditions[index] = {**wanted, "lastTransitionTime": condition.get("lastTransitionTime") if same else now}
            return conditions
    return [*conditions, {**wanted, "lastTransitionTime": now}]


def _delete_with_condition(store: ObjectStore, pod: Obj, options: Obj, now: str, dry_run: bool) -> None:
    """eviction.go `addConditionAndDeletePod`: the DisruptionTarget condition, then a (graceful) delete."""
    preconditions = options.get("preconditions") or {}
    meta = pod["metadata"]
    for field, value in (("uid", meta.get("uid")), ("resourceVersion", meta.get("resourceVersion"))):
        wanted = preconditions.get(field)
        if wanted and wanted != value:
            raise ApiError(409, f'Operation cannot be fulfilled on Pod "{meta["name"]}": the {field} in the '
                                f"precondition ({wanted}) does not match the {field} in record ({value})",
                           reason="Conflict", details={"name": meta["name"], "kind": "Pod"})
    if dry_run:
        return
    resource = store.resource(PODS)

    def add_condition(current: Obj) -> Obj:
        status = current.setdefault("status", {})
        target = {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
                  "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        status["conditions"] = [*conditions, target]
        return current

    store.update_object(resource, meta["namespace"], meta["name"], add_condition, subresource="status")
    grace = options.get("gracePeriodSeconds")
    store.delete_object(resource, meta["namespace"], meta["name"],
                        grace_period_seconds=None if grace is None else int(grace))


def evict(store: ObjectStore, namespace: str, name: str, body: Any, now: str, *, dry_run: bool = False) -> Obj:
    """The answer to an eviction: a `Status`, served with its `code` as the HTTP status (201, or 500 for a pod under
    more than one PDB); refusals raise `ApiError` (429 with a DisruptionBudget cause, 403, 404, 409)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    if (body.get("metadata") or {}).get("name") != name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    dry_run = dry_run or "All" in (options.get("dryRun") or [])
    try:
        pod = store.get_object(store.resource(PODS), namespace, name)
    except ApiError as error:
        if error.code == 404:
            raise not_found("", "pods", name) from error
        raise
    if _can_ignore_pdb(pod):
        _delete_with_condition(store, pod, options, now, dry_run)
        return _status("Success", 201)
    labels = pod["metadata"].get("labels") or {}
    pdbs = [pdb for pdb in store.list_objects(store.resource(PDBS), namespace, lambda _obj: True)
            if label_selector_matcher((pdb.get("spec") or {}).get("selector"))(labels)]
    if len(pdbs) > 1:
        return _status("Failure", 500, "This pod has more than one PodDisruptionBudget, which the eviction "
                                       "subresource does not support.")
    if pdbs:
        pdb = pdbs[0]
        status = pdb.get("status") or {}
        unhealthy_may_go = not _pod_ready(pod) and (
            (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
            or int(status.get("currentHealthy") or 0) >= int(status.get("desiredHealthy") or 0) > 0)
        if not unhealthy_may_go:
            _check_and_decrement(store, pdb, name, now, dry_run)
    _delete_with_condition(store, pod, options, now, dry_run)
    return _status("Success", 201)
