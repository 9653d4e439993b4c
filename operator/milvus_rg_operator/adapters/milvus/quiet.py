"""pymilvus logs each failed call with a ~30-line ERROR traceback (decorators.error_handler) and a WARNING per
retry timeout. The operator reports failures itself, once per transition: during the adapter's calls these
records go to our DEBUG log, first line only."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

logger = logging.getLogger("milvus_rg_operator.adapters.milvus")

_IN_ADAPTER_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("in_milvus_adapter_call", default=False)
PYMILVUS_LOGGERS = ("pymilvus", "pymilvus.decorators", "pymilvus.client.async_grpc_handler",
                    "pymilvus.client.connection_manager", "pymilvus.client.global_topology",
                    "pymilvus.milvus_client.async_milvus_client", "pymilvus.milvus_client.base",
                    "pymilvus.orm.connections")


class _QuietDuringAdapterCalls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not _IN_ADAPTER_CALL.get():
            return True
        first_line = record.getMessage().split("\n", 1)[0]
        logger.debug("pymilvus %s (reported by the operator instead): %s", record.levelname, first_line)
        return False


_QUIET_FILTER = _QuietDuringAdapterCalls()


def quiet_pymilvus_logs() -> None:
    """Install the filter on pymilvus' loggers (idempotent). Logger filters only see records logged on
    that very logger, so each logger pymilvus uses gets it."""
    names = set(PYMILVUS_LOGGERS) | {name for name in logging.root.manager.loggerDict if name.startswith("pymilvus")}
    for name in names:
        target = logging.getLogger(name)
        if _QUIET_FILTER not in target.filters:
            target.addFilter(_QUIET_FILTER)


@contextlib.contextmanager
def adapter_call() -> Iterator[None]:
    token = _IN_ADAPTER_CALL.set(True)
    try:
        yield
    finally:
        _IN_ADAPTER_CALL.reset(token)
