"""Start kopf with our handlers: used by `milvus-rg-operator run`, the demo and the integration tests."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from milvus_rg_operator import handlers


async def run_operator(
    *,
    namespace: str | None = None,
    liveness_endpoint: str | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    memo: dict[str, Any] | None = None,
) -> None:
    """Run until `stop_flag` is set (or the process is signalled). One replica per cluster: kopf's
    peering is not leader election, so the chart deploys a single pod with the Recreate strategy."""
    await kopf.operator(
        registry=handlers.registry(),
        standalone=True,
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else (),
        liveness_endpoint=liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=kopf.Memo(memo or {}),
    )
