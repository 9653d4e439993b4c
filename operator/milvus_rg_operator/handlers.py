"""kopf wiring only: which pool does an event concern. All work happens in the pool's reconcile pass.

Handlers are `async def`: kopf runs plain functions in a thread pool, where the scheduler's tasks
cannot be created.

No kopf change handlers are used, so kopf writes nothing to our objects (no progress annotations,
no finalizers of its own): a steady state costs zero writes. The operator's own writes (status, labels,
finalizers) come back as watch events; they do not start new passes (see `changed`).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import kopf

from milvus_rg_operator.adapters.kube import POOL_PLURAL, RESOURCE_GROUP_PLURAL, KubernetesClientGateway
from milvus_rg_operator.api.models import API_GROUP, VERSION
from milvus_rg_operator.core.types import STATEFULSET, PodState, WorkloadRef
from milvus_rg_operator.reconcile import PoolReconciler
from milvus_rg_operator.scheduler import PoolScheduler
from milvus_rg_operator.translate import looks_like_query_node, pod_state, workload_keys

WATCH_SERVER_TIMEOUT = 300  # kopf#1120: without timeouts a silently dropped watch is never noticed
WATCH_CLIENT_TIMEOUT = 330
WATCH_CONNECT_TIMEOUT = 10
WORKER_IDLE_TIMEOUT = 0.5

_registry = kopf.OperatorRegistry()


def registry() -> kopf.OperatorRegistry:
    """The handlers below, in a registry of their own (so embedding kopf elsewhere cannot collide)."""
    return _registry


@kopf.on.login(registry=_registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # The kubernetes client reads KUBECONFIG at import; kopf's own reader reads it now.
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup(registry=_registry)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger,
                **_: Any) -> None:
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = WATCH_CONNECT_TIMEOUT
    # kopf keeps a worker per object until it idles this long, holding the object's last event (a whole pod,
    # managedFields included): with its 5 s default, 1,000 pods changing together hold them all at once.
    settings.queueing.idle_timeout = WORKER_IDLE_TIMEOUT
    settings.persistence.finalizer = f"{API_GROUP}/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=API_GROUP)
    if memo.get("embedded"):
        # In-process use (demo, tests): a cancelled operator must not SIGKILL its host process.
        settings.process.ultimate_exiting_timeout = None
    settings.posting.enabled = False  # our own events are posted by the reconcile pass, once per transition
    reconciler = memo.get("reconciler") or PoolReconciler(KubernetesClientGateway())
    memo["reconciler"] = reconciler
    memo["scheduler"] = memo.get("scheduler") or PoolScheduler(reconciler.reconcile)
    memo["group_pools"] = {}  # ResourceGroup uid -> pool it last referenced, so moving a group wakes both
    memo["fingerprints"] = {}  # uid -> what a pass reads of the object, to tell changes from our own writes
    logger.info("milvus-rg-operator started")


@kopf.on.cleanup(registry=_registry)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo["scheduler"].stop()
    await memo["reconciler"].close()


def changed(memo: kopf.Memo, uid: str, fingerprint: Any, event_type: str | None) -> bool:
    """Whether an object's event says something the pool's pass has not seen: the operator's own writes
    (status, labels, finalizers) come back as watch events and must not start new full passes."""
    seen: dict[str, Any] = memo["fingerprints"]
    if event_type == "DELETED":
        seen.pop(uid, None)
        return True
    if seen.get(uid) == fingerprint:
        return False
    seen[uid] = fingerprint
    return True


def spec_fingerprint(body: kopf.Body) -> tuple[Any, ...]:
    meta = body.get("metadata", {})
    return (meta.get("generation"), meta.get("deletionTimestamp"), dict(meta.get("annotations") or {}))


def pod_fingerprint(body: kopf.Body) -> tuple[Any, ...]:
    """What a pass reads of a pod besides the labels it writes itself."""
    status = body.get("status", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    # nodeName: a ReplicaSet ranks unscheduled pods first (core.workloads); the scheduler sets it.
    return (body.get("metadata", {}).get("deletionTimestamp"), status.get("phase"), status.get("podIP"), ready,
            restarts, body.get("spec", {}).get("nodeName"))


@kopf.on.event(API_GROUP, VERSION, POOL_PLURAL, registry=_registry)
async def pool_event(namespace: str, name: str, uid: str, body: kopf.Body, type: str | None, memo: kopf.Memo,
                     query_node_pods: kopf.Index[tuple[str, str], PodState],
                     pool_groups: kopf.Index[tuple[str, str], dict[str, Any]], **_: Any) -> None:
    # Indexes are filled before any handler runs (kopf waits for the first LIST of each).
    memo["reconciler"].pod_cache = query_node_pods
    memo["reconciler"].group_cache = pool_groups
    if changed(memo, uid, spec_fingerprint(body), type):
        memo["scheduler"].trigger(namespace, name)


@kopf.on.event(API_GROUP, VERSION, RESOURCE_GROUP_PLURAL, registry=_registry)
async def group_event(namespace: str, uid: str, spec: kopf.Spec, body: kopf.Body, type: str | None,
                      memo: kopf.Memo, **_: Any) -> None:
    pool = str(spec.get("pool", ""))
    previous = memo["group_pools"].get(uid)
    memo["group_pools"][uid] = pool
    if not changed(memo, uid, (*spec_fingerprint(body), pool), type) and previous == pool:
        return
    for affected in {pool, previous} - {None, ""}:
        memo["scheduler"].trigger(namespace, affected)


@kopf.index(API_GROUP, VERSION, RESOURCE_GROUP_PLURAL, registry=_registry)
async def pool_groups(namespace: str, spec: kopf.Spec, body: kopf.Body,
                      **_: Any) -> dict[tuple[str, str], dict[str, Any]] | None:
    """ResourceGroups keyed by (namespace, the pool they name), as plain dicts: the pool's pass reads its
    groups from here instead of LISTing them (group_event wakes the pool)."""
    pool = spec.get("pool")
    if not pool:
        return None
    return {(namespace, str(pool)): copy.deepcopy(dict(body))}


@kopf.index("v1", "pods", registry=_registry)
async def query_node_pods(namespace: str, uid: str, body: kopf.Body, memo: kopf.Memo,
                          **_: Any) -> dict[tuple[str, WorkloadRef], PodState] | None:
    """Pods of workloads (StatefulSets, Deployments, milvus-operator's Milvus), keyed by (namespace, workload),
    as the core's plain PodState: the pool's pass reads its pods from here instead of LISTing them (kopf fills
    every index before any handler runs). A change that matters wakes the pod's pool."""
    keys = workload_keys(body)
    if not keys or (keys[0].kind != STATEFULSET and not looks_like_query_node(body)):
        return None  # the index holds query nodes, not every Deployment's pods in the cluster
    reconciler: PoolReconciler = memo["reconciler"]
    pools = {pool for key in keys if (pool := reconciler.pool_of_workload(namespace, key)) is not None}
    if pools and changed(memo, uid, pod_fingerprint(body), None):
        for pool in pools:
            memo["scheduler"].trigger(namespace, pool)
    state = pod_state(body)
    return {(namespace, key): state for key in keys}


@kopf.on.event("v1", "pods", registry=_registry)
async def pod_deleted(namespace: str, uid: str, body: kopf.Body, type: str | None, memo: kopf.Memo,
                      **_: Any) -> None:
    """A removed pod wakes its pool (the index forgets it silently)."""
    reconciler: PoolReconciler = memo["reconciler"]
    if type != "DELETED":
        return
    changed(memo, uid, None, type)
    for key in workload_keys(body):
        pool = reconciler.pool_of_workload(namespace, key)
        if pool is not None:
            memo["scheduler"].trigger(namespace, pool)
