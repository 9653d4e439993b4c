"""Fixtures of the adapter tests (the real-Milvus tier imports them too)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def pymilvus_records() -> Iterator[list[logging.LogRecord]]:
    """WARNING and above that pymilvus' own loggers emit during the test (they do not propagate past
    the "pymilvus" logger, which has a handler of pymilvus' own)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.WARNING)
    target = logging.getLogger("pymilvus")
    target.addHandler(handler)
    try:
        yield records
    finally:
        target.removeHandler(handler)
