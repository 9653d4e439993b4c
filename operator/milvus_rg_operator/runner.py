"""Start kopf with our handlers: used by `milvus-rg-operator run`, the demo and the integration tests."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from typing import Any

import kopf

from milvus_rg_operator import handlers
from milvus_rg_operator.adapters.kube import KubernetesClientGateway
from milvus_rg_operator.metrics import OperatorMetrics, serve
from milvus_rg_operator.reconcile import PoolReconciler

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed


def fix_mmap_threshold() -> None:
    """glibc raises its mmap threshold each time a block above it is freed (up to 32 MB); larger blocks then
    come from the heap, where freed space fragments and RSS creeps up under churn (bench/churn.py). A fixed
    threshold, as MALLOC_MMAP_THRESHOLD_ would set, keeps large blocks (a LIST of pods, a watch batch) in
    their own mappings, returned on free. Nothing to do without glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


async def run_operator(
    *,
    namespace: str | None = None,
    liveness_endpoint: str | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    memo: dict[str, Any] | None = None,
    metrics: OperatorMetrics | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "0.0.0.0",
) -> None:
    """Run until `stop_flag` is set (or the process is signalled). Alone: two at once would both act (kopf's
    peering is not leader election); `leader.run_leading` runs it only in the replica holding the Lease.

    The reconciler is `memo["reconciler"]` when given (tests bring their own), else one reporting to
    `metrics`. With `metrics_port` (0 or None: off), the metrics are served at /metrics on that port
    until the operator stops; a new OperatorMetrics is made when none is given."""
    fix_mmap_threshold()
    memo = dict(memo or {})
    if metrics_port and metrics is None:
        metrics = OperatorMetrics()
    if "reconciler" not in memo:
        memo["reconciler"] = PoolReconciler(KubernetesClientGateway(), metrics=metrics)
    server = serve(metrics, metrics_port, metrics_host) if metrics_port and metrics is not None else None
    if metrics is not None:
        metrics.leader.set(1)  # the operator running kopf is the one acting
    if server is not None:
        logger.info("metrics at http://%s:%d/metrics", metrics_host, server.port)
    try:
        await kopf.operator(
            registry=handlers.registry(),
            standalone=True,
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else (),
            liveness_endpoint=liveness_endpoint,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(memo),
        )
    finally:
        if metrics is not None:
            metrics.leader.set(0)
        if server is not None:
            server.stop()
