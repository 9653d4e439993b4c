"""kopf wiring only: which pool does an event concern. All work happens in the pool's reconcile pass.

Handlers are `async def`: kopf runs plain functions in a thread pool, where the scheduler's tasks
cannot be created.

No kopf change handlers are used, so kopf writes nothing to our objects (no progress annotations,
no finalizers of its own): a steady state costs zero writes. Pods are indexed, not handled.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from milvus_rg_operator.adapters.kube import GROUP_PLURAL, POOL_PLURAL, KubernetesClientGateway
from milvus_rg_operator.api.models import GROUP, VERSION
from milvus_rg_operator.reconcile import PoolReconciler
from milvus_rg_operator.scheduler import PoolScheduler

WATCH_SERVER_TIMEOUT = 300  # kopf#1120: without timeouts a silently dropped watch is never noticed
WATCH_CLIENT_TIMEOUT = 330
WATCH_CONNECT_TIMEOUT = 10

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
    settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    if memo.get("embedded"):
        # In-process use (demo, tests): a cancelled operator must not SIGKILL its host process.
        settings.process.ultimate_exiting_timeout = None
    settings.posting.enabled = False  # our own events are posted by the reconcile pass, once per transition
    reconciler = memo.get("reconciler") or PoolReconciler(KubernetesClientGateway())
    memo["reconciler"] = reconciler
    memo["scheduler"] = memo.get("scheduler") or PoolScheduler(reconciler.reconcile)
    memo["group_pools"] = {}  # ResourceGroup uid -> pool it last referenced, so moving a group wakes both
    logger.info("milvus-rg-operator started")


@kopf.on.cleanup(registry=_registry)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo["scheduler"].stop()
    await memo["reconciler"].close()


@kopf.on.event(GROUP, VERSION, POOL_PLURAL, registry=_registry)
async def pool_event(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo["scheduler"].trigger(namespace, name)


@kopf.on.event(GROUP, VERSION, GROUP_PLURAL, registry=_registry)
async def group_event(namespace: str, uid: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    pool = str(spec.get("pool", ""))
    previous = memo["group_pools"].get(uid)
    memo["group_pools"][uid] = pool
    for affected in {pool, previous} - {None, ""}:
        memo["scheduler"].trigger(namespace, affected)


@kopf.index("v1", "pods", registry=_registry)
async def query_node_pods(namespace: str, name: str, meta: kopf.Meta, memo: kopf.Memo,
                    **_: Any) -> dict[tuple[str, str], str] | None:
    """Pods owned by a pool's StatefulSet, keyed by (namespace, StatefulSet); every change wakes its pool."""
    reconciler: PoolReconciler = memo["reconciler"]
    for owner in meta.get("ownerReferences", []):
        if owner.get("kind") == "StatefulSet":
            pool = reconciler.pool_of_statefulset(namespace, owner.get("name", ""))
            if pool is not None:
                memo["scheduler"].trigger(namespace, pool)
                return {(namespace, owner["name"]): name}
    return None
